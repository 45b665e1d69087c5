"""Installation concerns: a missing Paddle gets an actionable message."""
import subprocess
import sys
import textwrap


def test_import_without_paddle_names_the_extra():
    # Hide paddle from the import system, as in an environment installed without an extra.
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "paddle" or name.startswith("paddle."):
                    raise ImportError("No module named 'paddle'")
        sys.meta_path.insert(0, Block())
        try:
            import paddle_cnn
        except ImportError as e:
            print(e)
        else:
            print("imported")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "PaddlePaddle" in res.stdout and ".[cpu]" in res.stdout and ".[gpu]" in res.stdout, res.stdout + res.stderr


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _declared():
    """{extra or '': [requirement names]} from setup.py's literals."""
    import ast
    import re

    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    name = lambda req: re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")  # noqa: E731
    out = {"": [name(r) for r in kw["install_requires"]]}
    out.update({extra: [name(r) for r in reqs] for extra, reqs in kw["extras_require"].items()})
    return out


def test_every_third_party_import_is_a_declared_requirement():
    import ast
    from importlib import metadata

    declared = {n for names in _declared().values() for n in names}
    owners = metadata.packages_distributions()
    missing = {}
    for folder in ("paddle_cnn", "experiments"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in sys.stdlib_module_names or top in ("paddle_cnn", "experiments", "__future__"):
                        continue
                    dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
                    if not dists & declared:
                        missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in setup.py: {missing}"


def test_the_gpu_extra_asks_pypi_for_nothing_it_cannot_serve():
    # PyPI's paddlepaddle-gpu stops at 2.6.2: README installs Paddle 3.x CUDA wheels from Paddle's index.
    assert "paddlepaddle-gpu" not in _declared()["gpu"]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "paddlepaddle-gpu" in readme and "Paddle's own package index" in readme


def test_every_extra_resolves_with_pip():
    for extra in sorted(_declared()):
        target = f"{ROOT}[{extra}]" if extra else str(ROOT)
        res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", target],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, (extra, res.stdout[-2000:], res.stderr[-2000:])


def test_both_paddle_builds_installed_at_once_is_one_line(tmp_path):
    """A CPU and a CUDA build in one environment overwrite each other's files: said, not guessed at."""
    fake = tmp_path / "site"
    for name in ("paddlepaddle-3.3.1", "paddlepaddle_gpu-3.3.1"):
        info = fake / f"{name}.dist-info"
        info.mkdir(parents=True)
        dist, version = name.rsplit("-", 1)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n")
    env = dict(__import__("os").environ, PYTHONPATH=f"{fake}:{ROOT}")
    res = subprocess.run([sys.executable, "-m", "paddle_cnn", "list"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "paddlepaddle 3.3.1 and paddlepaddle-gpu 3.3.1 are both installed" in lines[0]

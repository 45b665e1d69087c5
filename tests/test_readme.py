"""README stays true: every table is regenerated from committed source files by the command beside it."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paddle_cnn import report
from paddle_cnn.training import RunConfig, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]


def test_every_readme_table_is_what_its_command_prints_now():
    stale = report.update_readme(ROOT / "README.md", check=True)
    assert stale == [], f"README tables differ from their commands (python -m paddle_cnn.report --readme README.md): {stale}"


def test_readme_blocks_cite_committed_source_files():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [m.group("command") for m in report.BLOCK.finditer(text)]
    assert len(commands) >= 6  # results, lenet, zoo, networks, data loading, speed x2
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    for command in commands:
        for arg in command.split():
            if arg.startswith("docs/results/"):
                matches = [p for p in tracked if Path(p).match(arg)] if "*" in arg else [arg] if arg in tracked else []
                assert matches, f"{arg} (in {command!r}) is not a committed file"


def _copy_readme(tmp_path) -> Path:
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs" / "results", tmp_path / "docs" / "results")
    return tmp_path / "README.md"


def test_a_changed_number_is_found_and_regenerated(tmp_path):
    readme = _copy_readme(tmp_path)
    text = readme.read_text(encoding="utf-8")
    block = next(m for m in report.BLOCK.finditer(text) if "docs/results/dilated_vs_standard" in m.group("command"))
    row = next(line for line in block.group("body").splitlines() if line.startswith("| standard_cnn"))
    number = re.search(r"0\.\d{4}", row).group(0)
    changed = row.replace(number, "0.1234", 1)
    readme.write_text(text.replace(row, changed), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "paddle_cnn.report", "--readme", readme, "--check"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 1 and "differs from" in res.stdout and "dilated_vs_standard" in res.stdout, res
    assert report.update_readme(readme) == [block.group("command")]
    assert readme.read_text(encoding="utf-8") == text


def test_a_table_without_a_command_is_refused(tmp_path):
    readme = _copy_readme(tmp_path)
    readme.write_text(readme.read_text(encoding="utf-8") + "\n| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    with pytest.raises(report.ReportError, match="outside any"):
        report.update_readme(readme, check=True)


def test_only_known_commands_run_from_a_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- table: rm -rf / -->\n| x |\n<!-- end table -->\n", encoding="utf-8")
    with pytest.raises(report.ReportError, match="only 'python -m paddle_cnn.report"):
        report.update_readme(readme, check=True)


def test_saved_results_give_the_same_table_as_the_run_folder(synthetic_csvs, tmp_path, monkeypatch):
    train, test = synthetic_csvs
    config = RunConfig(net="lenet", train_csv=str(train), test_csv=str(test), val_size=80, epochs=1, log_every=1000)
    train_and_evaluate(config, tmp_path / "runs" / "lenet", verbose=False)
    monkeypatch.chdir(tmp_path)
    (saved,) = report.save_results([Path("runs/lenet")], Path("docs/results"))
    assert saved == Path("docs/results/lenet.json")
    from_run = report.markdown_table(report.load_results([Path("runs/lenet")]))
    assert report.markdown_table(report.load_results([saved])) == from_run
    assert report.load_results([saved])[0]["run_dir"] == "runs/lenet"
    with pytest.raises(report.ReportError, match="not a run's results"):
        (tmp_path / "x.json").write_text("[1, 2]")
        report.load_results([tmp_path / "x.json"])


def test_saved_results_keep_the_curves(synthetic_csvs, tmp_path, monkeypatch):
    """The zoo's pictures are redrawn from docs/results, without the run folders (checkpoints)."""
    train, test = synthetic_csvs
    config = RunConfig(net="lenet", train_csv=str(train), test_csv=str(test), val_size=80, epochs=2, log_every=1000)
    train_and_evaluate(config, tmp_path / "runs" / "lenet", verbose=False)
    monkeypatch.chdir(tmp_path)
    (saved,) = report.save_results([Path("runs/lenet")], Path("docs/results"))
    history = report.load_results([saved])[0]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(0 <= h["val_acc"] <= 1 for h in history)
    # A run folder whose results.json predates the history key: the rows come from its metrics.csv.
    results = json.loads(Path("runs/lenet/results.json").read_text())
    Path("runs/lenet/results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "history"}))
    from_csv = report.load_results([Path("runs/lenet")])[0]["history"]  # metrics.csv keeps 6 digits
    assert [(h["epoch"], round(h["val_acc"], 5)) for h in from_csv] == [(h["epoch"], round(h["val_acc"], 5))
                                                                        for h in history]
    old = {k: v for k, v in json.loads(saved.read_text()).items() if k != "history"}
    Path("docs/results/old.json").write_text(json.dumps(dict(old, net="standard_cnn")))
    res = subprocess.run([sys.executable, "-m", "paddle_cnn.report", "--columns", "zoo", "--curves", "c.png",
                          "--cost-accuracy", "a.png", "docs/results/lenet.json", "docs/results/old.json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(no per-epoch history kept for: standard_cnn)" in res.stdout
    for png in ("c.png", "a.png"):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = subprocess.run([sys.executable, "-m", "paddle_cnn.report", "--curves", "none.png", "docs/results/old.json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0 and "none of these results holds a per-epoch history" in res.stderr
    assert "Traceback" not in res.stderr and not Path("none.png").exists()


def test_the_keras_table_shows_the_last_epochs_training_loss_and_where_each_run_is():
    base = {"net": "alexnet", "run_dir": "runs/keras_tutorial/demo/alexnet", "input_shape": [1, 227, 227],
            "images": {"train": 230, "val": 26, "test": 128}, "epochs": 2, "val": {"acc": 0.5}, "test": {"acc": 0.25},
            "history": [{"epoch": 1, "train_loss": 2.9}, {"epoch": 2, "train_loss": 2.1319}]}
    lines = report.markdown_table([base, dict(base, history=[])], report.TABLES["keras"]).splitlines()
    assert lines[1].startswith("|---|---:|")  # the run folder reads left-aligned, numbers right
    assert lines[2].startswith("| runs/keras_tutorial/demo/alexnet | 1x227x227 | 230 | 2 | 2.132 | 0.5000 | 0.2500 | 128 |")
    assert "| 2 | - | 0.5000 |" in lines[3]  # no history kept: no loss, rather than a wrong one

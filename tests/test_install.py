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

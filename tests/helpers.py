"""What many test files need: a tiny run config, the CLI as a user runs it, and the one-line-error check."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from paddle_cnn.training import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CLI_ENV = dict(os.environ, PYTHONPATH=str(ROOT), PADDLE_CNN_PROGRESS="")


def tiny_config(csvs, **overrides) -> RunConfig:
    """standard_cnn for one epoch on a (train, test) CSV pair, 80 images held out for validation."""
    train, test = csvs
    base = dict(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=1,
                batch_size=32, log_every=1000)
    base.update(overrides)
    return RunConfig(**base)


def cli(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """``python -m paddle_cnn ARGS`` in a subprocess, from this checkout."""
    return subprocess.run([sys.executable, "-m", "paddle_cnn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=CLI_ENV if env is None else env)


def one_line_error(res, *fragments, status=2) -> str:
    """The command failed with ``status`` and one line on stderr (no traceback) holding every fragment."""
    assert res.returncode == status, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    lines = [ln for ln in res.stderr.strip().splitlines() if "ccache" not in ln and "warnings.warn" not in ln]
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run folder to damage or resume (without its lock file)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst

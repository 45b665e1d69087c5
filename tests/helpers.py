"""What many test files need: a tiny run config, the CLI as a user runs it, and the one-line-error check."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def learnable_scene(h=24, w=20, bands=40, classes=16, seed=0):
    """A learnable scene: each class has its own spectrum; label 0 (unlabelled) is a frame and a stripe."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((h, w), np.uint8)
    inner = rng.integers(1, classes + 1, size=((h - 4) // 4, (w - 4) // 4))
    gt[2:2 + inner.shape[0] * 4, 2:2 + inner.shape[1] * 4] = np.kron(inner, np.ones((4, 4), np.uint8))
    gt[:, w // 2] = 0
    spectra = rng.normal(size=(classes + 1, bands)) * 4
    cube = spectra[gt] + rng.normal(size=(h, w, bands))
    return (cube * 50 + 2000).astype(np.int16), gt

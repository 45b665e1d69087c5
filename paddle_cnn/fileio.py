"""Durable file writes: write to a temporary file in the same folder, fsync, rename over the target.

A reader (or a process killed half-way) sees either the old file or the new one, never a mix.
"""
from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, Path]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the finished, fsynced file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the user's files get their usual mode
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


CRASH_ENV = "PADDLE_CNN_CRASH_AT"
_crash_counts: dict = {}


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests.

    With ``PADDLE_CNN_CRASH_AT=name:N`` the process SIGKILLs itself the N-th time it reaches the
    point ``name`` ('step', 'epoch-end', 'checkpoint-file', 'checkpoint-swap'). Unset, it does nothing.
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_savez(path: PathLike, **arrays) -> Path:
    """``np.savez`` through :func:`atomic_write` (given a file object, numpy adds no suffix)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)

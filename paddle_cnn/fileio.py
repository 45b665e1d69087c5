"""Durable file writes: write to a temporary file in the same folder, fsync, rename over the target.

A reader (or a process killed half-way) sees either the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

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


# Failures a user causes from outside (a full or read-only disk, a file where a folder should be, no
# permission): the entry points explain these in one line instead of a traceback.
OUTSIDE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                  errno.EFBIG, errno.ENAMETOOLONG}
_ADVICE = {
    errno.ENOSPC: "free space on that disk or choose another --out",
    errno.EDQUOT: "free space within your quota or choose another --out",
    errno.EFBIG: "the file system cannot hold a file this large; choose another --out",
    errno.EROFS: "that file system is mounted read-only; choose a writable --out",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
    errno.EISDIR: "that path is a folder; give a file name",
    errno.EACCES: "no permission for that path; choose another or fix its permissions",
    errno.EPERM: "no permission for that path; choose another or fix its permissions",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def describe_os_error(exc: OSError) -> str:
    """``PATH: what the system said; what to do`` for an error in :data:`OUTSIDE_ERRNOS`."""
    where = exc.filename if exc.filename is not None else "(path not reported)"
    return f"{where}: {exc.strerror or os.strerror(exc.errno)}; {_ADVICE.get(exc.errno, 'see the path')}"


@contextlib.contextmanager
def writing(path: PathLike) -> Iterator[None]:
    """Name ``path`` in an outside error raised while writing it: Python's own calls name a file,
    but safetensors, VisualDL and matplotlib raise errors ("No space left on device (os error 28)")
    that name none."""
    try:
        yield
    except OSError as exc:
        if exc.errno in OUTSIDE_ERRNOS and exc.filename is None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is an OS error in disguise
        code = _os_error_code(exc)
        if code in OUTSIDE_ERRNOS:
            raise OSError(code, os.strerror(code), str(path)) from exc
        raise


def _os_error_code(exc: BaseException):
    """The errno inside a wrapped error (Rust's "(os error 28)", or an OSError cause), else None."""
    match = re.search(r"os error (\d+)", str(exc))
    if match:
        return int(match.group(1))
    cause = exc.__cause__ or exc.__context__
    return cause.errno if isinstance(cause, OSError) else None


CACHE_ENV = "PADDLE_CNN_CACHE"


def cache_root() -> Path:
    """Where paddle_cnn keeps what it can rebuild (parsed CSVs, compiled operators): $PADDLE_CNN_CACHE,
    else ~/.cache/paddle_cnn."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "paddle_cnn"


def file_digest(path: PathLike, algorithm: str = "sha256", suffix: bytes = b"") -> str:
    """Hex digest of a file's bytes (then ``suffix``), read a MiB at a time."""
    import hashlib

    digest = hashlib.new(algorithm, digest_size=20) if algorithm == "blake2b" else hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(suffix)
    return digest.hexdigest()


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the finished, fsynced file to ``path``; on any failure the
    temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with writing(path):
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


def atomic_copy(src: PathLike, dest: PathLike) -> Path:
    """Copy ``src`` to ``dest`` whole or not at all (a full disk leaves no partial copy)."""
    import shutil

    return atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))


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

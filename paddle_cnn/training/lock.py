"""An ``flock`` on a run folder's ``.lock``: one writing process at a time.

The kernel drops the lock when its holder dies, so a killed run never blocks its own resume; the
file stays (cleared) after a clean release, so a waiting process never locks an orphaned inode.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Optional

from .layout import RunDirError


class FolderInUse(RunDirError):
    """Another process holds the folder's lock."""


class FolderLock:
    """Held between :meth:`acquire` and :meth:`release`; :meth:`RunDir.owned` is the only user."""

    def __init__(self, path: Path, folder: Path):
        self.path, self.folder = path, folder
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        holder = _try_lock(fd)
        if holder is not None:
            os.close(fd)
            raise self._in_use(holder)
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        if previous:  # the lock was free but not cleared: its holder was killed
            print(f"{self.folder}: taking over from a process that did not finish ({previous})", flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                      .encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock

    def refuse_if_held_elsewhere(self) -> None:
        """Raise :class:`FolderInUse` if another process holds the lock now (takes nothing)."""
        if self._fd is not None or not self.path.is_file():
            return
        fd = os.open(self.path, os.O_RDWR)
        try:
            holder = _try_lock(fd)
        finally:
            os.close(fd)
        if holder is not None:
            raise self._in_use(holder)

    def _in_use(self, holder: str) -> FolderInUse:
        return FolderInUse(f"{self.folder} is in use by another process ({holder}); wait for it to finish, "
                           "or choose another --out")


def _try_lock(fd: int) -> Optional[str]:
    """None if ``fd`` is now locked by us, else who holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: a 2nd open in-process conflicts too
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise  # e.g. a file system without locks: not "in use by another process"
        return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
    return None

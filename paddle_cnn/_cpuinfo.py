"""The CPU as /proc/cpuinfo describes it, read once and without Paddle.

Two places need it before or beside Paddle: MKL's code path is chosen from the vendor and flags
before Paddle's first matmul (:mod:`paddle_cnn._mkl`), and every figure we save names the CPU model
(:func:`paddle_cnn.fast.cpu_model`). One parser serves both, so they cannot disagree.
"""
from __future__ import annotations

import dataclasses
import functools
import platform
from typing import FrozenSet, Optional

PATH = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """The first processor's entries; None where the text had no such line."""

    vendor: Optional[str] = None
    model: Optional[str] = None
    flags: Optional[FrozenSet[str]] = None

    def has(self, flag: str) -> bool:
        return self.flags is not None and flag in self.flags


def parse(text: str) -> CpuInfo:
    """The first ``vendor_id``, ``model name`` and ``flags`` lines of /proc/cpuinfo's text."""
    found = {}
    keys = {"vendor_id": "vendor", "model name": "model", "flags": "flags"}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        field = keys.get(key.strip())
        if not sep or field is None or field in found:
            continue
        found[field] = frozenset(value.split()) if field == "flags" else value.strip()
        if len(found) == len(keys):
            break
    return CpuInfo(**found)


def read(path: str = PATH) -> Optional[CpuInfo]:
    """``path`` parsed, or None where it cannot be read (not Linux, no /proc)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse(f.read())
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def this_cpu() -> CpuInfo:
    """This machine's CPU (read once a process: it does not change under us)."""
    return read() or CpuInfo()


def model_name() -> str:
    """The model name for figures; the platform's word for it where /proc/cpuinfo has none."""
    return this_cpu().model or platform.processor() or platform.machine()

"""MKL's code path on AMD CPUs, chosen before Paddle's first matrix product.

Paddle's CPU wheel does its matmuls (every ``nn.Linear``, forward and backward) in the MKL it
bundles (2019.0.5). That MKL picks its kernels by CPU vendor, not by instruction set: on an AMD
CPU it runs its generic SSE path. On an AVX2 AMD EPYC, one thread, a 256x1152 by 1152x256 product
took 5.7 ms in Paddle against 1.6 ms in NumPy's OpenBLAS and PyTorch; the first Linear of
standard_cnn was a third of its whole evaluation. This MKL honours ``MKL_DEBUG_CPU_TYPE=5`` (its
AVX2 kernels, which any AVX2 CPU runs; read at the first BLAS call): 1.6 ms. Later MKLs ignore the
variable and pick AVX2 kernels on AMD by themselves, so setting it costs nothing there.

Nothing here imports Paddle: :mod:`paddle_cnn` calls :func:`choose_mkl_path` before it does.
"""
from __future__ import annotations

import os
from typing import Mapping, MutableMapping, Optional

from paddle_cnn import _cpuinfo
from paddle_cnn._cpuinfo import CpuInfo

VARIABLE = "MKL_DEBUG_CPU_TYPE"
AVX2_PATH = "5"


def mkl_cpu_type(cpu: Optional[CpuInfo], environ: Mapping[str, str]) -> Optional[str]:
    """The ``MKL_DEBUG_CPU_TYPE`` to set for ``cpu``: MKL's AVX2 path for an AMD CPU with AVX2,
    None where MKL chooses well itself (Intel, a CPU without AVX2, one we could not read) or the
    user has set the variable (any value, even empty, is theirs)."""
    if VARIABLE in environ or cpu is None:
        return None
    return AVX2_PATH if cpu.vendor == "AuthenticAMD" and cpu.has("avx2") else None


def choose_mkl_path(environ: MutableMapping[str, str] = os.environ, cpuinfo_path: str = _cpuinfo.PATH) -> Optional[str]:
    """Set ``MKL_DEBUG_CPU_TYPE`` in ``environ`` where :func:`mkl_cpu_type` says so; returns what was set."""
    value = mkl_cpu_type(_cpuinfo.read(cpuinfo_path), environ)
    if value is not None:
        environ[VARIABLE] = value
    return value


def describe(environ: Mapping[str, str] = os.environ) -> str:
    """A line for benchmark headers: which MKL path Paddle's matmuls take in this process."""
    value = environ.get(VARIABLE)
    if value is None:
        return "MKL: its own choice"
    return f"MKL: {VARIABLE}={value}" + (" (AVX2 kernels on this AMD CPU)" if value == AVX2_PATH else "")

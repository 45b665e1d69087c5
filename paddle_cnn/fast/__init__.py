"""Fast CPU convolution, pooling, ReLU/Sigmoid and batch norm, and a fused conv-norm-add-ReLU for
inference: custom Paddle operators backed by oneDNN (``onednn_ops.cc``).

Built once per environment with ``paddle.utils.cpp_extension`` into
``~/.cache/paddle_cnn/ops/<key>/`` (``$PADDLE_CNN_CACHE`` moves it), where the key covers the
source, Paddle's version and the Python ABI; processes that start together wait for one build.
The project's layer classes (:mod:`paddle_cnn.nets._layers`) call :func:`ops`; when it returns
None they use Paddle's own kernels. Loading changes nothing else in the process: what the operators
want process-wide (oneDNN's thread count, glibc keeping freed memory) is :func:`setup_process`, an
explicit step of the Trainer, the CLI's evaluate and predict and the benchmarks; a program of your
own that runs the nets calls it once. ``PADDLE_CNN_FAST_OPS=0`` switches the operators off; when they
cannot be built or loaded (no compiler, no oneDNN headers, another platform), one line on stderr
says why and training goes on with the stock kernels.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import sys
import sysconfig
from pathlib import Path
from dataclasses import dataclass
from types import ModuleType
from typing import List, Optional

from .. import _cpuinfo
from ..fileio import cache_root

SOURCE = Path(__file__).with_name("onednn_ops.cc")
SWITCH = "PADDLE_CNN_FAST_OPS"
HEADERS_ENV = "PADDLE_CNN_ONEDNN_INCLUDE"  # a folder holding oneapi/dnnl/dnnl.hpp, if not in the environment

class FastOpsUnavailable(RuntimeError):
    """Why the operators could not be built or loaded (shown once, as one line)."""


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Library:
    """The operators, built and loaded once per process: Paddle's operator module and the plain C
    functions of the same shared library (threads, instruction set, cache size)."""

    module: ModuleType
    cdll: ctypes.CDLL

    def set_threads(self, n: int) -> None:
        self.cdll.pcnn_set_threads(int(n))

    def threads(self) -> int:
        return int(self.cdll.pcnn_get_threads())

    def cpu_isa(self) -> str:
        self.cdll.pcnn_cpu_isa.restype = ctypes.c_char_p
        return self.cdll.pcnn_cpu_isa().decode()

    def cached_primitives(self) -> int:
        self.cdll.pcnn_cached_primitives.restype = ctypes.c_long
        return int(self.cdll.pcnn_cached_primitives())


@dataclass(frozen=True)
class _Loaded:
    library: Optional[Library]
    reason: Optional[str]


@functools.lru_cache(maxsize=None)
def _load_once() -> _Loaded:
    """Build (if needed) and load the operators; the one place that may say on stderr that it could not."""
    try:
        module = _load()
    except FastOpsUnavailable as exc:
        print(f"paddle_cnn: fast CPU conv/pool operators unavailable ({exc}); using Paddle's own kernels",
              file=sys.stderr, flush=True)
        return _Loaded(None, str(exc))
    so = next(Path(module.__file__).parent.rglob("paddle_cnn_onednn*.so"))
    return _Loaded(Library(module, ctypes.CDLL(str(so))), None)


def library() -> Optional[Library]:
    """The loaded operators, or None (switched off, or unavailable: said once on stderr)."""
    return _load_once().library if enabled() else None


def ops() -> Optional[ModuleType]:
    """The operator module the layers call, or None (then they take Paddle's own kernels)."""
    lib = library()
    return None if lib is None else lib.module


def setup_process(threads: int = 0, processes: int = 1) -> int:
    """What the operators want of the whole process, set by each entry point before it runs a net:
    oneDNN's threads (``threads``, or :func:`default_threads` for ``processes`` sharing the cores) and
    glibc keeping freed memory (:func:`keep_freed_memory`). Returns the thread count; sets nothing
    where the operators are unavailable or switched off."""
    n = threads or default_threads(processes)
    lib = library()
    if lib is not None:
        lib.set_threads(n)
        keep_freed_memory()
    return n


# glibc's mallopt parameters (malloc.h) and the environment variables that set them at start-up.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@functools.lru_cache(maxsize=None)  # once per process
def keep_freed_memory() -> bool:
    """Let glibc keep large freed blocks for reuse instead of unmapping them; True when set.

    Paddle's CPU allocator hands every activation back to malloc after use, and glibc returns blocks
    above its mmap threshold to the OS, so each step page-faults its feature maps in again: a ReLU
    on a 128x64x28x28 batch took 9.9 ms against 1.9 ms with the memory kept (PyTorch: 1.0 ms). The
    process keeps its peak heap instead. Left alone when the user tunes malloc through the
    environment, and off with the operators (``PADDLE_CNN_FAST_OPS=0``).
    """
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _MALLOC_ENV):
        return False
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))


def unavailable_reason() -> Optional[str]:
    """Why the operators could not be loaded (None when they were, or were never asked for)."""
    return _load_once().reason if _load_once.cache_info().currsize else None


def default_threads(processes: int = 1) -> int:
    """OMP_NUM_THREADS if the user set it, else the cores this process may use shared by ``processes``."""
    import paddle_cnn

    if paddle_cnn.USER_OMP_NUM_THREADS and paddle_cnn.USER_OMP_NUM_THREADS.strip().isdigit():
        return max(1, int(paddle_cnn.USER_OMP_NUM_THREADS))
    return max(1, available_cores() // max(1, processes))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(n: int) -> None:
    """Threads the operators give oneDNN (no effect when they are unavailable)."""
    lib = library()
    if lib is not None:
        lib.set_threads(n)


def get_threads() -> Optional[int]:
    lib = library()
    return None if lib is None else lib.threads()


# oneDNN's instruction sets with native bf16 arithmetic (its bf16 kernels need one of them).
BF16_ISAS = ("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx512_core_amx_fp16")


def cpu_isa() -> Optional[str]:
    """The instruction set oneDNN uses on this CPU (``avx512_core_amx``, ``avx2``, ...), None without the operators."""
    lib = library()
    return None if lib is None else lib.cpu_isa()


def bf16_unavailable_reason() -> Optional[str]:
    """Why the convolutions cannot compute in bf16 here (None when they can): they need the operators
    and a CPU whose bf16 arithmetic is native (oneDNN would otherwise emulate it, slower than fp32)."""
    isa = cpu_isa()
    if isa is None:
        return f"the fast CPU operators are unavailable ({unavailable_reason() or 'switched off'})"
    if isa not in BF16_ISAS:
        return f"this CPU ({cpu_model()}) has no native bf16: oneDNN runs {isa} here, bf16 needs avx512_bf16 or AMX"
    return None


def cached_primitives() -> Optional[int]:
    """oneDNN primitives the operators keep for reuse (each cache holds its 128 most recently used)."""
    lib = library()
    return None if lib is None else lib.cached_primitives()


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), for figures that depend on it."""
    return _cpuinfo.model_name()


def header_dirs() -> List[Path]:
    """Where oneDNN's headers may be: $PADDLE_CNN_ONEDNN_INCLUDE, this environment's include folders."""
    candidates = [os.environ.get(HEADERS_ENV), Path(sys.prefix) / "include", sysconfig.get_path("data") + "/include"]
    try:
        import site

        candidates.append(Path(site.getuserbase()) / "include")
    except (ImportError, AttributeError):
        pass
    return [Path(c) for c in candidates if c and (Path(c) / "oneapi" / "dnnl" / "dnnl.hpp").is_file()]


def _paddle_libs() -> Path:
    import paddle

    return Path(paddle.__file__).parent / "libs"


def build_key() -> str:
    import paddle

    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(f"{paddle.__version__}|{paddle.version.commit}|{sys.version_info[:2]}|{sysconfig.get_platform()}".encode())
    return h.hexdigest()[:16]


def _load() -> ModuleType:
    if not sys.platform.startswith("linux"):
        raise FastOpsUnavailable(f"built for Linux only, this is {sys.platform}")
    import paddle

    if paddle.is_compiled_with_cuda():
        raise FastOpsUnavailable("this Paddle is a CUDA build, which the operators are not built against; on CPU "
                                 "it runs Paddle's own CPU kernels (GPU runs never use these operators)")
    libdnnl = _paddle_libs() / "libdnnl.so.3"
    if not libdnnl.is_file():
        raise FastOpsUnavailable(f"this Paddle wheel ships no {libdnnl.name}")
    headers = header_dirs()
    if not headers:
        raise FastOpsUnavailable("oneDNN headers not found; pip install 'onednn-devel-cpu-gomp==2023.2.0' "
                                 f"(the [cpu] extra does) or set ${HEADERS_ENV}")
    folder = cache_root() / "ops" / build_key()
    folder.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(folder / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build; other processes wait, then load it
        try:
            return _compile_and_load(folder, headers[0], libdnnl.parent)
        except Exception:  # noqa: BLE001 - a cache broken by a killed build or a full disk (a truncated
            # .so crashes Paddle's rebuild check with a bus error): rebuild once from a clean folder.
            _clear_build(folder)
        try:
            return _compile_and_load(folder, headers[0], libdnnl.parent)
        except Exception as exc:  # noqa: BLE001 - the compiler or loader failed again: fall back, say why
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [type(exc).__name__]
            raise FastOpsUnavailable(f"build failed, also from a clean cache: {lines[-1]}; "
                                     f"log in {folder / 'build.log'}") from None


def _clear_build(folder: Path) -> None:
    """Everything a build left in ``folder`` but its lock and log."""
    import shutil

    for entry in folder.iterdir():
        if entry.name in (".build.lock", "build.log"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _compile_and_load(folder: Path, include: Path, libs: Path) -> ModuleType:
    from paddle.utils.cpp_extension import load

    with open(folder / "build.log", "a") as log, _fds_to(log):
        return load(name="paddle_cnn_onednn", sources=[str(SOURCE)], extra_include_paths=[str(include)],
                    extra_cxx_cflags=["-O2"], build_directory=str(folder), verbose=False,
                    extra_ldflags=[f"-L{libs}", "-l:libdnnl.so.3", f"-Wl,-rpath,{libs}", "-ldl"])


@contextlib.contextmanager
def _fds_to(log):
    """stdout and stderr of this process and its compiler subprocesses into ``log`` (Paddle's loader
    prints progress lines and compiler warnings that a user training a net need not see)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)

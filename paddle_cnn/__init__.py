"""paddle_cnn: the classic CNN tutorials as a PaddlePaddle library (networks, data, training, analysis)."""

import os
import sys
import warnings

__version__ = "0.1.0"

# Paddle sets OMP_NUM_THREADS=1 on import when it is unset; remember whether the user chose a number.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")

INSTALL_HINT = ("paddle_cnn needs PaddlePaddle, which is not installed in this Python ({reason}). Install it "
                "through the package extra: pip install -e '.[cpu]'  (CPU)  or, on CUDA machines, paddlepaddle-gpu from "
                "Paddle's own package index and then pip install -e '.[gpu]'  (see README).")
BOTH_BUILDS = ("paddlepaddle {cpu} and paddlepaddle-gpu {gpu} are both installed in this Python: they write the same "
               "'paddle' package over each other, so neither works as built. Uninstall both "
               "(pip uninstall -y paddlepaddle paddlepaddle-gpu) and install one (see README).")


class MissingPaddleError(ImportError):
    """PaddlePaddle is not importable: the package was installed without its cpu or gpu extra."""


def _command_line_entry() -> bool:
    """Whether this process is one of our commands (``paddle-cnn``, ``python -m experiments.*`` or
    ``python -m paddle_cnn...``), which print the hint as one line instead of a traceback."""
    if os.path.basename(sys.argv[0] if sys.argv else "") in ("paddle-cnn", "paddle-cnn.exe"):
        return True
    argv = list(getattr(sys, "orig_argv", []))
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return module.split(".")[0] in ("paddle_cnn", "experiments", "benchmarks")
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return bool(spec and spec.name.split(".")[0] in ("paddle_cnn", "experiments", "benchmarks"))


def _installed_builds():
    """Versions of the CPU and the CUDA Paddle distributions installed (None where absent)."""
    from importlib import metadata

    found = []
    for name in ("paddlepaddle", "paddlepaddle-gpu"):
        try:
            found.append(metadata.version(name))
        except metadata.PackageNotFoundError:
            found.append(None)
    return found


def _fail(message: str) -> None:
    if _command_line_entry():
        print(f"paddle_cnn: error: {message}", file=sys.stderr)
        raise SystemExit(2)
    raise MissingPaddleError(message)


_cpu_build, _gpu_build = _installed_builds()
if _cpu_build and _gpu_build:
    _fail(BOTH_BUILDS.format(cpu=_cpu_build, gpu=_gpu_build))

# Before Paddle's first matmul: MKL's AVX2 kernels on AMD CPUs (see _mkl; the user's own setting wins).
from . import _mkl  # noqa: E402

MKL_CPU_TYPE_SET = _mkl.choose_mkl_path()

try:
    # Paddle warns that ccache (a C++ build cache) is missing when its cpp_extension module is
    # imported, which our fast operators do; it matters only to people editing C++ sources.
    # Imported here, silenced for this import only, so no command starts with that warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle  # noqa: F401
        import paddle.utils.cpp_extension  # noqa: F401
except ImportError as exc:
    if isinstance(exc, ModuleNotFoundError) and exc.name != "paddle":
        raise  # something else inside Paddle is broken: keep the traceback
    _fail(INSTALL_HINT.format(reason=exc))

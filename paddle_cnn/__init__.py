"""paddle_cnn: the classic CNN tutorials as a PaddlePaddle library (networks, data, training, analysis)."""

import os
import sys
import warnings

__version__ = "0.1.0"

# Paddle sets OMP_NUM_THREADS=1 on import when it is unset; remember whether the user chose a number.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")

INSTALL_HINT = ("paddle_cnn needs PaddlePaddle, which is not installed in this Python ({reason}). Install it "
                "through the package extra: pip install -e '.[cpu]'  (CPU)  or  pip install -e '.[gpu]'  (CUDA machines).")


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
    if _command_line_entry():
        print(f"paddle_cnn: error: {INSTALL_HINT.format(reason=exc)}", file=sys.stderr)
        raise SystemExit(2)
    raise MissingPaddleError(INSTALL_HINT.format(reason=exc)) from exc

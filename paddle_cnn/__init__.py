"""paddle_cnn: the classic CNN tutorials as a PaddlePaddle library (networks, data, training, analysis)."""

import os
import warnings

__version__ = "0.1.0"

# Paddle sets OMP_NUM_THREADS=1 on import when it is unset; remember whether the user chose a number.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")

try:
    # Paddle warns on import that ccache (a C++ build cache) is missing; it matters only when
    # compiling custom operators. Silenced for this import only, not for the user's program.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "paddle_cnn needs PaddlePaddle, which is not installed in this Python "
        f"({exc}). Install it through the package extra: "
        "pip install -e '.[cpu]'  (CPU)  or  pip install -e '.[gpu]'  (CUDA machines)."
    ) from exc

"""Opt-in loading of Paddle's pickled ``.pdparams`` files (e.g. from the tutorial notebooks).

``paddle.load`` unpickles, and unpickling a crafted file runs arbitrary code. Here a file is read
only when the caller says ``allow_pickle=True``, and even then through an unpickler that can
build numpy arrays and plain containers and refuses every other global before anything runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from .checkpoint import CheckpointError, apply_state

PathLike = Union[str, Path]

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}
# paddle.save adds this bookkeeping entry (structured name -> global name); it holds no weights.
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


def _latin1_bytes(text, encoding="latin1"):
    """The one use protocol-2 pickles of numpy arrays make of ``_codecs.encode``; nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a pickle")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes  # protocol 2 stores bytes as a latin-1 str to re-encode
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise CheckpointError(f"{self.source}: refusing to unpickle {module}.{name}; a legacy checkpoint may "
                              "hold only numpy arrays and plain containers (this file may be malicious)")

    def persistent_load(self, pid):
        raise CheckpointError(f"{self.source}: refusing a persistent reference in the pickle")


def load_legacy_state_dict(path: PathLike, *, allow_pickle: bool = False) -> Dict[str, np.ndarray]:
    """The arrays of a ``.pdparams`` file, read with the restricted unpickler (needs ``allow_pickle``)."""
    path = Path(path)
    if not allow_pickle:
        raise CheckpointError(f"{path}: is a pickled Paddle file; loading pickles can run code, so it is off by "
                              "default. Call load_legacy_weights(path, net, allow_pickle=True) to read it "
                              "with a restricted unpickler that accepts arrays only")
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            data: Any = _RestrictedUnpickler(f, str(path)).load()
    except CheckpointError:
        raise
    except Exception as exc:  # a corrupt pickle can fail in many ways; none may escape unexplained
        raise CheckpointError(f"{path}: not a readable .pdparams pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, expected a dict of arrays")
    out = {}
    for key, value in data.items():
        if key == _PADDLE_NAME_TABLE:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}"
                                  f"{'' if not isinstance(value, np.ndarray) else ' of ' + str(value.dtype)}; "
                                  "expected numeric arrays only")
        out[key] = value
    return out


def load_legacy_weights(path: PathLike, net, *, allow_pickle: bool = False) -> None:
    """Load a tutorial's ``.pdparams`` into ``net`` (same checks as our own checkpoints)."""
    apply_state(load_legacy_state_dict(path, allow_pickle=allow_pickle), net, str(path))

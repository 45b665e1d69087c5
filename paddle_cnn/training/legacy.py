"""Opt-in loading of Paddle's pickled ``.pdparams`` files (e.g. from the tutorial notebooks).

``paddle.load`` unpickles, and unpickling a crafted file runs arbitrary code. Here a file is read
only when the caller says ``allow_pickle=True``, and even then through an unpickler that can
build numpy arrays and plain containers and refuses every other global before anything runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from ..safe_pickle import Refused, restricted_load
from .checkpoint import CheckpointError, apply_state

PathLike = Union[str, Path]

# paddle.save's containers besides numpy arrays.
_ALSO_ALLOWED = frozenset({("collections", "OrderedDict")})
# paddle.save adds this bookkeeping entry (structured name -> global name); it holds no weights.
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


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
            data: Any = restricted_load(f, _ALSO_ALLOWED)
    except Refused as exc:
        if exc.what.startswith("_codecs.encode"):
            raise CheckpointError(f"{path}: refusing {exc.what} in a pickle") from None
        raise CheckpointError(f"{path}: refusing to unpickle {exc.what}; a legacy checkpoint may hold only numpy "
                              "arrays and plain containers (this file may be malicious)") from None
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

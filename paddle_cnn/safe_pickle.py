"""The one restricted unpickler: pickles (legacy ``.pdparams``, CIFAR-10 batches) may build numpy
arrays and plain containers, and nothing else, so loading a hostile file never runs its code."""
from __future__ import annotations

import pickle
from typing import BinaryIO, FrozenSet, Tuple

# How numpy pickles arrays, dtypes and scalars (numpy 1.x and 2.x module names). Not "anything in
# numpy": numpy.testing's runstring, for one, executes a string.
NUMPY_ARRAYS: FrozenSet[Tuple[str, str]] = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
})


class Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list; ``what`` says which."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _latin1_bytes(text, encoding="latin1"):
    """The one use protocol-2 pickles of bytes make of ``_codecs.encode``; nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


class _Restricted(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: FrozenSet[Tuple[str, str]], encoding: str):
        super().__init__(file, encoding=encoding)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes  # protocol 2 stores bytes as a latin-1 str to re-encode
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise Refused("a persistent reference")


def restricted_load(file: BinaryIO, also: FrozenSet[Tuple[str, str]] = frozenset(), encoding: str = "ASCII"):
    """``pickle.load`` allowing only :data:`NUMPY_ARRAYS` and ``also``; raises :class:`Refused`."""
    return _Restricted(file, NUMPY_ARRAYS | also, encoding).load()

"""Checkpoints that never run code when loaded: tensors in safetensors files, everything else JSON.

A checkpoint is a folder: ``model.safetensors`` (the network's state_dict under its structured
names), ``optimizer.safetensors`` (optimizer accumulators, keyed by structured parameter name so
they load into a model whose global Paddle names differ, e.g. a second model in one process) and
``state.json`` (epoch, best metric, RNG scheme, LR-scheduler state, config, and the sha256 of each
tensor file, checked before any tensor is loaded: flipped bytes in the data are refused, not
trained on). Folders are written under a temporary name and renamed into place, so a crash never
leaves a half-written checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import paddle
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import UserError
from ..fileio import _fsync_dir, crash_point, file_digest, writing

PathLike = Union[str, Path]
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"  # the moving average of the weights, in the checkpoints of runs that keep one
STATE_FILE = "state.json"
FORMAT = "paddle_cnn.checkpoint.v2"  # v2: sha256 of the tensor files in state.json


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, or does not fit the network it is loaded into."""


def _param_names(net: paddle.nn.Layer) -> Dict[str, str]:
    """Paddle's global parameter name -> the structured name (``features.0.weight``)."""
    return {p.name: name for name, p in net.named_parameters()}


def optimizer_tensors(optimizer: paddle.optimizer.Optimizer, net: paddle.nn.Layer) -> Dict[str, np.ndarray]:
    """Optimizer accumulators keyed ``structured_name/accumulator`` instead of by global names."""
    by_global = _param_names(net)
    # Longest names first, so 'linear_1.w_0' is not mistaken for a prefix of 'linear_1.w_01_...'.
    prefixes = sorted(by_global, key=len, reverse=True)
    out = {}
    for key, value in optimizer.state_dict().items():
        if key == "LR_Scheduler":
            continue  # saved as JSON in state.json
        if not isinstance(value, paddle.Tensor):
            raise CheckpointError(f"optimizer state {key!r} is a {type(value).__name__}; only tensors are supported")
        owner = next((g for g in prefixes if key.startswith(g + "_")), None)
        if owner is None:
            raise CheckpointError(f"optimizer state {key!r} belongs to no parameter of the network")
        out[f"{by_global[owner]}/{key[len(owner) + 1:]}"] = value.numpy()
    return out


def _write_folder(folder: Path, net, optimizer, state: Dict[str, Any], ema=None) -> None:
    folder.mkdir(parents=True)
    for name, layer in ((MODEL_FILE, net), (EMA_FILE, ema)):
        if layer is None:
            continue
        with writing(folder / name):  # safetensors' errors name no file
            save_file({k: v.numpy() for k, v in layer.state_dict().items()}, str(folder / name),
                      metadata={"format": FORMAT})
        crash_point("checkpoint-file")
    if optimizer is not None:
        with writing(folder / OPTIMIZER_FILE):
            save_file(optimizer_tensors(optimizer, net), str(folder / OPTIMIZER_FILE), metadata={"format": FORMAT})
    state = dict(state, tensors={f.name: sha256(f) for f in sorted(folder.glob("*.safetensors"))})
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _replace_folder(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``. An existing ``final`` is moved aside first and removed last, so at
    every instant one complete copy exists (:func:`resolve` finds the moved-aside one)."""
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        crash_point("checkpoint-swap")
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


def save_checkpoint(folder: PathLike, net: paddle.nn.Layer, optimizer: Optional[paddle.optimizer.Optimizer],
                    state: Dict[str, Any], also: tuple = (), ema: Optional[paddle.nn.Layer] = None) -> Path:
    """Write a checkpoint folder atomically; ``also`` names sibling folders (``latest``, ``best``) to
    receive the same content; ``ema`` is a network holding the weights' moving average."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state, format=FORMAT)
    for target in (folder.name, *also):
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{target}-"))
        tmp.rmdir()
        try:
            _write_folder(tmp, net, optimizer, state, ema)
            _replace_folder(tmp, folder.parent / target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return folder


def resolve(folder: PathLike) -> Path:
    """A checkpoint folder; if it was being replaced when a process died, its moved-aside copy."""
    folder = Path(folder)
    if (folder / STATE_FILE).is_file():
        return folder
    old = folder.with_name(f".{folder.name}.old")
    if (old / STATE_FILE).is_file():
        return old
    raise CheckpointError(f"{folder}: not a checkpoint folder (no {STATE_FILE})")


def read_state(folder: PathLike) -> Dict[str, Any]:
    folder = resolve(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / STATE_FILE}: unreadable checkpoint state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        older = " (written by an older paddle_cnn without checksums; retrain or use that version)" \
            if found == "paddle_cnn.checkpoint.v1" else ""
        raise CheckpointError(f"{folder / STATE_FILE}: not a {FORMAT} state file{older}")
    tensors = state.get("tensors")
    if not isinstance(tensors, dict) or not all(isinstance(v, str) for v in tensors.values()):
        raise CheckpointError(f"{folder / STATE_FILE}: key 'tensors' must map file names to sha256 digests")
    return state


def verify(folder: PathLike) -> Path:
    """The checkpoint folder (or its moved-aside copy) if its state reads and every tensor file it
    lists is present with the recorded sha256; else CheckpointError naming the first fault."""
    folder = resolve(folder)
    tensors = read_state(folder)["tensors"]
    if MODEL_FILE not in tensors:
        raise CheckpointError(f"{folder / STATE_FILE}: lists no {MODEL_FILE}")
    for name, digest in sorted(tensors.items()):
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: file missing from the checkpoint")
        if sha256(path) != digest:
            raise CheckpointError(f"{path}: sha256 differs from the one recorded in {STATE_FILE}")
    return folder


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _load_tensors(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file missing from the checkpoint")
    expected = read_state(path.parent)["tensors"].get(path.name)
    if expected is None:
        raise CheckpointError(f"{path}: not listed in {STATE_FILE}'s checksums")
    if sha256(path) != expected:
        raise CheckpointError(f"{path}: sha256 differs from the one recorded in {STATE_FILE}; the file was "
                              "changed or corrupted after it was saved")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None


def apply_state(tensors: Dict[str, np.ndarray], net: paddle.nn.Layer, source: str) -> None:
    """Set ``net``'s state from arrays, refusing any missing, extra or mis-shaped tensor."""
    expected = net.state_dict()
    for k, v in expected.items():
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: parameter {k!r} has shape {list(tensors[k].shape)} in the checkpoint "
                                  f"but {list(v.shape)} in the network; was it saved from another network?")
        want = str(v.dtype).replace("paddle.", "") if k in tensors else None
        if want is not None and str(tensors[k].dtype) != want:
            raise CheckpointError(f"{source}: parameter {k!r} is {tensors[k].dtype} in the checkpoint but {want} in "
                                  "the network; convert the checkpoint, nothing was loaded")
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        raise CheckpointError(f"{source}: does not match the network: missing {missing[:5]}, unexpected {extra[:5]}")
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in tensors.items()})


def load_weights(folder: PathLike, net: paddle.nn.Layer, file: str = MODEL_FILE) -> None:
    """Load ``model.safetensors`` (or the checkpoint's ``file``, e.g. :data:`EMA_FILE`) into ``net``."""
    path = resolve(folder) / file
    apply_state(_load_tensors(path), net, str(path))


def read_weights(folder: PathLike) -> Dict[str, np.ndarray]:
    """The checksum-verified arrays of a checkpoint's ``model.safetensors``."""
    return _load_tensors(resolve(folder) / MODEL_FILE)


def load_optimizer(folder: PathLike, optimizer: paddle.optimizer.Optimizer, net: paddle.nn.Layer) -> None:
    """Load accumulators saved by :func:`optimizer_tensors` (and the LR-scheduler state from
    state.json) into an optimizer over ``net``'s parameters."""
    path = resolve(folder) / OPTIMIZER_FILE
    by_structured = {name: p for name, p in net.named_parameters()}
    state = {}
    for key, value in _load_tensors(path).items():
        structured, _, accumulator = key.partition("/")
        if structured not in by_structured:
            raise CheckpointError(f"{path}: optimizer state for unknown parameter {structured!r}")
        state[f"{by_structured[structured].name}_{accumulator}"] = paddle.to_tensor(value)
    lr_state = read_state(folder).get("lr_scheduler")
    if lr_state is not None:
        state["LR_Scheduler"] = lr_state
    optimizer.set_state_dict(state)

"""Start a run from weights that exist already (``init_from``): a run folder, an export, or a file.

Accepted sources, none of which runs code from the file:

- a run folder (its ``checkpoints/{init_which}``, checksums verified);
- an export folder (``paddle-cnn export``; Paddle's own parameter format, mapped back to the net's
  names through the table the export records);
- a ``.safetensors`` file, or a ``.pdparams`` file written by ``paddle.save`` / ``paddle.Model.save``
  as the tutorials do (read with the restricted unpickler of :mod:`paddle_cnn.safe_pickle`).

Names are matched first; a tutorial's ``nn.Sequential`` numbers its layers (``0.weight``,
``3.weight``...) where our nets may name them, so when the names differ but the tensors' shapes
agree one by one in order, they are matched by position (the architecture is the same). Anything
else is refused, naming the first tensors that disagree. Optimizer state is never carried over.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import paddle
from paddle import nn

from ..fileio import file_digest
from . import checkpoint as ckpt
from .layout import EXPORT_META, RunLayout



class InitError(ckpt.CheckpointError):
    """Weights to start from that cannot be read or do not fit the network."""


@dataclass
class InitSource:
    """Where a run's first weights came from (recorded in its state and results.json)."""

    path: str
    kind: str  # run, export, safetensors or pdparams
    sha256: str  # of the tensor file read
    which: Optional[str] = None  # the checkpoint of a run folder
    matched: str = "by name"  # or "by position"
    skipped: List[str] = field(default_factory=list)  # tensors left at their fresh values (the classifier)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_source(path: str, which: str = "best") -> Tuple[Dict[str, np.ndarray], InitSource]:
    """The arrays at ``path`` and a record of where they came from."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InitError(f"{p}: init_from names nothing (expected a run folder, an export folder, or a "
                        ".pdparams / .safetensors file)")
    if p.is_dir() and RunLayout.at(p).config.is_file():
        folder = ckpt.resolve(RunLayout.at(p).checkpoint(which))
        tensors = ckpt.read_weights(folder)
        return tensors, InitSource(str(p), "run", ckpt.sha256(folder / ckpt.MODEL_FILE), which=which)
    if p.is_dir() and (p / EXPORT_META).is_file():
        return _read_export(p)
    if p.is_dir():
        raise InitError(f"{p}: a folder that is neither a run folder (config.json) nor an export ({EXPORT_META})")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InitError(f"{p}: not a readable safetensors file ({exc})") from None
        return tensors, InitSource(str(p), "safetensors", file_digest(p, "sha256"))
    if p.suffix in (".pdparams", ".pdmodel"):
        from .legacy import load_legacy_state_dict

        return (load_legacy_state_dict(p, allow_pickle=True),
                InitSource(str(p), "pdparams", file_digest(p, "sha256")))
    raise InitError(f"{p}: unknown kind of weights file (expected .pdparams or .safetensors)")


def _read_export(folder: Path) -> Tuple[Dict[str, np.ndarray], InitSource]:
    try:
        meta = json.loads((folder / EXPORT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InitError(f"{folder / EXPORT_META}: unreadable ({exc})") from None
    names = meta.get("parameters") if isinstance(meta, dict) else None
    if not isinstance(names, dict):
        raise InitError(f"{folder}: this export records no parameter names (exported by an older paddle_cnn); "
                        "export the run again, or start from its run folder")
    params = folder / "model.pdiparams"
    if not params.is_file():
        raise InitError(f"{params}: missing from the export")
    layer = paddle.jit.load(str(folder / "model"))  # Paddle's program + parameter format: no pickle
    exported = {k: v.numpy() for k, v in layer.state_dict().items()}
    unknown = sorted(set(exported) - set(names))
    if unknown:
        raise InitError(f"{folder}: parameters {unknown[:3]} are not in the export's name table")
    return {names[k]: v for k, v in exported.items()}, InitSource(str(folder), "export", file_digest(params, "sha256"))


def export_name_table(exported: Dict[str, np.ndarray], net: nn.Layer) -> Dict[str, str]:
    """Paddle's export names (``param_N``) -> the net's structured names, matched by value.

    Two tensors can only be confused when their shapes and every value agree, and then loading
    either gives the same network."""
    free = {k: v.numpy() for k, v in net.state_dict().items()}
    table = {}
    for key, value in exported.items():
        match = next((k for k, v in free.items() if v.shape == value.shape and np.array_equal(v, value)), None)
        if match is None:
            raise InitError(f"export parameter {key!r} {list(value.shape)} matches no tensor of the network")
        table[key] = match
        del free[match]
    return table


def classifier_keys(net: nn.Layer, input_shape: Tuple[int, ...]) -> List[str]:
    """State-dict keys of the net's last layer with weights: the last one an eval forward runs, and
    the last of each auxiliary head (GoogLeNet's ``aux1``/``aux2``) in a training forward."""
    order: List[str] = []
    names = {id(layer): name for name, layer in net.named_sublayers()}
    hooks = [layer.register_forward_post_hook(lambda l, i, o: order.append(names[id(l)]))
             for layer in net.sublayers() if not layer.sublayers() and layer.parameters(include_sublayers=False)]
    x = paddle.zeros([2, *input_shape], "float32")
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}  # a training forward moves BN statistics
    try:
        with paddle.no_grad():
            was_training = net.training
            net.eval()
            net(x)
            last = order[-1:]
            order.clear()
            net.train()
            net(x)
            if not was_training:
                net.eval()
    finally:
        for h in hooks:
            h.remove()
        _set(net, before)
    heads = {}
    for name in order:  # the last weighted layer run inside each auxiliary head
        top = name.split(".")[0]
        if top.startswith("aux"):
            heads[top] = name
    layers = set(last) | set(heads.values())
    return [k for k in net.state_dict() if k.rsplit(".", 1)[0] in layers]


def apply_init(net: nn.Layer, tensors: Dict[str, np.ndarray], source: InitSource,
               input_shape: Tuple[int, ...], skip_classifier: bool = False) -> InitSource:
    """Load ``tensors`` into ``net`` (all of them, or all but the classifier); the source, completed."""
    expected = net.state_dict()
    skip = classifier_keys(net, input_shape) if skip_classifier else []
    if skip_classifier and set(skip) == set(expected):
        raise InitError(f"{source.path}: the network has no weights besides its classifier")
    mapping = _match(expected, tensors, set(skip))
    if mapping is None:
        raise InitError(f"{source.path}: not the same architecture as the network: {_first_mismatch(expected, tensors)}"
                        "; nothing was loaded")
    source.matched = "by name" if all(k == v for k, v in mapping.items()) else "by position"
    state = {}
    for key, theirs in mapping.items():
        if key in skip:
            continue
        value, want = tensors[theirs], str(expected[key].dtype).replace("paddle.", "")
        if str(value.dtype) != want and not (value.dtype.kind == "f" and want.startswith("float")):
            raise InitError(f"{source.path}: tensor {theirs!r} is {value.dtype}, the network's {key!r} is {want}")
        state[key] = value.astype(want, copy=False)
    _set(net, state)
    source.skipped = skip
    return source


def _set(net: nn.Layer, arrays: Dict[str, np.ndarray]) -> None:
    """Assign some of the net's tensors in place (set_state_dict warns about every key left out)."""
    current = net.state_dict()
    with paddle.no_grad():
        for key, value in arrays.items():
            current[key].set_value(value)


def _match(expected: Dict[str, paddle.Tensor], tensors: Dict[str, np.ndarray],
           skip: set) -> Optional[Dict[str, str]]:
    """Our key -> their key: by name when the names agree, else by position when the shapes agree in
    order (the shapes of ``skip``, the classifier about to be left out, may differ)."""
    def same(ours: str, theirs: str) -> bool:
        return ours in skip or tuple(expected[ours].shape) == tuple(tensors[theirs].shape)

    if set(expected) == set(tensors):
        pairs = {k: k for k in expected}
    elif len(expected) == len(tensors):
        pairs = dict(zip(expected, tensors))
    else:
        return None
    return pairs if all(same(a, b) for a, b in pairs.items()) else None


def _first_mismatch(expected: Dict[str, paddle.Tensor], tensors: Dict[str, np.ndarray]) -> str:
    """The first tensors that disagree, in the network's order (by name if the names are shared)."""
    ours = [(k, list(v.shape)) for k, v in expected.items()]
    theirs = [(k, list(v.shape)) for k, v in tensors.items()]
    if set(expected) == set(tensors):
        bad = [(k, s, list(tensors[k].shape)) for k, s in ours if s != list(tensors[k].shape)]
        return ", ".join(f"{k!r} is {t} in the file but {s} in the network" for k, s, t in bad[:3])
    for i, ((k, s), (tk, ts)) in enumerate(zip(ours, theirs)):
        if s != ts:
            return (f"tensor {i} is {tk!r} {ts} in the file but {k!r} {s} in the network "
                    f"({len(theirs)} tensors in the file, {len(ours)} in the network)")
    return f"{len(theirs)} tensors in the file, {len(ours)} in the network (first extra: " \
           f"{(theirs if len(theirs) > len(ours) else ours)[min(len(ours), len(theirs))]})"

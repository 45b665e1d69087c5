"""One registry of networks: builders register by name, users list and create them by name.

Every builder declares the input size it was designed for; layer sizes are derived from it
(see :func:`flat_features`), so asking for another input size gives a consistent network.
"""
from __future__ import annotations

import contextlib
import fnmatch
import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import paddle
from paddle import nn

from ..errors import UserError

__all__ = ["NetInfo", "register", "list_nets", "create", "get_info", "flat_features", "UnknownNetError",
           "InputTooSmallError", "probe", "misfit", "checked_forward", "eval_mode"]


@dataclass(frozen=True)
class NetInfo:
    """What the registry knows about one network."""

    name: str
    builder: Callable[..., nn.Layer]
    # (channels, *spatial) the network was designed for; channels is replaced by in_channels.
    input_size: Tuple[int, ...]
    description: str

    def input_shape(self, in_channels: Optional[int] = None) -> Tuple[int, ...]:
        """The default (C, ...) input shape, with C overridden by ``in_channels`` if given."""
        channels = self.input_size[0] if in_channels is None else in_channels
        return (channels,) + tuple(self.input_size[1:])

    def min_input_size(self, in_channels: Optional[int] = None, lead: Optional[Tuple[int, ...]] = None
                       ) -> Optional[Tuple[int, ...]]:
        """The smallest square H x W every layer can take (dims before H, W: ``lead``, else as declared),
        found by building the net at each candidate size: derived from the layers, never typed by
        hand. None when no H x W up to the declared one fits those other dims."""
        shape = self.input_shape(in_channels)
        if lead is not None:
            shape = shape[:1] + tuple(lead) + shape[-2:]
        return _min_input_size(self.name, shape)


_REGISTRY: Dict[str, NetInfo] = {}


class UnknownNetError(UserError, KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message and show quotes.
        return str(self.args[0])


def register(name: Optional[str] = None, *, input_size: Tuple[int, ...] = (1, 28, 28)):
    """Decorator registering ``builder(num_classes, in_channels, input_size, **kw)`` under ``name``."""

    def decorator(builder: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"network {key!r} is already registered (by {_REGISTRY[key].builder.__module__})")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = NetInfo(key, builder, tuple(input_size), doc[0] if doc else "")
        return builder

    return decorator


@functools.lru_cache(maxsize=None)
def _min_input_size(name: str, declared: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
    info = _REGISTRY[name]

    def fits(side: int) -> bool:
        shape = declared[:-2] + (side, side)
        return not isinstance(_build_checked(info, 2, shape), str)

    lo, hi = 1, max(declared[-2:])
    if not fits(hi):
        return None
    while lo < hi:  # smallest side that fits; a net that fits side s fits every larger one
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return declared[1:-2] + (lo, lo)


def list_nets(pattern: str = "*") -> List[str]:
    """Registered names matching a shell-style wildcard (``"resnet*"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_info(name: str) -> NetInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNetError(
            f"unknown network {name!r}; registered networks are: {', '.join(list_nets())}"
        ) from None


def create(name: str, num_classes: int = 10, in_channels: int = 1, **kwargs) -> nn.Layer:
    """Build a registered network.

    ``input_size`` (spatial dims only, e.g. ``(32, 32)``) may be passed to size the layers for
    another input than the declared default. An input too small for the net (a layer would get an
    empty map, or a window larger than its padded input) raises :class:`InputTooSmallError`.
    """
    info = get_info(name)
    if num_classes < 1 or in_channels < 1:
        raise UserError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    input_size = tuple(int(v) for v in kwargs.pop("input_size", info.input_size[1:]))
    if len(input_size) != len(info.input_size) - 1:
        raise UserError(f"{name} takes {len(info.input_size) - 1} spatial dims, got input size {input_size}")
    shape = (in_channels,) + input_size
    net = _build_checked(info, num_classes, shape, kwargs)
    if isinstance(net, str):  # the first layer that does not fit
        small = info.min_input_size(in_channels, input_size[:-2])
        variant = f", or the 28x28 variant {name}_small" if f"{name}_small" in _REGISTRY else ""
        declared = "x".join(map(str, info.input_size[1:]))
        if small is None:  # the dims before H x W are too small whatever H x W is
            advice = f"no height and width fit those other dims; the declared input is {declared}"
        else:
            advice = (f"its smallest input is {'x'.join(map(str, small))} (declared {declared}); "
                      f"pass --input-size {' '.join(map(str, small[-2:]))} or larger{variant}")
        raise InputTooSmallError(f"{name} cannot take a {'x'.join(map(str, input_size))} input: {net}; {advice}")
    return net


def _build_checked(info: NetInfo, num_classes: int, shape: Tuple[int, ...], kwargs: Optional[dict] = None):
    """The net built for ``shape`` (C, ...), or a string naming the layer that cannot take it."""
    try:
        net = info.builder(num_classes=num_classes, in_channels=shape[0], input_size=tuple(shape[1:]),
                           **(kwargs or {}))
    except InputTooSmallError as exc:  # a part sized by flat_features did not fit
        return str(exc)
    problem = misfit(net, shape)
    if problem:
        return problem
    # Recorded so analysis tools and checkpoints know what the net was built for.
    net.paddle_cnn_name = info.name
    net.paddle_cnn_input_shape = tuple(shape)
    return net


class InputTooSmallError(UserError):
    """An input smaller than a network's layers can take; the message names the layer and the minimum."""


def padding_pairs(value, n: int) -> Tuple[Tuple[int, int], ...]:
    """Padding as (before, after) per spatial dim from Paddle's forms: int, [p]*n, [b, a]*n,
    [[0, 0], [0, 0], [b, a], ...]; () for 'SAME' and forms it does not know."""
    if isinstance(value, str):
        return ((0, 0),) * n if value.upper() == "VALID" else ()  # SAME always fits
    if isinstance(value, int):
        return ((value, value),) * n
    flat = [int(v) for v in value] if all(isinstance(v, int) for v in value) else None
    if flat is None:  # [[0, 0], [0, 0], [t, b], [l, r]] (batch and channel first)
        return tuple((int(a), int(b)) for a, b in value)[-n:]
    if len(flat) == n:
        return tuple((v, v) for v in flat)
    if len(flat) == 2 * n:
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in range(n))
    return ()


def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel: k + (k - 1)(r - 1)."""
    return kernel + (kernel - 1) * (dilation - 1)


def _per_dim(value, n: int) -> Tuple[int, ...]:
    return (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)


def window_geometry(layer: nn.Layer, n: int):
    """(extent of the window with dilation, stride, padding pairs) of a convolution or pooling layer
    over ``n`` spatial dims, else None. The receptive-field analysis and the input checks share it."""
    if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D)):
        k, d = _per_dim(layer._kernel_size, n), _per_dim(layer._dilation, n)
        extent = tuple(effective_kernel(ki, di) for ki, di in zip(k, d))
        return extent, _per_dim(layer._stride, n), padding_pairs(layer._padding, n)
    pools = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D, nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)
    if isinstance(layer, pools):
        k = _per_dim(layer.ksize, n)
        stride = k if layer.stride is None else _per_dim(layer.stride, n)
        return k, stride, padding_pairs(layer.padding, n)
    return None


class _Misfit(Exception):
    """Raised by a hook to stop a probe before a kernel runs on a map it cannot take."""


def misfit(net: nn.Layer, input_shape: Tuple[int, ...]) -> Optional[str]:
    """Name the first leaf layer of ``net`` that, on one zero sample of ``input_shape``, gets a window
    larger than its padded input or produces an empty map (Paddle 3.3 lets both pass silently: a
    3x3 pool of a 2x2 map gives 1x1), or None when every layer fits."""
    return checked_forward(net, input_shape)[1]


def checked_forward(net: nn.Layer, input_shape: Tuple[int, ...],
                    run: Optional[Callable[[paddle.Tensor], paddle.Tensor]] = None
                    ) -> Tuple[Optional[paddle.Tensor], Optional[str]]:
    """(output, None) of a :func:`probe` of ``net`` (or of ``run``, e.g. one of its methods), or
    (None, what does not fit). Hooks check each leaf layer's window before it runs, so no kernel
    ever sees a map it cannot take."""
    paths = {id(layer): path for path, layer in net.named_sublayers() if not layer.sublayers()}
    running: List[nn.Layer] = []  # leaves entered but not yet left: where an exception came from

    def where(layer) -> str:
        return f"layer {paths.get(id(layer), '?')} ({type(layer).__name__})"

    def before(layer, inputs):
        running.append(layer)
        x = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        if not isinstance(x, paddle.Tensor):
            return
        spatial = [int(v) for v in x.shape[2:]]
        window = window_geometry(layer, len(spatial))
        if window is None or not window[2]:
            return
        extent, _, pads = window
        for size, k, (a, b) in zip(spatial, extent, pads):
            if size + a + b < k:
                raise _Misfit(f"{where(layer)} has a {k}-wide window but its input is {size} wide "
                              f"(padded {size + a + b}), map {spatial}")

    def after(layer, inputs, output):
        if running and running[-1] is layer:
            running.pop()
        y = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(y, paddle.Tensor) and any(int(v) <= 0 for v in y.shape):
            raise _Misfit(f"{where(layer)} produces an empty map {list(y.shape[1:])}")

    leaves = [layer for _, layer in net.named_sublayers() if id(layer) in paths] or [net]
    handles = [layer.register_forward_pre_hook(before) for layer in leaves]
    handles += [layer.register_forward_post_hook(after) for layer in leaves]
    try:
        out = probe(net, input_shape, run=run)
    except _Misfit as exc:
        return None, str(exc)
    except InputTooSmallError as exc:
        return None, str(exc)
    except (ValueError, RuntimeError, OSError) as exc:  # a shape error our checks did not foresee
        if not running:
            raise
        return None, f"{where(running[-1])} fails on its input ({str(exc).strip().splitlines()[0][:160]})"
    finally:
        for h in handles:
            h.remove()
    if any(int(v) <= 0 for v in out.shape):
        return None, f"the output is an empty map {list(out.shape[1:])}"
    return out, None


def probe(layer: Callable[[paddle.Tensor], paddle.Tensor], input_shape: Tuple[int, ...],
          run: Optional[Callable[[paddle.Tensor], paddle.Tensor]] = None) -> paddle.Tensor:
    """``layer`` on one zero sample of ``input_shape`` (C, ...) without touching any state: eval mode
    (batch-norm statistics and dropout untouched), no gradients, every sublayer's mode restored.

    ``layer`` is a Layer or a Layer's bound method; ``run(x)``, if given, is called instead of
    ``layer(x)`` (to see the input tensor first).
    """
    owner = getattr(layer, "__self__", layer)
    with eval_mode(owner if isinstance(owner, nn.Layer) else None):
        return (run or layer)(paddle.zeros((1,) + tuple(int(v) for v in input_shape), dtype="float32"))


@contextlib.contextmanager
def eval_mode(layer: Optional[nn.Layer]):
    """Eval mode and no gradients inside; afterwards every sublayer is back in the mode it had."""
    modes = [(m, m.training) for m in [layer] + layer.sublayers()] if layer is not None else []
    tracer = paddle.base.framework._dygraph_tracer()  # Layer.eval() also flips this global flag
    tracer_mode = getattr(tracer, "_train_mode", None)
    if layer is not None:
        layer.eval()
    try:
        with paddle.no_grad():
            yield layer
    finally:
        for m, was in modes:
            m.training = was
        if tracer_mode is not None:
            tracer._train_mode = tracer_mode


def flat_features(features: Callable[[paddle.Tensor], paddle.Tensor], input_shape: Tuple[int, ...]) -> int:
    """Number of features ``features`` produces per sample for an input of ``input_shape`` (C, ...),
    so no layer size is ever computed by hand. Refuses (:class:`InputTooSmallError`) an input the
    feature layers cannot take, rather than sizing a classifier for zero features."""
    owner = getattr(features, "__self__", features)
    if isinstance(owner, nn.Layer):
        out, problem = checked_forward(owner, tuple(input_shape), run=None if owner is features else features)
        if problem:
            raise InputTooSmallError(problem)
    else:
        out = probe(features, input_shape)
    return int(out.size)

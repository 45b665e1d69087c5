"""One registry of networks: builders register by name, users list and create them by name.

Every builder declares the input size it was designed for; layer sizes are derived from it
(see :func:`flat_features`), so asking for another input size gives a consistent network.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import paddle
from paddle import nn

__all__ = ["NetInfo", "register", "list_nets", "create", "get_info", "flat_features", "UnknownNetError"]


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


_REGISTRY: Dict[str, NetInfo] = {}


class UnknownNetError(KeyError):
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
    another input than the declared default.
    """
    info = get_info(name)
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    input_size = tuple(kwargs.pop("input_size", info.input_size[1:]))
    net = info.builder(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kwargs)
    # Recorded so analysis tools and checkpoints know what the net was built for.
    net.paddle_cnn_name = name
    net.paddle_cnn_input_shape = (in_channels,) + input_size
    return net


def flat_features(features: Callable[[paddle.Tensor], paddle.Tensor], input_shape: Tuple[int, ...]) -> int:
    """Number of features ``features`` produces per sample for an input of ``input_shape`` (C, ...).

    ``features`` is a Layer or a Layer's bound method. It runs once on a zero sample in eval mode
    (so batch-norm statistics are untouched): no layer size is ever computed by hand.
    """
    owner = getattr(features, "__self__", features)
    layer = owner if isinstance(owner, nn.Layer) else None
    was_training = layer is not None and layer.training
    if layer is not None:
        layer.eval()
    try:
        with paddle.no_grad():
            out = features(paddle.zeros((1,) + tuple(input_shape), dtype="float32"))
    finally:
        if was_training:
            layer.train()
    return int(out.size)

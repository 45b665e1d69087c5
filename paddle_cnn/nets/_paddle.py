"""The one place that reads Paddle layers' private attributes (Paddle 3.3).

The fast path must know a layer's settings as Paddle resolved them (its padding after 'SAME'
handling, its running statistics, whether a hook watches it), and Paddle keeps no public accessor
for these. A Paddle upgrade that renames one breaks here only; ``tests/test_nets.py`` runs every
registered net against the stock layers and says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

from paddle import nn


@dataclass(frozen=True)
class ConvSettings:
    """A Conv2D/Conv3D's settings: ``padding`` is Paddle's resolved form (a list, or 'SAME'/'VALID')."""

    stride: Union[int, Tuple[int, ...]]
    padding: Union[str, list]
    dilation: Union[int, Tuple[int, ...]]
    groups: int
    padding_mode: str  # zeros, reflect, replicate, circular
    data_format: str  # NCHW / NHWC, NCDHW / NDHWC
    explicit: bool  # False for 'SAME' / 'VALID', which Paddle computes per input
    given_padding: object  # the padding argument as given (for F.conv2d)


def conv_settings(conv: nn.Layer) -> ConvSettings:
    return ConvSettings(conv._stride, conv._updated_padding, conv._dilation, int(conv._groups), conv._padding_mode,
                        conv._data_format, conv._padding_algorithm == "EXPLICIT", conv._padding)


@dataclass(frozen=True)
class NormSettings:
    """A batch norm's running statistics (the Tensors themselves, updated in place) and settings."""

    mean: object
    variance: object
    epsilon: float
    momentum: float
    use_global_stats: object  # None (Paddle's default: batch statistics in training), True or False
    data_format: str


def norm_settings(bn: nn.Layer) -> NormSettings:
    return NormSettings(bn._mean, bn._variance, float(bn._epsilon), float(bn._momentum), bn._use_global_stats,
                        bn._data_format)


def watched(layer) -> bool:
    """True when a forward hook (paddle.summary's, say) watches ``layer``."""
    return layer is not None and bool(layer._forward_pre_hooks or layer._forward_post_hooks)

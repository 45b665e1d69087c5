"""Network in Network (Lin et al. 2013): mlpconv blocks of 1x1 convolutions and global average pooling.

There is no fully connected layer: the last mlpconv block has one channel per class and global
average pooling turns each channel into a logit.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from paddle import nn

from ._blocks import scaled
from ._layers import Conv2D, MaxPool2D, ReLU, Sequential
from ._registry import register


def nin_block(in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """One mlpconv block: a kxk convolution followed by two 1x1 convolutions (a per-pixel MLP)."""
    return Sequential(
        Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding), ReLU(),
        Conv2D(out_ch, out_ch, 1), ReLU(),
        Conv2D(out_ch, out_ch, 1), ReLU(),
    )


def _nin(num_classes: int, in_channels: int, stem: Tuple[int, int, int], widths: Sequence[int]) -> nn.Sequential:
    k, s, p = stem
    c1, c2, c3 = widths
    return Sequential(
        nin_block(in_channels, c1, k, s, p), MaxPool2D(3, stride=2),
        nin_block(c1, c2, 5, 1, 2), MaxPool2D(3, stride=2),
        nin_block(c2, c3, 3, 1, 1), MaxPool2D(3, stride=2),
        nn.Dropout(0.5),
        nin_block(c3, num_classes, 3, 1, 1),
        nn.AdaptiveAvgPool2D(1),
        nn.Flatten(),
    )


@register("nin", input_size=(1, 224, 224))
def nin(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224), width: float = 1.0) -> nn.Sequential:
    """NIN as the tutorials build it for 224x224 input: 11x11 stride-4 first block, 96-256-384 channels."""
    return _nin(num_classes, in_channels, (11, 4, 0), [scaled(c, width) for c in (96, 256, 384)])


@register("nin_small", input_size=(1, 28, 28))
def nin_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.5) -> nn.Sequential:
    """NIN for 28x28 input: a 5x5 stride-1 first block and half the channels (48-128-192)."""
    return _nin(num_classes, in_channels, (5, 1, 2), [scaled(c, width) for c in (96, 256, 384)])

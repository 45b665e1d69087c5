"""VGG (Simonyan and Zisserman 2014): stacks of 3x3 convolutions in blocks, each block ending in a 2x2 max pool.

A VGG is described by its ``conv_arch``: one (number of convolutions, output channels) pair per block.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from paddle import nn

from ._blocks import dropout_mlp_head
from ._layers import Conv2D, MaxPool2D, ReLU, Sequential
from ._registry import flat_features, register

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1) with ReLU, then a 2x2 max pool halving the size."""
    layers = []
    for _ in range(num_convs):
        layers += [Conv2D(in_channels, out_channels, 3, padding=1), ReLU()]
        in_channels = out_channels
    layers.append(MaxPool2D(2, stride=2))
    return Sequential(*layers)


class VGG(nn.Layer):
    def __init__(self, conv_arch: Sequence[Tuple[int, int]], num_classes: int, in_channels: int,
                 input_size: Tuple[int, int], hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        blocks, channels = [], in_channels
        for num_convs, out_channels in conv_arch:
            blocks.append(vgg_block(num_convs, channels, out_channels))
            channels = out_channels
        self.features = Sequential(*blocks, nn.Flatten())
        n_flat = flat_features(self.features, (in_channels, *input_size))
        self.classifier = dropout_mlp_head(n_flat, hidden, num_classes, dropout)

    def forward(self, x):
        return self.classifier(self.features(x))


def narrow(conv_arch: Sequence[Tuple[int, int]], ratio: int) -> Tuple[Tuple[int, int], ...]:
    """The same architecture with every block's channels divided by ``ratio``."""
    return tuple((n, c // ratio) for n, c in conv_arch)


@register("vgg11", input_size=(1, 224, 224))
def vgg11(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> VGG:
    """VGG-11 (configuration A) for 224x224 input."""
    return VGG(VGG11, num_classes, in_channels, tuple(input_size))


@register("vgg16", input_size=(1, 224, 224))
def vgg16(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> VGG:
    """VGG-16 (configuration D) for 224x224 input: 134,300,362 parameters on 1x224x224."""
    return VGG(VGG16, num_classes, in_channels, tuple(input_size))


@register("vgg11_narrow", input_size=(1, 224, 224))
def vgg11_narrow(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224), ratio: int = 4) -> VGG:
    """VGG-11 with a quarter of the channels (the tutorials' "small VGG"), 224x224 input."""
    return VGG(narrow(VGG11, ratio), num_classes, in_channels, tuple(input_size))


@register("vgg11_small", input_size=(1, 28, 28))
def vgg11_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), hidden: int = 512) -> VGG:
    """VGG-11's first four blocks at half width for 28x28 input (28-14-7-3-1), a 512-wide classifier."""
    return VGG(narrow(VGG11[:4], 2), num_classes, in_channels, tuple(input_size), hidden=hidden)

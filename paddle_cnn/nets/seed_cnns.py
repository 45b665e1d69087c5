"""The two networks of the Fashion-MNIST notebook: a standard CNN and the same CNN with dilated convolutions.

Both are plain ``paddle.nn.Sequential`` as the notebook writes them. The notebook types the first
Linear's input (1152 standard, 512 dilated); here it is derived from the declared 1x28x28 input.
"""
from __future__ import annotations

from typing import Tuple

from paddle import nn

from ._layers import Sequential, AvgPool2D, Conv2D, ReLU
from ._registry import flat_features, register


def _notebook_cnn(num_classes: int, in_channels: int, input_size: Tuple[int, int], dilation: int) -> nn.Sequential:
    """conv-ReLU-avgpool twice, then an MLP 256-128-num_classes, with the given conv dilation."""
    features = [
        Conv2D(in_channels, 16, kernel_size=3, padding=1, dilation=dilation),
        ReLU(),
        AvgPool2D(kernel_size=2),
        Conv2D(16, 32, kernel_size=3, padding=0, dilation=dilation),
        ReLU(),
        AvgPool2D(kernel_size=2),
        nn.Flatten(),
    ]
    n_flat = flat_features(nn.Sequential(*features), (in_channels, *input_size))
    return Sequential(
        *features,
        nn.Linear(n_flat, 256),
        ReLU(),
        nn.Linear(256, 128),
        ReLU(),
        nn.Linear(128, num_classes),
    )


@register("standard_cnn", input_size=(1, 28, 28))
def standard_cnn(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> nn.Sequential:
    """The notebook's standard CNN (334,154 parameters on 1x28x28, receptive field 10)."""
    return _notebook_cnn(num_classes, in_channels, input_size, dilation=1)


@register("dilated_cnn", input_size=(1, 28, 28))
def dilated_cnn(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> nn.Sequential:
    """The notebook's dilated CNN, dilation 2 (170,314 parameters on 1x28x28, receptive field 16)."""
    return _notebook_cnn(num_classes, in_channels, input_size, dilation=2)

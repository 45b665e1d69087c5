"""LeNet as the tutorials write it: once as a Sequential, once as a ``paddle.nn.Layer`` subclass."""
from __future__ import annotations

from typing import Tuple

import paddle
from paddle import nn

from ._layers import Sequential, AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, MaxPool2D, Sigmoid, sigmoid
from ._registry import flat_features, register


def _lenet_head(n_flat: int, num_classes: int) -> list:
    """The classic 120-84-num_classes MLP with Sigmoid, on ``n_flat`` features."""
    return [nn.Linear(n_flat, 120), Sigmoid(), nn.Linear(120, 84), Sigmoid(), nn.Linear(84, num_classes)]


@register("lenet", input_size=(1, 28, 28))
def lenet(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> nn.Sequential:
    """LeNet-5 as a Sequential: 5x5 convs (pad 2 first), Sigmoid, AvgPool (61,706 parameters)."""
    features = [
        Conv2D(in_channels, 6, kernel_size=5, padding=2),
        Sigmoid(),
        AvgPool2D(kernel_size=2, stride=2),
        Conv2D(6, 16, kernel_size=5),
        Sigmoid(),
        AvgPool2D(kernel_size=2, stride=2),
        nn.Flatten(),
    ]
    n_flat = flat_features(nn.Sequential(*features), (in_channels, *input_size))
    return Sequential(*features, *_lenet_head(n_flat, num_classes))


class LeNet(nn.Layer):
    """LeNet written as the LeNet tutorial's Layer subclass: a 3x3 first conv (pad 1), MaxPool.

    The second conv stays 5x5, which is what gives the tutorial's printed 61,610 parameters.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: Tuple[int, int] = (28, 28)):
        super().__init__()
        self.conv1 = Conv2D(in_channels, 6, kernel_size=3, padding=1)
        self.pool1 = MaxPool2D(kernel_size=2, stride=2)
        self.conv2 = Conv2D(6, 16, kernel_size=5)
        self.pool2 = MaxPool2D(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        n_flat = flat_features(self.features, (in_channels, *input_size))
        self.fc1 = nn.Linear(n_flat, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def features(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool1(sigmoid(self.conv1(x)))
        x = self.pool2(sigmoid(self.conv2(x)))
        return self.flatten(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.features(x)
        x = sigmoid(self.fc1(x))
        x = sigmoid(self.fc2(x))
        return self.fc3(x)


@register("lenet_subclassed", input_size=(1, 28, 28))
def lenet_subclassed(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> LeNet:
    """LeNet as a Layer subclass: 3x3 first conv, Sigmoid, MaxPool (61,610 parameters)."""
    return LeNet(num_classes, in_channels, tuple(input_size))


@register("lenet_bn", input_size=(1, 28, 28))
def lenet_bn(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28)) -> nn.Sequential:
    """LeNet with batch normalisation after every conv and hidden linear layer (the BN tutorial's net)."""
    features = [
        Conv2D(in_channels, 6, kernel_size=5), BatchNorm2D(6), Sigmoid(), AvgPool2D(2, stride=2),
        Conv2D(6, 16, kernel_size=5), BatchNorm2D(16), Sigmoid(), AvgPool2D(2, stride=2),
        nn.Flatten(),
    ]
    n_flat = flat_features(nn.Sequential(*features), (in_channels, *input_size))
    return Sequential(
        *features,
        nn.Linear(n_flat, 120), BatchNorm1D(120), Sigmoid(),
        nn.Linear(120, 84), BatchNorm1D(84), Sigmoid(),
        nn.Linear(84, num_classes),
    )

"""AlexNet (Krizhevsky et al. 2012): five convolutions and three fully connected layers, ReLU and dropout."""
from __future__ import annotations

from typing import Sequence, Tuple

from paddle import nn

from ._blocks import dropout_mlp_head, scaled
from ._layers import Conv2D, MaxPool2D, ReLU, Sequential
from ._registry import flat_features, register


class AlexNet(nn.Layer):
    """``stem`` is the first convolution's (kernel, stride, padding); the classifier's input size is
    derived from ``input_size``."""

    def __init__(self, num_classes: int, in_channels: int, input_size: Tuple[int, int],
                 stem: Tuple[int, int, int] = (11, 4, 0), widths: Sequence[int] = (96, 256, 384, 384, 256),
                 hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        k, s, p = stem
        c1, c2, c3, c4, c5 = widths
        self.features = Sequential(
            Conv2D(in_channels, c1, k, stride=s, padding=p), ReLU(), MaxPool2D(3, stride=2),
            Conv2D(c1, c2, 5, padding=2), ReLU(), MaxPool2D(3, stride=2),
            Conv2D(c2, c3, 3, padding=1), ReLU(),
            Conv2D(c3, c4, 3, padding=1), ReLU(),
            Conv2D(c4, c5, 3, padding=1), ReLU(), MaxPool2D(3, stride=2),
            nn.Flatten(),
        )
        n_flat = flat_features(self.features, (in_channels, *input_size))
        self.classifier = dropout_mlp_head(n_flat, hidden, num_classes, dropout)

    def forward(self, x):
        return self.classifier(self.features(x))


@register("alexnet", input_size=(1, 227, 227))
def alexnet(num_classes: int = 10, in_channels: int = 1, input_size=(227, 227)) -> AlexNet:
    """AlexNet for 227x227 input (11x11 stride-4 first conv, 4096-wide classifier): 58,299,082 parameters."""
    return AlexNet(num_classes, in_channels, tuple(input_size))


@register("alexnet_small", input_size=(1, 28, 28))
def alexnet_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28),
                  width: float = 0.25, hidden: int = 512) -> AlexNet:
    """AlexNet's layout for 28x28 input: a 3x3 stride-1 first conv, quarter width, a 512-wide classifier."""
    widths = [scaled(c, width) for c in (96, 256, 384, 384, 256)]
    return AlexNet(num_classes, in_channels, tuple(input_size), stem=(3, 1, 1), widths=widths, hidden=hidden)

"""MobileNetV1 (Howard et al. 2017): depthwise separable convolutions.

A 3x3 depthwise convolution (one filter per channel, ``groups=channels``) followed by a 1x1
pointwise convolution costs about 1/9 + 1/C_out of a full 3x3 convolution.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from paddle import nn

from ._blocks import conv_bn_relu, scaled
from ._layers import Sequential
from ._registry import register

# (output channels, stride) of each depthwise separable block in the paper's Table 1.
V1_BLOCKS: Tuple[Tuple[int, int], ...] = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                                          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def depthwise_separable(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv -> BN -> ReLU, then 1x1 pointwise conv -> BN -> ReLU."""
    return Sequential(conv_bn_relu(in_ch, in_ch, 3, stride=stride, groups=in_ch), conv_bn_relu(in_ch, out_ch, 1))


class MobileNetV1(nn.Layer):
    """``width`` is the paper's multiplier alpha; ``stem_stride`` and ``blocks`` adapt it to small inputs."""

    def __init__(self, num_classes: int, in_channels: int, width: float = 1.0, stem_stride: int = 2,
                 blocks: Sequence[Tuple[int, int]] = V1_BLOCKS, dropout: float = 0.0):
        super().__init__()
        ch = scaled(32, width)
        layers = [conv_bn_relu(in_channels, ch, 3, stride=stem_stride)]
        for out, stride in blocks:
            layers.append(depthwise_separable(ch, scaled(out, width), stride))
            ch = scaled(out, width)
        self.features = Sequential(*layers, nn.AdaptiveAvgPool2D(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(ch, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@register("mobilenet_v1", input_size=(1, 224, 224))
def mobilenet_v1(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224), width: float = 1.0):
    """MobileNetV1 for 224x224 (stride-2 stem, 13 depthwise separable blocks, 32x downsampling)."""
    return MobileNetV1(num_classes, in_channels, width)


@register("mobilenet_v1_small", input_size=(1, 28, 28))
def mobilenet_v1_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.5):
    """MobileNetV1 for 28x28: stride-1 stem, the first stride-2 block at stride 1 (28-28-14-7-4-2 maps), alpha 0.5."""
    blocks = list(V1_BLOCKS)
    blocks[1] = (128, 1)
    return MobileNetV1(num_classes, in_channels, width, stem_stride=1, blocks=blocks, dropout=0.2)

"""ResNet (He et al. 2015) with basic and bottleneck blocks, and ResNeXt's grouped-convolution blocks.

The blocks are written as the tutorials write them (Dive into Deep Learning's ``Residual``):
convolutions keep their bias, and a shape change (stride or channels) goes through a 1x1
projection convolution on the shortcut, without batch norm. That layout is what gives the
tutorial's 11,186,186 parameters for ResNet-18 on 1x224x224, of which 7,808 are batch-norm
running means and variances: Paddle keeps those as (non-trainable) parameters, PyTorch as buffers.
"""
from __future__ import annotations

from typing import Sequence, Type

from paddle import nn

from ._blocks import scaled
from ._layers import BatchNorm2D, Conv2D, ConvNormReLU, MaxPool2D, ReLU, channels_last_chain, conv_bn, plain
from ._registry import register


def _projection(in_ch: int, out_ch: int, stride: int):
    """The 1x1 projection shortcut when the shape changes, else None (identity)."""
    return Conv2D(in_ch, out_ch, 1, stride=stride) if stride != 1 or in_ch != out_ch else None


def _shortcut(projection, x):
    return x if projection is None else conv_bn(projection, None, x, channels_last=True, bf16_out=True)


class BasicBlock(nn.Layer):
    """Two 3x3 convolutions with batch norm; ReLU after adding the shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64):
        super().__init__()
        if groups != 1:
            raise ValueError("BasicBlock supports groups=1 only; ResNeXt uses Bottleneck")
        self.conv1 = Conv2D(in_ch, planes, 3, stride=stride, padding=1)
        self.bn1 = BatchNorm2D(planes)
        self.conv2 = Conv2D(planes, planes, 3, padding=1)
        self.bn2 = BatchNorm2D(planes)
        self.shortcut = _projection(in_ch, planes, stride)

    def forward(self, x):
        # bf16_out: a bf16 net's maps stay bf16 from block to block (conv_bn says where they can).
        y = conv_bn(self.conv1, self.bn1, x, relu=True, channels_last=True, bf16_out=True)
        return conv_bn(self.conv2, self.bn2, y, relu=True, residual=_shortcut(self.shortcut, x), channels_last=True,
                       bf16_out=True)


class Bottleneck(nn.Layer):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand to ``planes * 4``, batch norm after each."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64):
        super().__init__()
        # ResNeXt's "cardinality x width": 32x4d has 32 groups of 4 channels at planes=64.
        width = int(planes * base_width / 64) * groups
        out_ch = planes * self.expansion
        self.conv1 = Conv2D(in_ch, width, 1)
        self.bn1 = BatchNorm2D(width)
        self.conv2 = Conv2D(width, width, 3, stride=stride, padding=1, groups=groups)
        self.bn2 = BatchNorm2D(width)
        self.conv3 = Conv2D(width, out_ch, 1)
        self.bn3 = BatchNorm2D(out_ch)
        self.shortcut = _projection(in_ch, out_ch, stride)

    def forward(self, x):
        y = conv_bn(self.conv1, self.bn1, x, relu=True, channels_last=True, bf16_out=True)
        y = conv_bn(self.conv2, self.bn2, y, relu=True, channels_last=True, bf16_out=True)
        return conv_bn(self.conv3, self.bn3, y, relu=True, residual=_shortcut(self.shortcut, x), channels_last=True,
                       bf16_out=True)


class ResNet(nn.Layer):
    """Stem, four stages of ``layers[i]`` blocks (the first of stages 2-4 halves the size), global
    average pooling and one linear layer whose input is ``widths[-1] * block.expansion``.

    ``small=True`` replaces the 7x7 stride-2 stem and its max pool (4x downsampling, made for
    224x224) by a 3x3 stride-1 stem, so 28x28 input keeps 28-14-7-4 maps.
    """

    def __init__(self, block: Type[nn.Layer], layers: Sequence[int], num_classes: int, in_channels: int,
                 widths: Sequence[int] = (64, 128, 256, 512), small: bool = False, groups: int = 1,
                 base_width: int = 64):
        super().__init__()
        if small:
            self.stem = ConvNormReLU(Conv2D(in_channels, widths[0], 3, padding=1), BatchNorm2D(widths[0]), ReLU(),
                                     channels_last=True, bf16_out=True)
        else:
            self.stem = nn.Sequential(Conv2D(in_channels, widths[0], 7, stride=2, padding=3),
                                      BatchNorm2D(widths[0]), ReLU(), MaxPool2D(3, stride=2, padding=1))
        stages, ch = [], widths[0]
        for i, (n, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(ch, planes, stride, groups, base_width))
                ch = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(ch, num_classes))

    def forward(self, x):
        with channels_last_chain():  # the stem and the blocks hand NHWC maps on (nets._layers.ChannelsLast)
            maps = self.stages(self.stem(x))
        return self.head(plain(maps))


_WIDTHS = (64, 128, 256, 512)


def _widths(width: float):
    return tuple(scaled(c, width) for c in _WIDTHS)


@register("resnet18", input_size=(1, 224, 224))
def resnet18(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2) for 224x224: 11,186,186 parameters on 1x224x224."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


@register("resnet34", input_size=(1, 224, 224))
def resnet34(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> ResNet:
    """ResNet-34 (basic blocks 3-4-6-3) for 224x224."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels)


@register("resnet50", input_size=(1, 224, 224))
def resnet50(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> ResNet:
    """ResNet-50 (bottleneck blocks 3-4-6-3) for 224x224."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


@register("resnext50_32x4d", input_size=(1, 224, 224))
def resnext50_32x4d(num_classes: int = 10, in_channels: int = 1, input_size=(224, 224)) -> ResNet:
    """ResNeXt-50 32x4d: ResNet-50's layout with 32-group 3x3 convolutions, 4 channels per group."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, groups=32, base_width=4)


@register("resnet18_small", input_size=(1, 28, 28))
def resnet18_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.25) -> ResNet:
    """ResNet-18 for 28x28: 3x3 stride-1 stem without max pool, quarter width (16-32-64-128 channels)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, widths=_widths(width), small=True)


@register("resnext_small", input_size=(1, 28, 28))
def resnext_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.25,
                  groups: int = 8, base_width: int = 4) -> ResNet:
    """A ResNeXt for 28x28: bottleneck blocks 1-1-1-1, 8-group 3x3 convolutions, quarter width."""
    return ResNet(Bottleneck, (1, 1, 1, 1), num_classes, in_channels, widths=_widths(width), small=True,
                  groups=groups, base_width=base_width)

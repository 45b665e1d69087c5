"""GoogLeNet (Szegedy et al. 2014) from Inception blocks, and Inception-v2/v3 style factorised blocks.

An Inception block runs four branches side by side and concatenates them: 1x1; 1x1 -> 3x3;
1x1 -> 5x5; 3x3 max pool -> 1x1. The 1x1 "reductions" before the 3x3 and 5x5 convolutions are
what keep it cheap: a 3x3 path from 192 to 128 channels costs 192*128*9 = 221,184 weights, but
only 192*96 + 96*128*9 = 129,024 behind a 96-channel reduction (see :func:`conv_path`).

In training GoogLeNet also returns the logits of two auxiliary classifiers (after blocks 4a and
4d); :class:`paddle_cnn.training.AuxiliaryLoss` weights them 0.3 each. In eval mode, and so at
inference, only the main logits are returned.
"""
from __future__ import annotations

from typing import Optional, Tuple

import paddle
from paddle import nn

from ._blocks import conv_bn_relu, scaled
from ._layers import AvgPool2D, Conv2D, MaxPool2D, ReLU
from ._registry import flat_features, probe, register


def conv_path(in_ch: int, out_ch: int, kernel_size: int = 3, reduce: Optional[int] = None,
              style: str = "v1", batch_norm: bool = False) -> nn.Sequential:
    """One convolutional branch: an optional 1x1 reduction, then a ``kernel_size`` convolution.

    style "v1" uses the kxk kernel as is; "v2" replaces a 5x5 by two 3x3 (same field, 18/25 of the
    weights); "v3" does that and also replaces every k x k by 1 x k then k x 1 (2/k of the weights).
    """
    if style not in ("v1", "v2", "v3"):
        raise ValueError(f"style must be 'v1', 'v2' or 'v3', got {style!r}")
    layers, ch = [], in_ch
    if reduce is not None:
        layers.append(conv_bn_relu(ch, reduce, 1, batch_norm=batch_norm))
        ch = reduce
    kernels = [3, 3] if style != "v1" and kernel_size == 5 else [kernel_size]
    for k in kernels:
        if style == "v3" and k > 1:
            layers += [conv_bn_relu(ch, out_ch, (1, k), batch_norm=batch_norm),
                       conv_bn_relu(out_ch, out_ch, (k, 1), batch_norm=batch_norm)]
        else:
            layers.append(conv_bn_relu(ch, out_ch, k, batch_norm=batch_norm))
        ch = out_ch
    return nn.Sequential(*layers)


class Inception(nn.Layer):
    """Four branches concatenated: ``c1`` 1x1; ``c2`` = (reduce, out) 3x3; ``c3`` = (reduce, out) 5x5;
    ``c4`` 1x1 after a 3x3 max pool. ``style`` chooses v1, v2 or v3 factorisation (see :func:`conv_path`);
    ``kernel`` is the middle branch's n x n (3 in GoogLeNet; Inception-v3 uses 7 on 17x17 maps)."""

    def __init__(self, in_ch: int, c1: int, c2: Tuple[int, int], c3: Tuple[int, int], c4: int,
                 style: str = "v1", kernel: int = 3):
        super().__init__()
        bn = style != "v1"
        self.out_channels = c1 + c2[1] + c3[1] + c4
        self.p1 = conv_bn_relu(in_ch, c1, 1, batch_norm=bn)
        self.p2 = conv_path(in_ch, c2[1], kernel, reduce=c2[0], style=style, batch_norm=bn)
        self.p3 = conv_path(in_ch, c3[1], 5, reduce=c3[0], style=style, batch_norm=bn)
        self.p4 = nn.Sequential(MaxPool2D(3, stride=1, padding=1), conv_bn_relu(in_ch, c4, 1, batch_norm=bn))

    def forward(self, x):
        return paddle.concat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], axis=1)


# (c1, (c2 reduce, c2), (c3 reduce, c3), c4) for each block of the paper's Table 1.
STAGE3 = [(64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)]
STAGE4 = [(192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64), (128, (128, 256), (24, 64), 64),
          (112, (144, 288), (32, 64), 64), (256, (160, 320), (32, 128), 128)]
STAGE5 = [(256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)]


class AuxClassifier(nn.Layer):
    """The auxiliary head: 5x5 average pool (stride 3), 1x1 conv to 128, FC 1024, dropout 0.7, FC."""

    def __init__(self, in_ch: int, num_classes: int, in_size: Tuple[int, int], width: float = 1.0):
        super().__init__()
        pool = min(5, *in_size)  # small inputs: the map may be smaller than the paper's 14x14
        self.features = nn.Sequential(AvgPool2D(pool, stride=3), Conv2D(in_ch, scaled(128, width), 1),
                                      ReLU(), nn.Flatten())
        n_flat = flat_features(self.features, (in_ch, *in_size))
        hidden = scaled(1024, width)
        self.classifier = nn.Sequential(nn.Linear(n_flat, hidden), ReLU(), nn.Dropout(0.7),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class GoogLeNet(nn.Layer):
    """GoogLeNet; ``small=True`` replaces the 7x7 stride-2 stem and first pool (4x downsampling) by a
    3x3 stride-1 stem, for 28x28 input. ``width`` scales every channel count."""

    aux_weights = (0.3, 0.3)  # read by the trainer's loss: the paper's auxiliary loss weights

    def __init__(self, num_classes: int, in_channels: int, input_size: Tuple[int, int], small: bool = False,
                 width: float = 1.0, style: str = "v1", aux: bool = True, dropout: float = 0.4,
                 kernel: int = 3):
        super().__init__()
        w = lambda c: scaled(c, width)  # noqa: E731
        bn = style != "v1"
        if small:
            stem = [conv_bn_relu(in_channels, w(64), 3, batch_norm=bn)]
        else:
            stem = [Conv2D(in_channels, w(64), 7, stride=2, padding=3), ReLU(), MaxPool2D(3, 2, padding=1)]
        self.stem = nn.Sequential(*stem, conv_bn_relu(w(64), w(64), 1, batch_norm=bn),
                                  conv_bn_relu(w(64), w(192), 3, batch_norm=bn),
                                  MaxPool2D(3, 2, padding=1))

        def stage(specs, ch):
            blocks = []
            for c1, c2, c3, c4 in specs:
                block = Inception(ch, w(c1), (w(c2[0]), w(c2[1])), (w(c3[0]), w(c3[1])), w(c4), style, kernel)
                blocks.append(block)
                ch = block.out_channels
            return blocks, ch

        b3, ch = stage(STAGE3, w(192))
        self.stage3 = nn.Sequential(*b3, MaxPool2D(3, 2, padding=1))
        b4, ch4 = stage(STAGE4, ch)
        self.stage4 = nn.LayerList(b4)
        self.pool4 = MaxPool2D(3, 2, padding=1)
        b5, ch5 = stage(STAGE5, ch4)
        self.stage5 = nn.Sequential(*b5, nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Dropout(dropout))
        self.fc = nn.Linear(ch5, num_classes)
        self.aux1 = self.aux2 = None
        if aux:
            stem_to_stage3 = nn.Sequential(self.stem, self.stage3)
            size4 = tuple(int(v) for v in probe(stem_to_stage3, (in_channels, *input_size)).shape[2:])
            self.aux1 = AuxClassifier(b4[0].out_channels, num_classes, size4, width)
            self.aux2 = AuxClassifier(b4[3].out_channels, num_classes, size4, width)

    def forward(self, x):
        x = self.stage3(self.stem(x))
        aux = []
        for i, block in enumerate(self.stage4):
            x = block(x)
            if self.training and self.aux1 is not None and i in (0, 3):
                aux.append((self.aux1 if i == 0 else self.aux2)(x))
        x = self.fc(self.stage5(self.pool4(x)))
        return (x, *aux) if aux else x


@register("googlenet", input_size=(3, 224, 224))
def googlenet(num_classes: int = 10, in_channels: int = 3, input_size=(224, 224), aux: bool = True) -> GoogLeNet:
    """GoogLeNet (Inception v1) for 224x224 input, with the two auxiliary classifiers in training."""
    return GoogLeNet(num_classes, in_channels, tuple(input_size), aux=aux)


@register("googlenet_small", input_size=(1, 28, 28))
def googlenet_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.25,
                    aux: bool = True) -> GoogLeNet:
    """GoogLeNet for 28x28 input: 3x3 stride-1 stem, quarter width, auxiliary classifiers kept."""
    return GoogLeNet(num_classes, in_channels, tuple(input_size), small=True, width=width, aux=aux)


@register("inception_v2_small", input_size=(1, 28, 28))
def inception_v2_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.25,
                       aux: bool = True) -> GoogLeNet:
    """googlenet_small with Inception-v2 blocks: batch norm, and each 5x5 as two 3x3 convolutions."""
    return GoogLeNet(num_classes, in_channels, tuple(input_size), small=True, width=width, style="v2", aux=aux)


@register("inception_v3_small", input_size=(1, 28, 28))
def inception_v3_small(num_classes: int = 10, in_channels: int = 1, input_size=(28, 28), width: float = 0.25,
                       aux: bool = True, n: int = 3) -> GoogLeNet:
    """googlenet_small with Inception-v3 blocks: batch norm, 5x5 as two 3x3, each n x n as 1 x n then n x 1.

    n = 3 suits the 14x14 and 7x7 maps of 28x28 input; the paper uses 7 on 17x17 maps.
    """
    return GoogLeNet(num_classes, in_channels, tuple(input_size), small=True, width=width, style="v3", aux=aux,
                     kernel=n)

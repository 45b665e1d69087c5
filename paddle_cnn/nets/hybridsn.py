"""HybridSN (Roy et al. 2019) for hyperspectral image patches: 3-D convolutions, then a 2-D convolution.

Input is a (C, bands, H, W) cube: by default one channel of 30 spectral bands (after PCA) on a
25x25 window, as the paper uses on Indian Pines. Three 3-D convolutions learn joint
spectral-spatial features; their spectral and channel axes are then folded into the channels of
a 2-D convolution.
"""
from __future__ import annotations

from typing import Tuple

from paddle import nn

from ._layers import Conv2D, Conv3D, ReLU, conv3d_relu_folded, conv_relu
from ._registry import InputTooSmallError, flat_features, misfit, probe, register


class HybridSN(nn.Layer):
    def __init__(self, num_classes: int, in_channels: int, input_size: Tuple[int, int, int], dropout: float = 0.4):
        super().__init__()
        # Unpadded kernels consume 7+5+3 bands and 3+3+3 (+3 in 2-D) pixels; an input too small for
        # them is refused by the probe below, which names the layer.
        self.conv3d = nn.Sequential(
            Conv3D(in_channels, 8, (7, 3, 3)), ReLU(),
            Conv3D(8, 16, (5, 3, 3)), ReLU(),
            Conv3D(16, 32, (3, 3, 3)), ReLU(),
        )
        problem = misfit(self.conv3d, (in_channels, *input_size))
        if problem:
            raise InputTooSmallError(problem)
        c, d, h, w = [int(v) for v in probe(self.conv3d, (in_channels, *input_size)).shape[1:]]
        self.conv2d = nn.Sequential(Conv2D(c * d, 64, 3), ReLU(), nn.Flatten())
        n_flat = flat_features(self.conv2d, (c * d, h, w))
        self.classifier = nn.Sequential(
            nn.Linear(n_flat, 256), ReLU(), nn.Dropout(dropout),
            nn.Linear(256, 128), ReLU(), nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        conv, act, flatten = self.conv2d
        x = conv3d_relu_folded(self.conv3d, x, bf16_out=conv.bf16)  # (N, C*D, H, W), NHWC-held on the fast path
        x = conv_relu(conv, act, x)
        return self.classifier(flatten(x))


@register("hybridsn", input_size=(1, 30, 25, 25))
def hybridsn(num_classes: int = 16, in_channels: int = 1, input_size=(30, 25, 25)) -> HybridSN:
    """HybridSN for 30-band 25x25 hyperspectral patches (the paper's Indian Pines setting)."""
    return HybridSN(num_classes, in_channels, tuple(input_size))

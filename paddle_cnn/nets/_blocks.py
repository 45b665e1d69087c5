"""Small building blocks shared by several network families."""
from __future__ import annotations

from typing import Optional

from paddle import nn

from ._layers import BatchNorm2D, Conv2D, ConvNormReLU, ReLU, Sequential


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size=3, stride=1, padding: Optional[object] = None,
                 groups: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """Conv (same padding unless given) -> BatchNorm (optional) -> ReLU.

    With batch norm the conv has no bias (the norm's shift makes it redundant) and the three run
    as one operator in evaluation (:class:`ConvNormReLU`).
    """
    if padding is None:
        padding = ([k // 2 for k in kernel_size] if isinstance(kernel_size, (tuple, list)) else kernel_size // 2)
    conv = Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups,
                  bias_attr=False if batch_norm else None)
    return ConvNormReLU(conv, BatchNorm2D(out_ch), ReLU()) if batch_norm else Sequential(conv, ReLU())


def scaled(channels: int, width: float) -> int:
    """``channels`` times a width multiplier, at least 1."""
    return max(1, int(round(channels * width)))


def dropout_mlp_head(n_in: int, hidden: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet's and VGG's classifier: two ``hidden``-wide ReLU layers with dropout, then the logits."""
    return nn.Sequential(
        nn.Linear(n_in, hidden), ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )

"""Loss and metric for networks that return auxiliary logits in training (GoogLeNet's two side heads).

``paddle.Model`` calls ``loss(*outputs, label)`` and ``metric.compute(*outputs, label)``; a net
with ``aux_weights`` returns ``(main, aux_1, ...)`` in train mode and only ``main`` in eval mode.
"""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn


class AuxiliaryLoss(nn.Layer):
    """Cross-entropy of the main logits plus ``weights[i]`` x cross-entropy of auxiliary logits i."""

    def __init__(self, weights: Sequence[float] = ()):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.ce = nn.CrossEntropyLoss()

    def forward(self, *args):
        *logits, label = args
        if len(logits) > 1 + len(self.weights):
            raise ValueError(f"the network returned {len(logits)} outputs but only {len(self.weights)} "
                             "auxiliary loss weights are known")
        loss = self.ce(logits[0], label)
        for w, aux in zip(self.weights, logits[1:]):
            loss = loss + w * self.ce(aux, label)
        return loss


class MainAccuracy(paddle.metric.Accuracy):
    """Accuracy of the first output only (the main head), whatever else the network returns."""

    def compute(self, *args):
        return super().compute(args[0], args[-1])

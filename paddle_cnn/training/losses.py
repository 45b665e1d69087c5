"""Loss and metric for networks that return auxiliary logits in training (GoogLeNet's two side heads).

``paddle.Model`` calls ``loss(*outputs, label)`` and ``metric.compute(*outputs, label)``; a net
with ``aux_weights`` returns ``(main, aux_1, ...)`` in train mode and only ``main`` in eval mode.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import paddle
from paddle import nn


class SmoothedCrossEntropy(nn.Layer):
    """Cross-entropy against the target ``(1 - eps) * one_hot + eps / classes`` (Szegedy et al. 2016).

    Written out as ``(1 - eps) * CE + eps * mean over classes of -log p``, which is the same number:
    Paddle 3.3's own ``label_smoothing`` fails on integer labels on CPU (no int64 ``label_smooth`` kernel).
    """

    def __init__(self, eps: float = 0.0):
        super().__init__()
        self.eps = float(eps)
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits, label):
        loss = self.ce(logits, label)
        if not self.eps:
            return loss
        uniform = -paddle.nn.functional.log_softmax(logits, axis=-1).mean()
        return (1 - self.eps) * loss + self.eps * uniform


class AuxiliaryLoss(nn.Layer):
    """Cross-entropy of the main logits plus ``weights[i]`` x cross-entropy of auxiliary logits i
    (each against the label smoothed by ``label_smoothing``)."""

    def __init__(self, weights: Sequence[float] = (), label_smoothing: float = 0.0):
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.ce = SmoothedCrossEntropy(label_smoothing)

    def forward(self, *args):
        *logits, label = args
        if len(logits) > 1 + len(self.weights):
            raise ValueError(f"the network returned {len(logits)} outputs but only {len(self.weights)} "
                             "auxiliary loss weights are known")
        # Under AMP O1 the logits come out in float16 (bfloat16 elsewhere): the softmax and the loss
        # are computed in float32, as autocast would for a loss inside it.
        logits = [x if x.dtype == paddle.float32 else x.astype("float32") for x in logits]
        loss = self.ce(logits[0], label)
        for w, aux in zip(self.weights, logits[1:]):
            loss = loss + w * self.ce(aux, label)
        return loss


class MainAccuracy(paddle.metric.Accuracy):
    """Accuracy of the first output only (the main head), whatever else the network returns.

    The correct mask is Paddle's (top-k of each row against the label, one-hot labels by their
    argmax), computed in NumPy: Paddle's version runs six dygraph operators on tensors still
    tracked by autograd, 0.9 ms a step on LeNet, a fifth of its training step on CPU.
    """

    def compute(self, *args):
        pred, label = args[0].astype("float32").numpy(), args[-1].numpy()  # float16 logits under AMP
        # A stable sort of the negated scores ranks ties by class index, as argmax does.
        top = np.argsort(-pred, axis=-1, kind="stable")[..., :self.maxk]
        if label.ndim == 1 or (label.ndim == 2 and label.shape[-1] == 1):
            label = label.reshape(-1, 1)
        elif label.shape[-1] != 1:
            label = np.argmax(label, axis=-1)[..., None]
        return paddle.to_tensor((top == label.astype(top.dtype)).astype(np.float32))

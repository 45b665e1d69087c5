"""The one inference path (network outputs for a whole dataset, in eval mode, sharded over the
processes of a data-parallel job) and whole-set metrics computed from them, never per-batch maxima."""
from __future__ import annotations

from typing import Dict

import numpy as np


def predict_logits(net, images, batch_size: int = 256) -> np.ndarray:
    """Logits of ``net`` in eval mode for every item of ``images``: an ArrayDataset or a float32
    (N, C, H, W) array. In a data-parallel job each process runs its share and the shares are
    gathered, so every process returns the same N rows in order. The net's mode is restored."""
    import paddle

    from ..nets import eval_mode
    from .parallel import gather_rows, world

    rank, size = world()
    n = len(images)
    lo, hi = n * rank // size, n * (rank + 1) // size
    outputs = []
    with eval_mode(net):
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            x = images[start:stop] if isinstance(images, np.ndarray) else images.batch(np.arange(start, stop))
            out = net(paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32)))
            outputs.append((out[0] if isinstance(out, (list, tuple)) else out).numpy())
    return gather_rows(np.concatenate(outputs) if outputs else None)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Mean cross-entropy and accuracy over every sample (what the notebook should have reported)."""
    labels = np.asarray(labels).reshape(-1)
    logp = log_softmax(np.asarray(logits, dtype=np.float64))
    loss = float(-logp[np.arange(len(labels)), labels].mean())
    acc = float((logp.argmax(axis=1) == labels).mean())
    return {"loss": loss, "acc": acc, "n": int(len(labels))}


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)), 1)
    return m

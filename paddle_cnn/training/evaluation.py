"""Whole-set metrics computed from a model's outputs, never from per-batch maxima."""
from __future__ import annotations

from typing import Dict

import numpy as np


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

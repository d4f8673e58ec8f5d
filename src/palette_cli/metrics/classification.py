"""Top-1 classification accuracy of outputs, against labels or against the originals' predictions."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .arrays import ArrayLike


def _top1(logits: ArrayLike) -> np.ndarray:
    if isinstance(logits, Tensor):
        logits = logits.detach().to("cpu").numpy()
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"expected (N, classes) logits, got shape {logits.shape}")
    return logits.argmax(axis=1)


def top1_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows whose highest logit is the label."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    predicted = _top1(logits)
    if labels.shape != predicted.shape:
        raise ValueError(f"{len(predicted)} predictions but {labels.size} labels")
    return float((predicted == labels).mean())


def top1_agreement(output_logits: ArrayLike, original_logits: ArrayLike) -> float:
    """Fraction of outputs classified (top-1) as their original photo is: accuracy without labels."""
    return top1_accuracy(output_logits, _top1(original_logits))


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax in float64 (stable)."""
    if isinstance(logits, Tensor):
        return torch.softmax(logits.detach().to("cpu", torch.float64), dim=1).numpy()
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)

"""Feature-space distances between an image and another: the paper's perceptual distance and LPIPS."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .arrays import ArrayLike, as_float64


def feature_distances(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Euclidean distance between matching rows of two ``(N, D)`` feature arrays → ``(N,)``."""
    a, b = as_float64(a), as_float64(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (N, D) arrays of one shape, got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=1)


def perceptual_distance(outputs: ArrayLike, originals: ArrayLike) -> float:
    """Mean Euclidean distance between pooled features of each output and its original (lower = closer)."""
    return float(feature_distances(outputs, originals).mean())


def normalize_channels(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Scale every feature vector (over the channel axis) to unit length."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_from_features(feats0: list[Tensor], feats1: list[Tensor], weights: list[Tensor] | None = None) -> Tensor:
    """The LPIPS formula on per-layer feature maps ``(B, C_l, H_l, W_l)`` → ``(B,)`` distances.

    Per layer: unit-normalise each feature vector, square the difference, weight the channels
    (``weights[l]`` of shape ``(C_l,)``; all ones when ``None``, the uncalibrated "baseline"),
    sum over channels, average over positions; then sum over layers.
    """
    if len(feats0) != len(feats1) or (weights is not None and len(weights) != len(feats0)):
        raise ValueError("feature lists (and weights) must have one entry per layer")
    total = None
    for layer, (f0, f1) in enumerate(zip(feats0, feats1)):
        diff = (normalize_channels(f0) - normalize_channels(f1)).pow(2)
        if weights is not None:
            diff = diff * weights[layer].to(diff).view(1, -1, 1, 1)
        value = diff.sum(dim=1).mean(dim=(1, 2))
        total = value if total is None else total + value
    assert total is not None
    return total

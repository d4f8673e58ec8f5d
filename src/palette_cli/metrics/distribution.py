"""Distances between sets of images seen through a feature network: FID, KID, Inception Score.

All computed in float64 on ``(N, D)`` feature arrays (numpy or torch).
"""

from __future__ import annotations

import numpy as np

from .arrays import ArrayLike, as_float64


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` features (N ≥ 2)."""
    f = as_float64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N, D) feature array with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr(sqrtm(sigma1 @ sigma2))`` for covariance matrices, computed stably.

    ``sigma1 @ sigma2`` is similar to the symmetric ``S @ sigma2 @ S`` with ``S = sqrtm(sigma1)``, so
    its eigenvalues are real and non-negative: the trace of its square root is the sum of their
    square roots. This gives what ``scipy.linalg.sqrtm`` gives on well-conditioned matrices, while
    complex parts (rounding noise) cannot arise and singular or near-singular covariances (fewer
    images than feature dimensions) need no diagonal offset: tiny negative eigenvalues are clipped to 0.
    """
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between Gaussians: ``|mu1 − mu2|² + tr(s1) + tr(s2) − 2 tr(sqrtm(s1 s2))``."""
    mu1, mu2 = as_float64(mu1), as_float64(mu2)
    sigma1, sigma2 = np.atleast_2d(as_float64(sigma1)), np.atleast_2d(as_float64(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {sigma1.shape}, "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def frechet_distance_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """FID-style distance between two ``(N, D)`` feature sets.

    With fewer images than dimensions the covariances are never formed: for centred features
    ``A1``, ``A2``, ``tr(sqrtm(s1 s2))`` is the nuclear norm (sum of singular values) of
    ``A1 A2ᵀ`` over ``sqrt((n1 − 1)(n2 − 1))``, an ``n1 × n2`` problem instead of a ``D × D`` one.
    """
    f1, f2 = as_float64(features1), as_float64(features2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need two (N, D) feature arrays with one D and N >= 2, got {f1.shape} and {f2.shape}")
    n1, n2, dim = len(f1), len(f2), f1.shape[1]
    if min(n1, n2) >= dim:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1, a2 = f1 - mu1, f2 - mu2
    trace1, trace2 = (a1 * a1).sum() / (n1 - 1), (a2 * a2).sum() / (n2 - 1)
    cross = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(max(diff @ diff + trace1 + trace2 - 2 * cross, 0.0))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """``(gamma · x·y + coef0) ** degree`` for all row pairs; ``gamma`` defaults to ``1 / D``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased estimate of MMD² from kernel matrices of two samples of equal size m."""
    m = k_xx.shape[0]
    same_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    same_y = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(same_x + same_y - 2 * k_xy.sum() / (m * m))


def kernel_distance(features1: ArrayLike, features2: ArrayLike, *, subsets: int = 100, subset_size: int = 1000,
                    degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                    seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD² over random subsets.

    As in Bińkowski et al. 2018 and torch-fidelity: cubic polynomial kernel ``(x·y / D + 1)³``;
    each subset draws ``subset_size`` rows of each set without replacement
    (``numpy.random.RandomState(seed).choice``). ``subset_size`` is capped at the smaller set;
    when that uses both sets whole, every subset is the same and one is computed (std 0).
    """
    f1, f2 = as_float64(features1), as_float64(features2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"expected two (N, D) arrays with one D, got {f1.shape} and {f2.shape}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    if m == len(f1) == len(f2):
        subsets = 1
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        values.append(mmd2_unbiased(polynomial_kernel(x, x, degree, gamma, coef0),
                                    polynomial_kernel(x, y, degree, gamma, coef0),
                                    polynomial_kernel(y, y, degree, gamma, coef0)))
    return float(np.mean(values)), float(np.std(values))


def inception_score(probabilities: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))``: mean and std over ``splits`` consecutive parts.

    ``probabilities`` are softmax outputs ``(N, classes)``; parts are taken in order, as in the
    original implementation (``splits`` is capped at N).
    """
    p = as_float64(probabilities)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected (N, classes) probabilities, got shape {p.shape}")
    n = len(p)
    splits = max(1, min(splits, n))
    scores = []
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))

"""Metric formulas against scipy / straightforward numpy references and closed-form cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from palette_cli.metrics import (
    MS_SSIM_WEIGHTS,
    consecutive_distances,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    kernel_distance,
    lpips_from_features,
    ms_ssim,
    ms_ssim_scales,
    ms_ssim_to_first,
    perceptual_distance,
    psnr,
    ssim,
    top1_accuracy,
    top1_agreement,
)
from palette_cli.metrics.pixel import SSIM_K1, SSIM_K2

scipy_linalg = pytest.importorskip("scipy.linalg")


def scipy_fid(f1: np.ndarray, f2: np.ndarray, eps: float = 0.0) -> float:
    """The usual reference: scipy.linalg.sqrtm of the covariance product, real part."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    offset = eps * np.eye(len(mu1))
    covmean = scipy_linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def correlated_features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = correlated_features(np.random.default_rng(0), 300, 24)
    assert frechet_distance_from_features(f, f) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_scipy_sqrtm_reference():
    rng = np.random.default_rng(1)
    f1 = correlated_features(rng, 400, 32)
    f2 = correlated_features(rng, 350, 32, shift=0.3) * 1.2
    expected = scipy_fid(f1, f2)
    assert expected > 1.0
    assert frechet_distance_from_features(f1, f2) == pytest.approx(expected, rel=1e-8)
    # torch input gives the same number
    from_torch = frechet_distance_from_features(torch.from_numpy(f1), torch.from_numpy(f2))
    assert from_torch == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # 5 + 2 = 7
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(7.0)


def test_frechet_distance_with_singular_covariances_is_finite_and_near_the_offset_reference():
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(12, 40)), rng.normal(size=(15, 40)) + 0.2  # fewer samples than dimensions
    value = frechet_distance_from_features(f1, f2)
    assert math.isfinite(value) and value > 0
    # pytorch-fid's fallback adds a small offset to the diagonals; the eigenvalue route needs none
    assert value == pytest.approx(scipy_fid(f1, f2, eps=1e-6), rel=1e-3)
    # the n × n nuclear-norm route equals the D × D eigenvalue route on the covariances (whose zero
    # eigenvalues come out as rounding noise, hence the tolerance)
    assert value == pytest.approx(frechet_distance(*feature_statistics(f1), *feature_statistics(f2)), rel=1e-6)


def test_feature_statistics_and_input_checks():
    f = np.arange(12, dtype=float).reshape(4, 3)
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, [4.5, 5.5, 6.5])
    np.testing.assert_allclose(sigma, np.full((3, 3), 15.0))  # var of 0,3,6,9 with ddof=1
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(mu, sigma, mu[:2], sigma[:2, :2])


# --------------------------------------------------------------------------- KID


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² written out with loops over pairs, kernel (x·y/d + 1)³."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_on_whole_sets_matches_the_loop_reference():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 6)) + 0.5
    mean, spread = kernel_distance(x, y, subsets=50, subset_size=1000)
    assert mean == pytest.approx(reference_mmd2(x, y), rel=1e-10)
    assert spread == 0.0  # whole sets each time: one subset


def test_kid_subsets_match_the_reference_with_the_same_draws():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) * 1.5
    mean, spread = kernel_distance(x, y, subsets=4, subset_size=10, seed=7)
    draws = np.random.RandomState(7)
    values = []
    for _ in range(4):
        xs = x[draws.choice(30, 10, replace=False)]
        ys = y[draws.choice(25, 10, replace=False)]
        values.append(reference_mmd2(xs, ys))
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert spread == pytest.approx(np.std(values), rel=1e-8)
    assert spread > 0


def test_kid_is_unbiased_near_zero_for_one_distribution_and_large_for_shifted():
    rng = np.random.default_rng(5)
    same = kernel_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), subsets=10, subset_size=200)[0]
    shifted = kernel_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 1, subsets=10,
                              subset_size=200)[0]
    assert abs(same) < 0.02 < shifted


# --------------------------------------------------------------------------- Inception Score


def reference_inception_score(p: np.ndarray, splits: int) -> tuple[float, float]:
    scores = []
    n = len(p)
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        py = part.mean(0)
        kls = [sum(pi[c] * math.log(pi[c] / py[c]) for c in range(len(py)) if pi[c] > 0) for pi in part]
        scores.append(math.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_reference_on_fixed_probabilities():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(40, 7)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[0] = [1, 0, 0, 0, 0, 0, 0]  # exact zeros are allowed
    mean, spread = inception_score(p, splits=4)
    ref_mean, ref_spread = reference_inception_score(p, 4)
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert spread == pytest.approx(ref_spread, rel=1e-9)


def test_inception_score_closed_forms():
    assert inception_score(np.full((10, 5), 0.2), splits=1)[0] == pytest.approx(1.0)  # no information
    assert inception_score(np.eye(8), splits=1)[0] == pytest.approx(8.0)  # confident and all classes
    assert inception_score(np.eye(4)[[0, 0, 0]], splits=1)[0] == pytest.approx(1.0)  # confident, one class


# --------------------------------------------------------------------------- PSNR, SSIM, MS-SSIM


def smooth_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def test_psnr_known_values():
    x = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    assert psnr(x, x + 0.1).tolist() == pytest.approx([20.0, 20.0], abs=1e-9)
    assert psnr(x, x - 0.01).tolist() == pytest.approx([40.0, 40.0], abs=1e-9)
    assert float(psnr(x * 255, x * 255 + 25.5, data_range=255.0)[0]) == pytest.approx(20.0)
    assert float(psnr(x, x)[0]) == pytest.approx(100.0)  # identical: capped, finite


def test_ssim_of_identical_images_is_one_and_decreases_with_noise():
    x = smooth_images(2, 48)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    values = [float(ssim(x, (x + s * noise).clamp(0, 1)).mean()) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[0] < 1.0 and values[-1] < 0.5


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.6
    x, y = (torch.full((1, 3, 20, 20), v, dtype=torch.float64) for v in (a, b))
    c1 = SSIM_K1**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # zero variances: contrast-structure term is 1
    assert float(ssim(x, y)) == pytest.approx(expected, rel=1e-9)
    assert SSIM_K2 == 0.03


def test_ms_ssim_identity_scales_and_constant_images():
    assert [ms_ssim_scales(s, s) for s in (8, 22, 32, 64, 175, 176, 256)] == [1, 2, 2, 3, 4, 5, 5]
    for size in (32, 192):
        x = smooth_images(2, size, seed=2)
        assert ms_ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    a, b = 0.2, 0.7
    x, y = (torch.full((1, 3, 192, 192), v, dtype=torch.float64) for v in (a, b))
    luminance = (2 * a * b + SSIM_K1**2) / (a * a + b * b + SSIM_K1**2)
    last_weight = MS_SSIM_WEIGHTS[-1] / sum(MS_SSIM_WEIGHTS)
    assert float(ms_ssim(x, y)) == pytest.approx(luminance**last_weight, rel=1e-9)


def test_ms_ssim_decreases_with_noise():
    x = smooth_images(1, 64, seed=3)
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(x.shape, generator=g)
    values = [float(ms_ssim(x, (x + s * noise).clamp(0, 1))) for s in (0.02, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]


# --------------------------------------------------------------------------- accuracy, distances, diversity


def test_top1_accuracy_and_agreement():
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    assert top1_accuracy(logits, [1, 0, 0, 1]) == pytest.approx(0.75)
    original = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert top1_agreement(torch.from_numpy(logits), original) == pytest.approx(0.5)


def test_perceptual_distance_is_mean_euclidean_distance():
    out = np.array([[3.0, 4.0], [1.0, 1.0]])
    ref = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert perceptual_distance(out, ref) == pytest.approx(2.5)


def test_lpips_formula_closed_form():
    e1 = torch.zeros(1, 3, 1, 1)
    e1[0, 0] = 5.0  # normalised to unit length: (1, 0, 0)
    e2 = torch.zeros(1, 3, 1, 1)
    e2[0, 1] = 0.5  # (0, 1, 0)
    assert float(lpips_from_features([e1], [e2])) == pytest.approx(2.0)
    weights = [torch.tensor([0.25, 2.0, 7.0])]
    assert float(lpips_from_features([e1], [e2], weights)) == pytest.approx(2.25)
    assert float(lpips_from_features([e1, e2], [e1, e2])) == pytest.approx(0.0)


def test_diversity_helpers():
    x = smooth_images(1, 32, seed=5)
    same = x.expand(3, -1, -1, -1)
    assert ms_ssim_to_first(same).tolist() == pytest.approx([1.0, 1.0])
    samples = torch.arange(4, dtype=torch.float64).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    gaps = consecutive_distances(samples, lambda a, b: (b - a).mean(dim=(1, 2, 3)))
    assert gaps.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="K >= 2"):
        ms_ssim_to_first(x)


def test_mean_colour_error_and_colourfulness_known_values():
    from palette_cli.metrics import colourfulness, mean_colour_error

    x = torch.full((1, 3, 8, 8), 0.5)
    y = x.clone()
    y[:, 1] += 10 / 255  # a green cast of 10 levels
    assert mean_colour_error(x, y).item() == pytest.approx(10.0)
    assert mean_colour_error(x, x).item() == 0.0
    assert colourfulness(x).item() == 0.0  # grey
    z = torch.zeros(1, 3, 2, 2)
    z[:, 0] = 1.0  # pure red: rg = 255, yb = 127.5, no spread
    assert colourfulness(z).item() == pytest.approx(0.3 * (255**2 + 127.5**2) ** 0.5)
    half = torch.zeros(1, 3, 2, 2)
    half[:, 0, 0] = 1.0  # half the pixels red: σ and μ of rg and yb both half the full values
    expected = ((127.5**2 + 63.75**2) ** 0.5) + 0.3 * ((127.5**2 + 63.75**2) ** 0.5)
    assert colourfulness(half).item() == pytest.approx(expected)

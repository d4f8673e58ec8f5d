"""Metric formulas (pure, on tensors / numpy arrays), apart from the feature networks that feed them.

Set metrics (``distribution``): Fréchet distance, kernel distance (KID), Inception Score.
Paired metrics: PSNR, SSIM, MS-SSIM (``pixel``); perceptual distance and LPIPS (``perceptual``);
top-1 accuracy (``classification``). Diversity over samples (``diversity``). The networks are in
``features`` (loading, extraction) and ``networks/`` (architectures).
"""

from .classification import softmax, top1_accuracy, top1_agreement
from .distribution import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    kernel_distance,
    mmd2_unbiased,
    polynomial_kernel,
    trace_sqrt_product,
)
from .diversity import consecutive_distances, ms_ssim_to_first
from .perceptual import feature_distances, lpips_from_features, normalize_channels, perceptual_distance
from .pixel import (
    MS_SSIM_WEIGHTS,
    colourfulness,
    gaussian_window,
    mean_colour_error,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    ssim,
)

__all__ = [
    "MS_SSIM_WEIGHTS",
    "colourfulness",
    "consecutive_distances",
    "feature_distances",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_window",
    "inception_score",
    "kernel_distance",
    "lpips_from_features",
    "mean_colour_error",
    "mmd2_unbiased",
    "ms_ssim",
    "ms_ssim_scales",
    "ms_ssim_to_first",
    "normalize_channels",
    "perceptual_distance",
    "polynomial_kernel",
    "psnr",
    "softmax",
    "ssim",
    "top1_accuracy",
    "top1_agreement",
    "trace_sqrt_product",
]

"""Pixel-wise similarity of an output to its original: PSNR, SSIM and multi-scale SSIM.

Inputs are ``(B, C, H, W)`` tensors in ``[0, data_range]`` (the library's [-1, 1] images map to
[0, 1] by ``(x + 1) / 2``); results are ``(B,)`` float64 tensors, one value per image. The paper
notes that these reward blurry regression outputs; they are reported for reference, and MS-SSIM
also measures the diversity of samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_K1, SSIM_K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MAX_PSNR_DB = 100.0  # identical images: the error is floored so PSNR stays finite


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.to(torch.float64), y.to(torch.float64)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: ``10·log10(range² / MSE)`` (capped at 100 dB)."""
    x, y = _check_pair(x, y)
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    floor = data_range**2 * 10 ** (-MAX_PSNR_DB / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(floor))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """Normalised 1-D Gaussian of odd ``size`` (float64)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    return g / g.sum()


def _window_for(height: int, width: int, window_size: int) -> int:
    """The window, shrunk to the image when the image is smaller (kept odd)."""
    size = min(window_size, height, width)
    return size if size % 2 == 1 else size - 1


def _valid_filter_matrix(n: int, window: Tensor) -> Tensor:
    """The ``(n − k + 1, n)`` matrix applying a length-k window at every valid position."""
    k = len(window)
    m = n - k + 1
    index = torch.arange(m)[:, None] + torch.arange(k)[None, :]
    return torch.zeros(m, n, dtype=window.dtype).scatter_(1, index, window.expand(m, k).contiguous())


def _blur(x: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter per channel, "valid" (no padding), as two matrix products.

    Same numbers as a grouped ``conv2d`` with the 2-D window, but float64 matrix products are
    much faster on the CPU than float64 convolutions.
    """
    rows = _valid_filter_matrix(x.shape[-2], window).to(x)
    cols = _valid_filter_matrix(x.shape[-1], window).to(x)
    return rows @ x @ cols.T


def _ssim_and_cs(x: Tensor, y: Tensor, data_range: float, window: Tensor) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel: two ``(B, C)`` tensors."""
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x.pow(2)
    var_y = _blur(y * y, window) - mu_y.pow(2)
    cov = _blur(x * y, window) - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.pow(2) + mu_y.pow(2) + c1)
    return (luminance * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) per image: Gaussian window 11, σ = 1.5, K = (0.01, 0.03).

    Computed per channel over the valid positions of the window and averaged over channels. Images
    smaller than the window use a window of their size.
    """
    x, y = _check_pair(x, y)
    window = gaussian_window(_window_for(x.shape[-2], x.shape[-1], window_size), sigma)
    return _ssim_and_cs(x, y, data_range, window)[0].mean(dim=1)


def ms_ssim_scales(height: int, width: int, window_size: int = 11, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many scales MS-SSIM uses: the most (≤ 5) whose smallest image still holds the window."""
    scales = 1
    while scales < max_scales and min(height, width) // 2**scales >= window_size:
        scales += 1
    return scales


def ms_ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003) per image with the standard 5-scale weights.

    Contrast-structure terms at every scale but the last, the full SSIM at the last, each raised to
    its weight and multiplied (negative terms clipped to 0 first); 2×2 average pooling between
    scales. Images too small for 5 scales (below 176 px with the 11-px window) use the first
    :func:`ms_ssim_scales` weights, renormalised to sum to 1 — such values are not comparable with
    5-scale numbers. Computed per channel, averaged over channels.
    """
    x, y = _check_pair(x, y)
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1], window_size, len(weights))
    w = torch.tensor(weights[:scales], dtype=torch.float64)
    w = w / w.sum()
    window = gaussian_window(_window_for(x.shape[-2], x.shape[-1], window_size), sigma)
    result = torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)
    for level in range(scales):
        full, cs = _ssim_and_cs(x, y, data_range, window)
        term = full if level == scales - 1 else cs
        result = result * term.clamp_min(0).pow(w[level].item())
        if level < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return result.mean(dim=1)


def mean_colour_error(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """The largest difference of per-channel image means, in 8-bit levels (x 255 / range): a colour cast
    shows here even when the pixel error is small. (B,) per image."""
    x, y = _check_pair(x, y)
    return (x.mean(dim=(2, 3)) - y.mean(dim=(2, 3))).abs().amax(dim=1) * (255.0 / data_range)


def colourfulness(x: Tensor, data_range: float = 1.0) -> Tensor:
    """Hasler & Süsstrunk's colourfulness of RGB images on the 8-bit scale: ``σ_rgyb + 0.3·μ_rgyb`` with
    rg = R − G and yb = (R + G)/2 − B (0 for a grey image; ~33 "moderately", ~59 "quite", ~82 "highly"
    colourful in their study). (B,) per image."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
    x = x.to(torch.float64) * (255.0 / data_range)
    r, g, b = x[:, 0].flatten(1), x[:, 1].flatten(1), x[:, 2].flatten(1)
    rg, yb = r - g, (r + g) / 2 - b
    sigma = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    mu = (rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2).sqrt()
    return sigma + 0.3 * mu


# linear sRGB → CIE XYZ (sRGB primaries), and the D65 white point, shared by both CIELAB conversions
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
                (0.2126729, 0.7151522, 0.0721750),
                (0.0193339, 0.1191920, 0.9503041))
_D65_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(x: Tensor, data_range: float = 1.0) -> Tensor:
    """CIELAB (D65 white, sRGB primaries and transfer curve) of (B, 3, H, W) sRGB images in [0, range]."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
    c = (x.to(torch.float64) / data_range).clamp(0, 1)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64, device=x.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, linear)
    white = torch.tensor(_D65_WHITE, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    t = xyz / white
    eps = (6 / 29) ** 3
    f = torch.where(t > eps, t.clamp(min=eps) ** (1 / 3), t / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([lightness, a, b], dim=1)


def mean_lab(x: Tensor, data_range: float = 1.0) -> Tensor:
    """The mean CIELAB colour (L*, a*, b*; float64) of a (3, H, W) or (B, 3, H, W) sRGB image in [0, range],
    averaged over every pixel (of every image)."""
    return rgb_to_lab(x.unsqueeze(0) if x.ndim == 3 else x, data_range).mean(dim=(0, 2, 3))


def lab_to_rgb(lab: Tensor) -> Tensor:
    """sRGB in [0, 1] (float64, clamped to the gamut) of (B, 3, H, W) CIELAB values: the inverse of
    :func:`rgb_to_lab` for colours inside the sRGB gamut."""
    if lab.ndim != 4 or lab.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(lab.shape)}")
    lab = lab.to(torch.float64)
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    delta = 6 / 29
    t = torch.where(f > delta, f ** 3, 3 * delta ** 2 * (f - 4 / 29))
    white = torch.tensor(_D65_WHITE, dtype=torch.float64, device=lab.device).view(1, 3, 1, 1)
    m = torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64, device=lab.device)
    linear = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), t * white).clamp(0, 1)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp(min=1e-12) ** (1 / 2.4) - 0.055).clamp(0, 1)


def ab_error(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean per-pixel CIELAB a*b* distance between outputs and originals (B,): how far the colours are
    from the true ones whatever the lightness (a grey output scores the originals' mean chroma)."""
    x, y = _check_pair(x, y)
    if x.shape[1] != 3:
        raise ValueError("the a*b* error needs RGB images")
    lx, ly = rgb_to_lab(x, data_range), rgb_to_lab(y, data_range)
    return (lx[:, 1:] - ly[:, 1:]).square().sum(1).sqrt().flatten(1).mean(1)


def ab_spread(samples: Tensor, data_range: float = 1.0) -> float:
    """Mean over all pairs of (S, 3, H, W) samples of their mean per-pixel a*b* distance: how different
    the colours of several samples of one input are (0 for identical samples)."""
    if samples.ndim != 4 or samples.shape[0] < 2 or samples.shape[1] != 3:
        raise ValueError(f"expected (S >= 2, 3, H, W) samples, got {tuple(samples.shape)}")
    ab = rgb_to_lab(samples, data_range)[:, 1:]
    total, pairs = 0.0, 0
    for i in range(len(ab)):
        for j in range(i + 1, len(ab)):
            total += float((ab[i] - ab[j]).square().sum(0).sqrt().mean())
            pairs += 1
    return total / pairs

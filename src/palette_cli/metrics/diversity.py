"""Diversity of several samples drawn for one input (the paper's Table on sample diversity).

Lower MS-SSIM between the first sample and the others, and higher LPIPS between consecutive
samples, mean more diverse outputs.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .pixel import ms_ssim


def ms_ssim_to_first(samples: Tensor, data_range: float = 1.0) -> Tensor:
    """MS-SSIM of the first sample against each other one: ``(K, C, H, W)`` → ``(K − 1,)``."""
    if samples.ndim != 4 or samples.shape[0] < 2:
        raise ValueError(f"need (K, C, H, W) samples with K >= 2, got shape {tuple(samples.shape)}")
    rest = samples[1:]
    return ms_ssim(samples[:1].expand_as(rest), rest, data_range)


def consecutive_distances(samples: Tensor, distance: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``distance(s_k, s_k+1)`` for consecutive samples, batched: ``(K, C, H, W)`` → ``(K − 1,)``."""
    if samples.ndim != 4 or samples.shape[0] < 2:
        raise ValueError(f"need (K, C, H, W) samples with K >= 2, got shape {tuple(samples.shape)}")
    return distance(samples[:-1], samples[1:])

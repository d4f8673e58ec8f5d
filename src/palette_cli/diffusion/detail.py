"""Splitting an image into its local mean colours and its detail: the low-frequency lock that gives a
sampled fill the detail of its start (``process.sample_known``) and keeps a restored photo's local colours
(the JPEG task)."""

from __future__ import annotations

import torch
from torch import Tensor


def lock_low_frequencies(out: Tensor, ref: Tensor, size: int = 16) -> Tensor:
    """``out`` with its local mean colour (a ``size``-pixel box blur, twice) replaced by ``ref``'s."""
    def blur(x: Tensor) -> Tensor:
        k = min(size, x.shape[-2], x.shape[-1]) | 1
        for _ in range(2):
            x = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)
        return x
    ref = ref.expand_as(out).to(out.dtype)
    return (out + blur(ref) - blur(out)).clamp(-1, 1)

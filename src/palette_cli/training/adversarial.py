"""An adversarial loss for the generating fill: a patch critic that tells made pixels from a camera's.

A fill trained with L2 (or a feature distance) alone is pulled towards the conditional mean wherever the answer
is not in the input, and the mean of many plausible textures is a blur. A critic trained side by side to tell
the photo from the fill, patch by patch, rewards what no pixel loss can: detail that looks made by a camera
(pix2pix, Isola et al. 2017; LaMa, Suvorov et al. 2022, trains its fills the same way).

The critic is a small fully convolutional network (three strided 4×4 convolutions and two 3×3 ones, spectral
normalisation for a stable game at small batches, leaky ReLU) whose output is one logit per patch of 54×54
pixels, its receptive field, every 8 pixels. It sees the image only, not the mask. Its targets follow LaMa: every patch of a photo is real; in a fill (the estimate
pasted into the photo), patches in the made region are fake and the others real, so the critic has to find the
made pixels themselves and cannot learn "a hole was here". Both sides use the non-saturating logistic loss.

``AdversarialLoss(estimate, photo, mask)`` is the generator's term (the made region only), used like the
feature loss on the clean estimate; it also keeps the pasted fill, detached, and ``update(lr)`` then trains
the critic one step on it against the photo. The critic and its optimiser travel in the training checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchCritic(nn.Module):
    """Image (B,3,H,W) in [-1, 1] → a logit per patch (B,1,H/8,W/8)."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        for cin, cout, k, stride in [(3, c, 4, 2), (c, 2 * c, 4, 2), (2 * c, 4 * c, 4, 2), (4 * c, 4 * c, 3, 1)]:
            layers += [spectral_norm(nn.Conv2d(cin, cout, k, stride, 1)), nn.LeakyReLU(0.2)]
        layers.append(spectral_norm(nn.Conv2d(4 * c, 1, 3, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def patch_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """The share of made pixels in each patch of the critic's output grid (B,1,h,w), in [0, 1]."""
    return F.adaptive_avg_pool2d(mask.float(), size)


class AdversarialLoss(nn.Module):
    """The generator's adversarial term, and the critic's own training step (module docstring)."""

    def __init__(self, lr: float = 1e-4, channels: int = 64) -> None:
        super().__init__()
        self.critic = PatchCritic(channels)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.999))
        self.lr = float(lr)
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None
        self.last: dict[str, float] = {}

    def forward(self, estimate: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Non-saturating generator loss on the made patches: mean over them of softplus(-critic(fill))."""
        mask = mask.to(estimate.dtype)
        pasted = mask * estimate + (1 - mask) * target.to(estimate.dtype)
        self._pending = (pasted.detach().float(), target.detach().float(), mask.detach().float())
        self.critic.requires_grad_(False)
        try:
            logits = self.critic(pasted).float()
        finally:
            self.critic.requires_grad_(True)
        made = patch_mask(mask, logits.shape[-2:])
        return (F.softplus(-logits) * made).sum() / made.sum().clamp(min=1e-6)

    def critic_loss(self, fill: Tensor, photo: Tensor, mask: Tensor) -> Tensor:
        """Real photo patches → 1; the fill's patches → 0 in proportion to their share of made pixels."""
        real = self.critic(photo).float()
        fake = self.critic(fill).float()
        made = patch_mask(mask, fake.shape[-2:])
        fake_loss = made * F.softplus(fake) + (1 - made) * F.softplus(-fake)
        return F.softplus(-real).mean() + fake_loss.mean()

    def update(self, lr_scale: float = 1.0, reduce=None) -> float | None:
        """One critic step on the fill the last generator term saw; ``reduce`` averages gradients across
        ranks (DistributedDataParallel's job for the generator). Returns the critic's loss, or None."""
        if self._pending is None:
            return None
        fill, photo, mask = self._pending
        self._pending = None
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * lr_scale
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.critic_loss(fill, photo, mask)
        loss.backward()
        if reduce is not None:
            for p in self.critic.parameters():
                if p.grad is not None:
                    reduce(p.grad)
        self.optimizer.step()
        self.last = {"critic_loss": float(loss.detach())}
        return self.last["critic_loss"]

    def state(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])

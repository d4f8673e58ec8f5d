"""Training a fill's fine stage for what it is handed at sampling time: a coarse layout, not the photo.

A two-stage fill (``tasks/coarse.py``) starts the fine network part-way, at ``guess_time`` T, from the bridge
state between the coarse stage's enlarged sample and the start. A fine network trained only on bridge states
of the photo itself has learnt that at t = 0.3 the state still holds 70 % of the photo's detail; handed a
layout with no detail it takes the missing detail for a smooth photo and returns haze, and from the true
photo's 64-px layout it even comes back further from the photo than the layout was (docs/RESULTS.md,
Study 18). Cascaded diffusion models train each refining stage on degraded versions of what the stage
before it gives (Ho et al. 2022, conditioning augmentation); this is that for a bridge that starts from a
guess: for a fraction of the examples the state at time ``t <= max_time`` is built from the photo's
**layout** (the unknown part shrunk by a factor and enlarged back) instead of the photo, and the loss still
asks for the photo (``training.layout_training``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def layout_of(image: Tensor, factor: int) -> Tensor:
    """``image`` (B,C,H,W) with everything finer than ``factor`` pixels removed: an area-average to 1/factor
    of its size (at least one pixel), enlarged back bicubically and clamped to [-1, 1]: the same shrinking and
    enlarging as the coarse stage's guess (``tasks.coarse.coarse_guess``), with the photo in place of its sample."""
    h, w = image.shape[-2:]
    small = F.interpolate(image.float(), size=(max(1, h // factor), max(1, w // factor)), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1).to(image.dtype)


def add_layout_guesses(batch: dict[str, Tensor], fraction: float, factors: list[int], max_time: float,
                       generator: torch.Generator) -> dict[str, Tensor]:
    """The batch with ``guess`` (B,C,H,W) and ``guess_time`` (B,): for each example drawn with probability
    ``fraction``, its target's layout at one of ``factors`` (drawn) inside the mask and the target outside,
    and ``max_time``; for the others the target itself and 1 (a bridge then trains exactly as without them).
    ``generator`` draws only here, so the process's own draws stay the same."""
    target, mask = batch["target"], batch["mask"]
    b = target.shape[0]
    use = torch.rand(b, generator=generator) < fraction
    pick = torch.randint(len(factors), (b,), generator=generator)
    guess = target.clone()
    for i, factor in enumerate(factors):
        sel = (use & (pick == i)).nonzero().flatten().to(target.device)
        if sel.numel():
            guess[sel] = torch.where(mask[sel].bool(), layout_of(target[sel], factor), target[sel])
    times = torch.ones(b).masked_fill(use, float(max_time)).to(target.device)
    return {**batch, "guess": guess, "guess_time": times}

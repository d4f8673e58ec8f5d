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

With ``training.layout_source`` naming a model file, the guesses are instead **the coarse stage's own samples**
(that file's coarse stage, or the file itself when it holds none) made from the example's known part at
1/factor of the crop, with the coarse process's own settings and fresh noise, and enlarged: what the fine
stage is handed at sampling time, errors included. A true layout continues what crosses the seam, and a fine
stage trained on it learns to trust that continuation (Study 22: it repeated panorama strips); a coarse sample
is sometimes wrong there, and the loss still asks for the photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def layout_of(image: Tensor, factor: int) -> Tensor:
    """``image`` (B,C,H,W) with everything finer than ``factor`` pixels removed: an area-average to 1/factor
    of its size (at least one pixel), enlarged back bicubically and clamped to [-1, 1]: the same shrinking and
    enlarging as the coarse stage's guess (``tasks.coarse.coarse_guess``), with the photo in place of its sample."""
    h, w = image.shape[-2:]
    small = F.interpolate(image.float(), size=(max(1, h // factor), max(1, w // factor)), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1).to(image.dtype)


def load_layout_source(path: str | Path, device: str | torch.device = "cpu") -> "Pipeline":
    """The coarse stage that :func:`coarse_layout` samples: a model file's coarse stage, or the file itself
    when it holds none, with its own process settings (the file's decoding)."""
    from ..pipeline import Pipeline

    # precision fp32: the guesses must not depend on whether this CPU computes bf16 (a resumed run is exact)
    pipe = Pipeline.from_file(path, device=str(device), precision="fp32", force=True,
                              model_id=f"{path} (layout source)", model_hash="")  # no hash: nothing records it
    return pipe.coarse or pipe


def coarse_layout(coarse: "Pipeline", target: Tensor, mask: Tensor, factor: int, generator: torch.Generator) -> Tensor:
    """The coarse stage's sample of the unknown part of ``target`` (B,C,H,W; ``mask`` 1 = unknown), made at
    1/``factor`` of the crop from its known part alone and enlarged (:func:`palette_cli.tasks.coarse.coarse_guess`
    with the coarse view of that size); known pixels are the target's."""
    from ..tasks.coarse import coarse_guess

    h, w = target.shape[-2:]
    size = max(coarse.divisor, (min(h, w) // factor) // coarse.divisor * coarse.divisor)
    known = target.float() * (1 - mask.float())
    with torch.no_grad():  # on the CPU side: the pipeline takes its inputs to its device and returns to the CPU
        guess = coarse_guess(coarse, known.cpu(), mask.float().cpu(), generator, size=size)
    return guess.to(target.device, target.dtype)


def add_layout_guesses(batch: dict[str, Tensor], fraction: float, factors: list[int], max_time: float,
                       generator: torch.Generator, coarse: "Pipeline | None" = None) -> dict[str, Tensor]:
    """The batch with ``guess`` (B,C,H,W) and ``guess_time`` (B,): for each example drawn with probability
    ``fraction``, a layout of its target at one of ``factors`` (drawn) inside the mask and the target outside,
    and ``max_time``; for the others the target itself and 1 (a bridge then trains exactly as without them).
    The layout is the target's own (:func:`layout_of`), or with ``coarse`` that stage's sample
    (:func:`coarse_layout`). ``generator`` draws only here, so the process's own draws stay the same."""
    target, mask = batch["target"], batch["mask"]
    b = target.shape[0]
    use = torch.rand(b, generator=generator) < fraction
    pick = torch.randint(len(factors), (b,), generator=generator)
    guess = target.clone()
    for i, factor in enumerate(factors):
        sel = (use & (pick == i)).nonzero().flatten().to(target.device)
        if sel.numel():
            if coarse is None:
                layout = layout_of(target[sel], factor)
            else:
                layout = coarse_layout(coarse, target[sel], mask[sel], factor, generator)
            guess[sel] = torch.where(mask[sel].bool(), layout, target[sel])
    times = torch.ones(b).masked_fill(use, float(max_time)).to(target.device)
    return {**batch, "guess": guess, "guess_time": times}

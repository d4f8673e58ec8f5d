"""Uncropping: half of the image is unknown — one side, or a frame around a centred known part.

The direction is drawn uniformly from left, right, top, bottom and all four sides (each 1/5); the
unknown region is filled with standard Gaussian noise as in inpainting, and the loss counts only there.
A bridge model starts from the known part mirrored into the unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from ..imageio import pil_to_tensor, tensor_to_pil
from ..windows import (
    SIDES,
    StepCallback,
    extend_window,
    extension_passes,
    offset_progress,
    restore_original,
)
from .base import Example, PipelineLike, noise_fill
from .fill import mirror_fill
from .masks import UNCROP_DIRECTIONS, random_uncrop_mask, uncrop_mask

if TYPE_CHECKING:
    from PIL import Image

    from ..diffusion.process import SamplerSettings

__all__ = ["UNCROP_DIRECTIONS", "UncropTask", "uncrop_mask"]


@dataclass
class UncropTask:
    """Condition: image with noise on the unknown part; target: the image; loss mask: the unknown part."""

    directions: tuple[str, ...] = UNCROP_DIRECTIONS
    amount: float = 0.5
    name: str = "uncrop"

    def __post_init__(self) -> None:
        if isinstance(self.directions, str):
            self.directions = tuple(d.strip() for d in self.directions.split(",") if d.strip())
        unknown = set(self.directions) - set(UNCROP_DIRECTIONS)
        if unknown or not self.directions:
            raise ValueError(f"uncrop directions must be among {', '.join(UNCROP_DIRECTIONS)}, "
                             f"got {list(self.directions)}")
        if not 0 < self.amount < 1:
            raise ValueError(f"uncrop amount must be in (0, 1), got {self.amount}")

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        h, w = image.shape[-2:]
        mask = random_uncrop_mask(h, w, generator, tuple(self.directions), self.amount).to(image.dtype)
        return Example(cond=noise_fill(image, mask, generator), target=image, mask=mask, task=self.name,
                       start=mirror_fill(image, mask))

    # -- evaluation and inference (the paper's protocol; the CLI's command) --------------------------
    @staticmethod
    def evaluation_input(image: Tensor, generator: torch.Generator, *, direction: str = "right",
                         **setting) -> tuple[Tensor, Tensor]:
        """The evaluation input of a reference (3,H,W): half of it (one side, or a frame for ``all``)
        replaced by Gaussian noise; the model fills the mask inside the reference's own frame."""
        mask = uncrop_mask(image.shape[-2], image.shape[-1], direction)
        return noise_fill(image, mask, generator), mask

    @staticmethod
    def infer(pipe: PipelineLike, image: "Image.Image", mask: Tensor, settings: "SamplerSettings",
              generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None):
        from .inpaint import inpaint_photo

        return inpaint_photo(pipe, image, mask, settings, generator, num_samples, on_step)


def extend_photo(pipe: PipelineLike, image: "Image.Image", side: str, amount: int, settings: "SamplerSettings",
                 generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None,
                 on_pass: Callable[[list["Image.Image"]], None] | None = None) -> list["Image.Image"]:
    """Grow the canvas by ``amount`` pixels on one side, in passes of at most half a window; the
    original's pixels stay bit-identical."""
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; choose from {', '.join(SIDES)}")
    canvas = pil_to_tensor(image).unsqueeze(0).expand(num_samples, -1, -1, -1).clone()
    window = extend_window(image.width, image.height, side)
    passes = extension_passes(image.width, image.height, side, amount)
    done = 0
    for k in range(passes):
        add = min(window // 2, amount - done)
        canvas, mask, box = _grown(canvas, side, add, window)
        canvas = pipe.fill_window(canvas, mask, box, settings, generator, offset_progress(on_step, k, passes))
        done += add
        if on_pass is not None:
            on_pass([tensor_to_pil(c) for c in canvas])
    out = [tensor_to_pil(c) for c in canvas]
    return [restore_original(o, image, side, amount) for o in out]


def _grown(canvas: Tensor, side: str, add: int, window: int) -> tuple[Tensor, Tensor, tuple[int, int, int, int]]:
    """The canvas grown by ``add`` empty pixels on ``side``, its mask of new pixels, and the window (x0, y0,
    x1, y1) of the pass: the new band and as much of the old canvas as fits in ``window``."""
    b, c, h, w = canvas.shape
    if side in ("left", "right"):
        grown, mask = torch.zeros(b, c, h, w + add), torch.zeros(1, 1, h, w + add)
        if side == "right":
            grown[..., :w], mask[..., w:] = canvas, 1
            x0, x1 = max(0, w + add - window), w + add
        else:
            grown[..., add:], mask[..., :add] = canvas, 1
            x0, x1 = 0, min(w + add, window)
        return grown, mask, (x0, 0, x1, h)
    grown, mask = torch.zeros(b, c, h + add, w), torch.zeros(1, 1, h + add, w)
    if side == "bottom":
        grown[..., :h, :], mask[..., h:, :] = canvas, 1
        y0, y1 = max(0, h + add - window), h + add
    else:
        grown[..., add:, :], mask[..., :add, :] = canvas, 1
        y0, y1 = 0, min(h + add, window)
    return grown, mask, (0, y0, w, y1)


def anchor_band(image: "Image.Image", side: str, width: int, target: Tensor, radius: float) -> "Image.Image":
    """Pull the mean CIELAB colour of the outermost ``width`` columns on ``side`` back to within ``radius``
    (ΔE) of ``target`` (L*, a*, b*) when it has wandered further: the whole band is shifted in CIELAB by the
    excess, ramped in from 0 at the band's inner edge over its first quarter so no seam appears. A band
    within the radius is returned unchanged (the same object)."""
    from ..metrics.pixel import lab_to_rgb, rgb_to_lab

    w, h = image.size
    width = min(width, w)
    x0 = 0 if side == "left" else w - width
    band = image.crop((x0, 0, x0 + width, h)).convert("RGB")  # only the band is read and written
    lab = rgb_to_lab((pil_to_tensor(band).unsqueeze(0) + 1) / 2)
    drift = lab.mean(dim=(0, 2, 3)) - target.to(torch.float64)
    distance = float(drift.norm())
    if distance <= radius:
        return image
    excess = drift * (1 - radius / distance)
    inner = torch.arange(width, dtype=torch.float64)  # distance from the inner edge
    if side == "left":
        inner = inner.flip(0)
    ramp = (inner / max(1.0, width / 4)).clamp(max=1.0)
    fixed = lab_to_rgb(lab - excess.view(1, 3, 1, 1) * ramp.view(1, 1, 1, -1))
    out = image.convert("RGB")  # a copy
    out.paste(tensor_to_pil((fixed[0] * 2 - 1).float()), (x0, 0))
    return out


def panorama_photo(pipe: PipelineLike, image: "Image.Image", steps: int, settings: "SamplerSettings",
                   generator: torch.Generator, direction: str = "both", on_step: StepCallback | None = None,
                   on_frame: Callable[["Image.Image"], None] | None = None,
                   colour_anchor: float = 0.0) -> "Image.Image":
    """Repeated uncropping by half the image height per step, on the left, the right or both.

    ``colour_anchor`` > 0: after each pass, the new band's mean CIELAB colour is pulled back to within that
    ΔE of the input's mean (:func:`anchor_band`), so colour and brightness cannot wander pass after pass;
    0 leaves every pass as the model made it."""
    from ..metrics.pixel import mean_lab

    sides = {"both": ("left", "right"), "left": ("left",), "right": ("right",)}[direction]
    half = max(1, image.height // 2)
    target = mean_lab((pil_to_tensor(image.convert("RGB")) + 1) / 2) if colour_anchor > 0 else None
    current = image
    total = steps * len(sides)
    k = 0
    for _ in range(steps):
        for side in sides:
            current = extend_photo(pipe, current, side, half, settings, generator,
                                   on_step=offset_progress(on_step, k, total))[0]
            if target is not None:
                current = anchor_band(current, side, half, target, colour_anchor)
            k += 1
            if on_frame is not None:
                on_frame(current)
    return current

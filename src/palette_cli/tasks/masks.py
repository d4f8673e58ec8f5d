"""Inpainting and uncropping masks as pure functions ``(height, width, generator) -> (1,H,W)`` float tensors.

1 marks unknown pixels (to generate), 0 known ones. The training mixture follows Palette: 60% free-form
brush strokes (Algorithm 1 of DeepFill v2, Yu et al. 2019), 40% one to five rectangles covering 10–40%
of the image. Evaluation masks: free-form masks whose area falls in [10,20)%, [20,30)% or [30,40)%,
and the centre box (128×128 at 256×256, half of each side at other sizes).

DeepFill v2's strokes are drawn at 256×256 (mean vertex distance = diagonal / 8, brush widths 12–40 px);
brush widths here scale with sqrt(H·W)/256 so masks cover the same fraction of the image at any size.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .base import choice, normal, randint, uniform

MaskFn = Callable[[int, int, torch.Generator], Tensor]

# DeepFill v2 brush-stroke settings (defined for 256×256 images).
MIN_VERTICES, MAX_VERTICES = 4, 11
MEAN_ANGLE = 2 * math.pi / 5
ANGLE_RANGE = 2 * math.pi / 15
MIN_BRUSH_WIDTH, MAX_BRUSH_WIDTH = 12.0, 40.0
MAX_STROKES = 3

# Palette's rectangle masks.
BOX_COUNT = (1, 5)
BOX_AREA = (0.10, 0.40)
BOX_ASPECT = (0.5, 2.0)  # height / width of one box, drawn log-uniformly
FREE_FORM_SHARE = 0.6    # of the training masks; the rest are rectangles

UNCROP_DIRECTIONS = ("left", "right", "top", "bottom", "all")


def mask_area(mask: Tensor) -> float:
    """The fraction of unknown pixels."""
    return float(mask.detach().cpu().numpy().mean(dtype=np.float64))


def _to_tensor(canvas: Image.Image) -> Tensor:
    return torch.from_numpy((np.asarray(canvas) > 0).astype(np.float32))[None]


# --------------------------------------------------------------------------- free-form strokes


def _draw_stroke(draw: ImageDraw.ImageDraw, height: int, width: int, generator: torch.Generator) -> None:
    """One DeepFill v2 brush stroke: a random walk of 4–11 segments drawn with a round brush.

    Segment directions alternate around 2π/5 (and its mirror 2π − angle), so strokes zig-zag;
    lengths are N(r, r/2) clipped to [0, 2r] with r = diagonal / 8; vertices are clipped to the image.
    """
    radius = math.hypot(height, width) / 8
    scale = math.sqrt(height * width) / 256
    vertices = randint(generator, MIN_VERTICES, MAX_VERTICES)
    angle_min = MEAN_ANGLE - uniform(generator, 0, ANGLE_RANGE)
    angle_max = MEAN_ANGLE + uniform(generator, 0, ANGLE_RANGE)
    x, y = float(randint(generator, 0, width - 1)), float(randint(generator, 0, height - 1))
    points = [(x, y)]
    for i in range(vertices):
        angle = uniform(generator, angle_min, angle_max)
        if i % 2 == 0:
            angle = 2 * math.pi - angle
        length = min(max(normal(generator, radius, radius / 2), 0.0), 2 * radius)
        x = min(max(x + length * math.cos(angle), 0.0), float(width))
        y = min(max(y + length * math.sin(angle), 0.0), float(height))
        points.append((x, y))
    brush = max(1, round(uniform(generator, MIN_BRUSH_WIDTH, MAX_BRUSH_WIDTH) * scale))
    points = [(round(px), round(py)) for px, py in points]
    draw.line(points, fill=1, width=brush)
    half = brush / 2
    for px, py in points:  # round joints and ends
        draw.ellipse((px - half, py - half, px + half, py + half), fill=1)


def _flip_randomly(canvas: Image.Image, generator: torch.Generator) -> Image.Image:
    if uniform(generator) < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if uniform(generator) < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return canvas


def free_form_mask(height: int, width: int, generator: torch.Generator) -> Tensor:
    """DeepFill v2 free-form mask: one to three brush strokes, then random horizontal/vertical flips."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(randint(generator, 1, MAX_STROKES)):
        _draw_stroke(draw, height, width, generator)
    return _to_tensor(_flip_randomly(canvas, generator))


def free_form_mask_in_range(height: int, width: int, generator: torch.Generator, low: float, high: float,
                            max_tries: int = 10000) -> Tensor:
    """A free-form mask whose unknown area lies in [low, high): DeepFill v2 masks drawn until one fits.

    Plain rejection keeps the distribution of the training masks, conditioned on the area bucket
    (at 256×256 about 43%, 24% and 3% of the masks fall in the 10–20%, 20–30% and 30–40% buckets).
    """
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got [{low}, {high})")
    for _ in range(max_tries):
        mask = free_form_mask(height, width, generator)
        if low <= mask_area(mask) < high:
            return mask
    raise RuntimeError(f"no free-form mask with area in [{low}, {high}) at {height}×{width} "
                       f"in {max_tries} draws")


# --------------------------------------------------------------------------- rectangles


def random_boxes(height: int, width: int, generator: torch.Generator, max_tries: int = 1000
                 ) -> list[tuple[int, int, int, int]]:
    """One to five boxes ``(top, left, box_height, box_width)`` whose union covers 10–40% of the image.

    The count is uniform on 1..5 and the total area uniform on [10%, 40%), split at random between the
    boxes (each with an aspect ratio in [1/2, 2]); placements whose union falls outside the range
    (overlaps, clipping at the border) are drawn again.
    """
    total = height * width
    for _ in range(max_tries):
        count = randint(generator, *BOX_COUNT)
        area = uniform(generator, *BOX_AREA) * total
        shares = [-math.log(1.0 - uniform(generator)) for _ in range(count)]  # a flat Dirichlet split
        boxes = []
        for share in shares:
            box_area = area * share / sum(shares)
            aspect = math.exp(uniform(generator, math.log(BOX_ASPECT[0]), math.log(BOX_ASPECT[1])))
            bh = min(height, max(1, round(math.sqrt(box_area * aspect))))
            bw = min(width, max(1, round(box_area / bh)))
            boxes.append((randint(generator, 0, height - bh), randint(generator, 0, width - bw), bh, bw))
        if BOX_AREA[0] <= mask_area(boxes_to_mask(height, width, boxes)) < BOX_AREA[1]:
            return boxes
    raise RuntimeError(f"could not place boxes covering {BOX_AREA} of a {height}×{width} image")


def boxes_to_mask(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> Tensor:
    """The (1,H,W) mask that is 1 inside any of the boxes ``(top, left, box_height, box_width)``."""
    mask = np.zeros((1, height, width), np.float32)
    for top, left, bh, bw in boxes:
        mask[:, top:top + bh, left:left + bw] = 1
    return torch.from_numpy(mask)


def box_mask(height: int, width: int, generator: torch.Generator) -> Tensor:
    """Palette's rectangle mask: 1–5 boxes covering 10–40% of the image."""
    return boxes_to_mask(height, width, random_boxes(height, width, generator))


def center_box_mask(height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
    """The centred box of half the height and half the width (128×128 at 256×256); no randomness."""
    bh, bw = round(height / 2), round(width / 2)
    top, left = (height - bh) // 2, (width - bw) // 2
    return boxes_to_mask(height, width, [(top, left, bh, bw)])


def training_mask(height: int, width: int, generator: torch.Generator) -> Tensor:
    """Palette's training mixture: free-form strokes with probability 0.6, rectangles otherwise."""
    if uniform(generator) < FREE_FORM_SHARE:
        return free_form_mask(height, width, generator)
    return box_mask(height, width, generator)


def _bucket(low: float, high: float) -> MaskFn:
    def mask(height: int, width: int, generator: torch.Generator) -> Tensor:
        return free_form_mask_in_range(height, width, generator, low, high)

    mask.__doc__ = f"Free-form mask with area in [{low:.0%}, {high:.0%})."
    return mask


EVAL_MASKS: dict[str, MaskFn] = {
    "free_form_10_20": _bucket(0.1, 0.2),
    "free_form_20_30": _bucket(0.2, 0.3),
    "free_form_30_40": _bucket(0.3, 0.4),
    "center": center_box_mask,
}

MASKS: dict[str, MaskFn] = {
    "train": training_mask,
    "free_form": free_form_mask,
    "boxes": box_mask,
    **EVAL_MASKS,
}


def get_mask_fn(name: str) -> MaskFn:
    """A mask function by name (see ``MASKS``)."""
    try:
        return MASKS[name]
    except KeyError:
        raise ValueError(f"unknown mask kind {name!r}; choose from {', '.join(MASKS)}") from None


# --------------------------------------------------------------------------- uncropping


def uncrop_mask(height: int, width: int, direction: str, amount: float = 0.5) -> Tensor:
    """The uncropping mask: ``amount`` of the image unknown on one side, or around a centred known part.

    ``left``/``right``/``top``/``bottom``: the outer ``round(amount·side)`` columns or rows are unknown
    (exactly half the image when the side is even). ``all``: the known part is a centred rectangle of
    about ``(1−amount)^½`` of each side, ``kh × kw`` with ``kh = round(H·√(1−amount))`` and
    ``kw = ⌊K/kh⌋`` for ``K = H·W − round(amount·H·W)`` known pixels, plus the remaining ``K − kh·kw``
    pixels (fewer than ``kh``) as a partial column right of it, from its top. The unknown area is
    therefore exactly ``round(amount·H·W)`` pixels: 50% for any even pixel count.
    """
    if not 0 < amount < 1:
        raise ValueError(f"amount must be in (0, 1), got {amount}")
    mask = np.zeros((1, height, width), np.float32)
    if direction in ("left", "right"):
        n = round(amount * width)
        if direction == "left":
            mask[..., :n] = 1
        else:
            mask[..., width - n:] = 1
    elif direction in ("top", "bottom"):
        n = round(amount * height)
        if direction == "top":
            mask[..., :n, :] = 1
        else:
            mask[..., height - n:, :] = 1
    elif direction == "all":
        known = height * width - round(amount * height * width)
        kh = min(height, max(1, round(height * math.sqrt(1 - amount))))
        kw, extra = divmod(known, kh)
        if kw + (extra > 0) > width:
            raise ValueError(f"cannot frame {height}×{width} with {amount:.0%} unknown")
        top, left = (height - kh) // 2, (width - kw - (extra > 0)) // 2
        mask[:] = 1
        mask[:, top:top + kh, left:left + kw] = 0
        if extra:
            mask[:, top:top + extra, left + kw] = 0
    else:
        raise ValueError(f"unknown uncrop direction {direction!r}; choose from {', '.join(UNCROP_DIRECTIONS)}")
    return torch.from_numpy(mask)


def random_uncrop_mask(height: int, width: int, generator: torch.Generator,
                       directions: tuple[str, ...] = UNCROP_DIRECTIONS, amount: float = 0.5) -> Tensor:
    """An uncropping mask with its direction drawn uniformly from ``directions``."""
    return uncrop_mask(height, width, directions[choice(generator, [1.0] * len(directions))], amount)

"""Colorization: the condition is the image's luma, replicated to three channels; the target is the RGB image.

Luma is ITU-R BT.601: Y = 0.299 R + 0.587 G + 0.114 B — the formula of JPEG/JFIF's YCbCr and of
Pillow's ``convert("L")``, so a gray photo saved by most tools is exactly its own luma.

At inference, :func:`merge_luminance` keeps the input's own full-resolution luma and takes only the
chroma (BT.601 Cb, Cr) from the generated low-resolution colour image. The 8-bit result is solved per
pixel so that its luma, computed as Pillow does, equals the input's luma **exactly** (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..diffusion.chroma import LUMA_WEIGHTS
from ..imageio import pil_to_tensor, tensor_to_pil
from ..windows import StepCallback, working_size
from .base import Example, PipelineLike, full_mask

if TYPE_CHECKING:
    from ..diffusion.process import SamplerSettings

# Pillow's 16-bit fixed-point BT.601 weights (they sum to 65536): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
LUMA_FIXED = (19595, 38470, 7471)
_CORNERS = np.array(list(product((0, 1), repeat=3)), dtype=np.int32)  # the 8 floor/ceil choices of (R,G,B)
_CHUNK_PIXELS = 1 << 19


def luma(image: Tensor) -> Tensor:
    """BT.601 luma of (…,3,H,W) RGB, as (…,1,H,W) in the same range ([-1,1] stays [-1,1])."""
    r, g, b = image.unbind(-3)
    w = LUMA_WEIGHTS
    return (w[0] * r + w[1] * g + w[2] * b).unsqueeze(-3)


def to_gray(image: Tensor) -> Tensor:
    """The colorization condition: luma replicated to three channels, same shape as ``image``."""
    return luma(image).expand_as(image).contiguous()


def luma8(rgb: np.ndarray) -> np.ndarray:
    """8-bit luma of integer RGB (…,3) exactly as Pillow's ``convert("L")`` computes it."""
    rgb = rgb.astype(np.int32)  # 255·65536 + 2^15 fits in 31 bits
    total = rgb[..., 0] * LUMA_FIXED[0] + rgb[..., 1] * LUMA_FIXED[1] + rgb[..., 2] * LUMA_FIXED[2]
    return (total + 32768) >> 16


@dataclass
class ColorizeTask:
    """Condition: the gray image (luma ×3); target: the colour image; loss everywhere."""

    name: str = "colorize"

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        return Example(cond=to_gray(image), target=image, mask=full_mask(image), task=self.name)

    # -- evaluation and inference (the paper's protocol; the CLI's command) --------------------------
    @staticmethod
    def evaluation_input(image: Tensor, generator: torch.Generator, **setting) -> tuple[Tensor, None]:
        """The evaluation input of a reference (3,H,W): its gray version."""
        return to_gray(image), None

    @staticmethod
    def infer(pipe: PipelineLike, image: Image.Image, mask: Tensor | None, settings: "SamplerSettings",
              generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None):
        return colorize_photo(pipe, image, settings, generator, num_samples, on_step)


# --------------------------------------------------------------------------- inference: luminance merge


def _luma_of_input(full: Image.Image | Tensor) -> np.ndarray:
    """The input's 8-bit luma (H,W) as int64: Pillow's ``convert("L")`` of the image or of the tensor."""
    if isinstance(full, Image.Image):
        return np.asarray(full if full.mode == "L" else full.convert("RGB").convert("L"), dtype=np.int64)
    t = full.detach().to("cpu", torch.float32)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 3 and t.shape[0] == 3:
        return luma8(np.asarray(tensor_to_pil(t)))
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ValueError(f"expected an image, a (3,H,W) or a (1,H,W)/(H,W) tensor, got shape {tuple(t.shape)}")
    return ((t + 1) * 127.5).round().clamp(0, 255).to(torch.int64).numpy()


def _rgb_float(colour: Image.Image | Tensor) -> np.ndarray:
    """The generated colour image as float (h,w,3) in [0,255], without quantising tensors."""
    if isinstance(colour, Image.Image):
        return np.asarray(colour.convert("RGB"), dtype=np.float64)
    t = colour.detach().to("cpu", torch.float64)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3,h,w) colour tensor, got shape {tuple(t.shape)}")
    return ((t + 1) * 127.5).clamp(0, 255).permute(1, 2, 0).numpy()


def _chroma_offsets(colour: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Per-pixel RGB offsets (H,W,3) with zero luma, carrying the colour's BT.601 chroma at ``size`` (W,H).

    Cb and Cr are upsampled bicubically; the green offset is solved from the luma weights so that
    adding the offsets to a gray value changes its luma by exactly zero.
    """
    w = np.array(LUMA_FIXED, dtype=np.float64) / 65536
    y = colour @ w
    cb = (colour[..., 2] - y) / (2 * (1 - w[2]))
    cr = (colour[..., 0] - y) / (2 * (1 - w[0]))
    up = [np.asarray(Image.fromarray(c.astype(np.float32)).resize(size, Image.Resampling.BICUBIC),
                     dtype=np.float64) for c in (cb, cr)]
    off_r = 2 * (1 - w[0]) * up[1]
    off_b = 2 * (1 - w[2]) * up[0]
    off_g = -(w[0] * off_r + w[2] * off_b) / w[1]
    return np.stack([off_r, off_g, off_b], axis=-1)


def _solve_rgb(y: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Integer RGB (N,3) with ``luma8 == y`` exactly, as close as possible to ``y + offsets`` (N,),(N,3).

    1. The chroma is scaled down where needed so that y + s·offsets lies in [0,255]³ (luma unchanged,
       hue kept). 2. Of the 8 floor/ceil roundings of that point, the nearest one whose 8-bit luma is
       y is taken. One always exists: the roundings' lumas step by at most 0.19 across an interval of
       width 1 that contains y, so one falls in y's rounding window [y−½, y+½).
    """
    yf = y.astype(np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(offsets > 0, (255 - yf) / offsets, np.where(offsets < 0, yf / -offsets, np.inf))
    scale = np.clip(room.min(axis=1, keepdims=True), 0.0, 1.0)
    ideal = np.clip(yf + scale * offsets, 0, 255).astype(np.float32)
    base = np.floor(ideal).astype(np.int32)
    candidates = np.clip(base[:, None, :] + _CORNERS[None], 0, 255)  # (N,8,3)
    valid = luma8(candidates) == y[:, None]
    dist = ((candidates - ideal[:, None, :].astype(np.float32)) ** 2).sum(-1)
    best = np.where(valid, dist, np.inf).argmin(axis=1)
    rgb = candidates[np.arange(len(y)), best]
    unsolved = ~valid.any(axis=1)
    if unsolved.any():  # not reachable by the argument above; gray is always exact
        rgb[unsolved] = y[unsolved, None]
    return rgb.astype(np.uint8)


def merge_luminance(full: Image.Image | Tensor, colour: Image.Image | Tensor) -> Image.Image:
    """Put the chroma of ``colour`` (any size) onto the luminance of ``full`` (its own resolution).

    ``full`` is the user's image (PIL, or a (3,H,W) / (1,H,W) / (H,W) tensor in [-1,1]); ``colour`` the
    generated image at model resolution. The returned RGB image has ``full``'s size and its 8-bit
    luma — Pillow's ``convert("L")`` — equals ``full``'s exactly, pixel for pixel: the gray input's
    values for a gray input. Colours outside the RGB cube at that luma are desaturated, not clipped.
    """
    y = _luma_of_input(full)
    h, w = y.shape
    offsets = _chroma_offsets(_rgb_float(colour), (w, h))
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, _CHUNK_PIXELS // max(1, w))
    for top in range(0, h, rows):
        ys, offs = y[top:top + rows], offsets[top:top + rows]
        out[top:top + rows] = _solve_rgb(ys.reshape(-1), offs.reshape(-1, 3)).reshape(*ys.shape, 3)
    return Image.fromarray(out)


def colorize_photo(pipe: PipelineLike, image: Image.Image, settings: "SamplerSettings", generator: torch.Generator,
                   num_samples: int = 1, on_step: StepCallback | None = None) -> list[Image.Image]:
    """Colour for a photo (colour inputs are made gray first): generated at the working size, put on the
    input's own full-resolution luminance (:func:`merge_luminance`)."""
    size = working_size(image.width, image.height, pipe.resolution, pipe.divisor)
    small = pil_to_tensor(image.resize(size, Image.Resampling.LANCZOS)).unsqueeze(0)
    cond = to_gray(small).expand(num_samples, -1, -1, -1)
    out = pipe.sample(cond, settings, generator, on_step=on_step, samples_of_one=True)
    return [merge_luminance(image, tensor_to_pil(o)) for o in out]

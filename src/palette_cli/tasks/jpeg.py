"""JPEG restoration: the condition is the image after a real JPEG encode/decode (Pillow, in memory).

The quality factor Q is an integer in [5, 30] drawn with probability ∝ exp(−Q/10), as in Palette.
Pillow's defaults are kept otherwise (baseline JPEG, 4:2:0 chroma subsampling, standard tables).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from ..imageio import pil_to_tensor, tensor_to_pil
from .base import Example, choice, full_mask

QUALITY_RANGE = (5, 30)


def quality_probabilities(low: int = QUALITY_RANGE[0], high: int = QUALITY_RANGE[1]) -> dict[int, float]:
    """P(Q) ∝ exp(−Q/10) for the integers Q in [low, high]."""
    weights = {q: math.exp(-q / 10) for q in range(low, high + 1)}
    total = sum(weights.values())
    return {q: w / total for q, w in weights.items()}


def sample_jpeg_quality(generator: torch.Generator, low: int = QUALITY_RANGE[0],
                        high: int = QUALITY_RANGE[1]) -> int:
    """One quality factor Q ∈ [low, high] drawn with probability ∝ exp(−Q/10)."""
    probs = quality_probabilities(low, high)
    return low + choice(generator, list(probs.values()))


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """An 8-bit RGB image encoded as JPEG at ``quality`` in memory and decoded again."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def jpeg_degrade(image: Tensor, quality: int) -> Tensor:
    """An image tensor ((3,H,W) or (B,3,H,W), [-1,1]) quantised to 8 bits, JPEG-compressed and decoded."""
    if image.ndim == 4:
        return torch.stack([jpeg_degrade(x, quality) for x in image])
    return pil_to_tensor(jpeg_roundtrip(tensor_to_pil(image), quality)).to(image.dtype)


@dataclass
class JpegTask:
    """Condition: the JPEG-decoded image at a random quality (or a fixed ``quality``); target: the image."""

    quality: int | None = None
    low: int = QUALITY_RANGE[0]
    high: int = QUALITY_RANGE[1]
    name: str = "jpeg"

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= 100:
            raise ValueError(f"JPEG quality range must lie in 1..100, got [{self.low}, {self.high}]")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.quality}")

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        q = self.quality if self.quality is not None else sample_jpeg_quality(generator, self.low, self.high)
        return Example(cond=jpeg_degrade(image, q), target=image, mask=full_mask(image), task=self.name)

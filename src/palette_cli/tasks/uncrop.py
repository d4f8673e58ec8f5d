"""Uncropping: half of the image is unknown — one side, or a frame around a centred known part.

The direction is drawn uniformly from left, right, top, bottom and all four sides (each 1/5); the
unknown region is filled with standard Gaussian noise as in inpainting, and the loss counts only there.
A bridge model starts from the known part mirrored into the unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Example, noise_fill
from .fill import mirror_fill
from .masks import UNCROP_DIRECTIONS, random_uncrop_mask, uncrop_mask

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

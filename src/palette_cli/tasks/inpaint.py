"""Inpainting: the condition is the image with its hole filled with standard Gaussian noise.

There is no mask channel (as in Palette): the noise itself shows the network where the hole is. The
loss counts only the hole. A bridge model starts from a classical fill of the hole (smooth inside, mirrored at the border). Masks come from :mod:`.masks` — by default the paper's training mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Example, noise_fill
from .fill import mirror_fill
from .masks import get_mask_fn


@dataclass
class InpaintTask:
    """Condition: image with noise in the hole; target: the image; loss mask: the hole.

    ``masks`` names a mask kind of :data:`.masks.MASKS`: ``train`` (60% strokes, 40% boxes),
    ``free_form``, ``boxes``, ``free_form_10_20`` / ``_20_30`` / ``_30_40`` or ``center``.
    """

    masks: str = "train"
    name: str = "inpaint"

    def __post_init__(self) -> None:
        get_mask_fn(self.masks)  # fail early on an unknown kind

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        mask = get_mask_fn(self.masks)(image.shape[-2], image.shape[-1], generator).to(image.dtype)
        return Example(cond=noise_fill(image, mask, generator), target=image, mask=mask, task=self.name,
                       start=mirror_fill(image, mask))

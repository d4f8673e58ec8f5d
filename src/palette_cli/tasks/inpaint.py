"""Inpainting: the condition is the image with its hole filled with standard Gaussian noise.

There is no mask channel (as in Palette): the noise itself shows the network where the hole is. The
loss counts only the hole. A bridge model starts from a classical fill of the hole, its border reflected
into it from four sides (:func:`.fill.mirror_fill`, which hands holes to :func:`.fill.reflect_fill`). Masks
come from :mod:`.masks` — by default the paper's training mixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..imageio import pil_to_tensor
from ..windows import StepCallback, hole_windows, offset_progress, paste_exact
from .base import Example, PipelineLike, noise_fill
from .fill import mirror_fill
from .masks import EVAL_MASKS, get_mask_fn

if TYPE_CHECKING:
    from PIL import Image

    from ..diffusion.process import SamplerSettings


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

    # -- evaluation and inference (the paper's protocol; the CLI's command) --------------------------
    @staticmethod
    def evaluation_input(image: Tensor, generator: torch.Generator, *, mask_mode: str = "free_form_20_30",
                         **setting) -> tuple[Tensor, Tensor]:
        """The evaluation input of a reference (3,H,W): an evaluation mask (a free-form area bucket or the
        centre box) and the photo with Gaussian noise in it."""
        mask = EVAL_MASKS[mask_mode](image.shape[-2], image.shape[-1], generator)
        return noise_fill(image, mask, generator), mask

    @staticmethod
    def infer(pipe: PipelineLike, image: "Image.Image", mask: Tensor, settings: "SamplerSettings",
              generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None):
        return inpaint_photo(pipe, image, mask, settings, generator, num_samples, on_step)


def inpaint_photo(pipe: PipelineLike, image: "Image.Image", mask: Tensor, settings: "SamplerSettings",
                  generator: torch.Generator, num_samples: int = 1,
                  on_step: StepCallback | None = None) -> list["Image.Image"]:
    """Fill mask pixels (1 = fill) window by window around groups of holes; all other pixels stay
    bit-identical to the input's."""
    full = pil_to_tensor(image).unsqueeze(0).expand(num_samples, -1, -1, -1).clone()
    mask = mask.reshape(1, 1, *mask.shape[-2:]).float()
    windows = list(hole_windows(mask[0, 0], pipe.resolution))
    for k, box in enumerate(windows):
        full = pipe.fill_window(full, mask, box, settings, generator, offset_progress(on_step, k, len(windows)))
    return paste_exact(image, full, mask)

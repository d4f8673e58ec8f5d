"""JPEG restoration: the condition is the image after a real JPEG encode/decode (Pillow, in memory).

The quality factor Q is an integer in [5, 30] drawn with probability ∝ exp(−Q/10), as in Palette, by default
(a training config may widen the law: ``task_options``; the shipped restorer trained on 5–95, ∝ exp(−Q/30)).
Pillow's defaults are kept otherwise (baseline JPEG, 4:2:0 chroma subsampling, standard tables).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch import Tensor

from ..diffusion.detail import lock_low_frequencies
from ..imageio import pil_to_tensor, tensor_to_pil
from ..windows import JPEG_GRID, StepCallback, round_up, tiled_net
from .base import Example, PipelineLike, choice, full_mask
from .quantization import JpegQuantization, project

if TYPE_CHECKING:
    from ..diffusion.process import SamplerSettings

QUALITY_RANGE = (5, 30)
QUALITY_SCALE = 10.0


def quality_probabilities(low: int = QUALITY_RANGE[0], high: int = QUALITY_RANGE[1],
                          scale: float = QUALITY_SCALE) -> dict[int, float]:
    """P(Q) ∝ exp(−Q/scale) for the integers Q in [low, high]."""
    weights = {q: math.exp(-q / scale) for q in range(low, high + 1)}
    total = sum(weights.values())
    return {q: w / total for q, w in weights.items()}


def sample_jpeg_quality(generator: torch.Generator, low: int = QUALITY_RANGE[0],
                        high: int = QUALITY_RANGE[1], scale: float = QUALITY_SCALE) -> int:
    """One quality factor Q ∈ [low, high] drawn with probability ∝ exp(−Q/scale)."""
    probs = quality_probabilities(low, high, scale)
    return low + choice(generator, list(probs.values()))


def _jpeg_file(image: Image.Image, quality: int) -> io.BytesIO:
    """An 8-bit RGB image encoded as a JPEG file in memory at ``quality`` (Pillow's other defaults)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return buffer


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """An 8-bit RGB image encoded as JPEG at ``quality`` in memory and decoded again."""
    with Image.open(_jpeg_file(image, quality)) as decoded:
        return decoded.convert("RGB")


def jpeg_file_record(quality: int) -> dict:
    """What ``load_image`` records of a file :func:`jpeg_roundtrip` writes at ``quality``: its quantization
    tables and sampling (:func:`~palette_cli.imageio.reading.quantization_info`)."""
    from ..imageio.reading import quantization_info

    with Image.open(_jpeg_file(Image.new("RGB", (16, 16), (128, 128, 128)), quality)) as img:
        record = quantization_info(img)
    assert record is not None
    return record


def jpeg_degrade(image: Tensor, quality: int) -> Tensor:
    """An image tensor ((3,H,W) or (B,3,H,W), [-1,1]) quantised to 8 bits, JPEG-compressed and decoded."""
    if image.ndim == 4:
        return torch.stack([jpeg_degrade(x, quality) for x in image])
    return pil_to_tensor(jpeg_roundtrip(tensor_to_pil(image), quality)).to(image.dtype)


@dataclass
class JpegTask:
    """Condition: the JPEG-decoded image at a random quality (or a fixed ``quality``); target: the image.

    The quality is drawn from [low, high] with P(Q) ∝ exp(−Q/scale): Palette's law by default; a training
    config widens it with ``task_options = { jpeg = { high = 95, scale = 30 } }`` so that the model also
    sees the light artifacts of the qualities cameras and websites use."""

    quality: int | None = None
    low: int = QUALITY_RANGE[0]
    high: int = QUALITY_RANGE[1]
    scale: float = QUALITY_SCALE
    name: str = "jpeg"

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= 100:
            raise ValueError(f"JPEG quality range must lie in 1..100, got [{self.low}, {self.high}]")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"JPEG quality scale must be a finite number > 0, got {self.scale!r}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.quality}")

    def make_example(self, image: Tensor, generator: torch.Generator) -> Example:
        q = self.quality if self.quality is not None else sample_jpeg_quality(generator, self.low, self.high,
                                                                              self.scale)
        return Example(cond=jpeg_degrade(image, q), target=image, mask=full_mask(image), task=self.name)

    # -- evaluation and inference (the paper's protocol; the CLI's command) --------------------------
    @staticmethod
    def evaluation_input(image: Tensor, generator: torch.Generator, *, jpeg_quality: int = 10,
                         **setting) -> tuple[Tensor, None]:
        """The evaluation input of a reference (3,H,W): a real JPEG round trip at ``jpeg_quality``."""
        return jpeg_degrade(image, jpeg_quality), None

    @staticmethod
    def evaluation_info(*, jpeg_quality: int = 10, **setting) -> dict:
        """What the evaluation input's file tells its reader besides its pixels: its quantization tables
        (``Image.info``, as ``load_image`` records them for a JPEG file)."""
        from ..imageio.reading import INFO_JPEG_QUANTIZATION

        return {INFO_JPEG_QUANTIZATION: jpeg_file_record(jpeg_quality)}

    @staticmethod
    def infer(pipe: PipelineLike, image: Image.Image, mask: Tensor | None, settings: "SamplerSettings",
              generator: torch.Generator, num_samples: int = 1, on_step: StepCallback | None = None):
        return restore_photo(pipe, image, settings, generator, num_samples, on_step=on_step)


def restore_photo(pipe: PipelineLike, image: Image.Image, settings: "SamplerSettings", generator: torch.Generator,
                  num_samples: int = 1, tile: int | None = None, overlap: int | None = None,
                  on_step: StepCallback | None = None, lock_colour: bool = True,
                  jpeg_constraint: bool = True) -> list[Image.Image]:
    """JPEG restoration at native resolution: overlapping tiles, blended at every sampling step.

    Tiles start on the JPEG block grid (multiples of 16 px, the 4:2:0 chroma block), where the artifacts
    the model learned sit. ``lock_colour`` keeps the output's local mean colour (its low frequencies)
    equal to the input's, which JPEG preserves well: restoration cannot shift colours.
    ``jpeg_constraint``: when ``image`` came from a JPEG file (``load_image`` keeps its quantization
    tables), every DCT coefficient of the result is kept within half a quantization step of the file's
    (:mod:`.quantization`), so a lightly compressed photo cannot be made worse than the file allows.
    """
    cond_full = pil_to_tensor(image).unsqueeze(0)
    h, w = cond_full.shape[-2:]
    grid = math.lcm(pipe.divisor, JPEG_GRID)
    padded_h, padded_w = round_up(h, grid), round_up(w, grid)
    cond_full = torch.nn.functional.pad(cond_full, (0, padded_w - w, 0, padded_h - h), mode="replicate")
    cond = cond_full.expand(num_samples, -1, -1, -1).to(pipe.device)
    tile = tile or max(pipe.resolution, 256)
    overlap = overlap if overlap is not None else tile // 4
    # Tiles are clipped to the canvas on each axis on its own, so a photo 3 pixels high is covered by a
    # few 16 x 256 tiles, not by thousands of tiny ones; sizes stay multiples of the JPEG grid.
    size = tuple(max(grid, min(tile, n) - min(tile, n) % grid) for n in (padded_h, padded_w))
    net = tiled_net(pipe.net_fn, cond, size, overlap, align=JPEG_GRID, chunk=pipe.batch_size,
                    calls=pipe.model_calls(settings), on_step=on_step)  # progress by chunks of tiles
    out = pipe.sample(cond, settings, generator, net=net)
    if lock_colour:
        out = lock_low_frequencies(out, cond.cpu())
    quant = JpegQuantization.from_image(image) if jpeg_constraint else None
    if quant is not None:
        out = project(out[..., :h, :w], cond_full[..., :h, :w], quant)
    return [tensor_to_pil(o[:, :h, :w]) for o in out]

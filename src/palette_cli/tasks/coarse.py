"""The coarse stage of a two-stage fill: the unknown part laid out at a low resolution first.

A fill network trained on 128² close-ups sees a few objects at a time; the layout of a wide unknown band
(where the horizon runs, how far the sky, the water or a building goes) needs a view of the whole scene.
A model file may hold a second, **coarse** network, trained on small views of whole scenes
(``configs/fill-coarse.toml``): at sampling time the window is shrunk to about ``size²`` pixels, the coarse
network fills it with its own process and settings, its sample is enlarged into the window's unknown part,
and the fine network starts part-way from that guess (the bridge's ``guess = "coarse"`` at ``guess_time``),
keeping its layout and making the detail (docs/RESULTS.md, Studies 18 and 19).

The model file keeps the coarse network's weights under ``coarse.`` and its config (network, schedule,
process, training record) with its working size under ``extra["coarse"]`` (``palette export --coarse``;
:data:`palette_cli.checkpoint.COARSE_PREFIX` and ``COARSE_KEY``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import noise_fill
from .starts import fill_start

if TYPE_CHECKING:
    from ..pipeline import Pipeline


def coarse_guess(coarse: "Pipeline", known: Tensor, mask: Tensor, generator: torch.Generator,
                 size: int | None = None) -> Tensor:
    """The coarse stage's fill of the window ``known`` (B,3,H,W, unknown part zero) with ``mask`` (B,1,H,W,
    1 = unknown): the window shrunk to the coarse view of about ``size``² pixels (default: the coarse stage's
    working resolution; never larger than the window; area average; a coarse pixel is unknown where at least
    half of what it covers is), filled by the coarse model with its own defaults, enlarged (bicubic) into the
    unknown part. Known pixels are returned as they are."""
    from ..diffusion.process import SamplerSettings
    from ..windows import working_size

    h, w = known.shape[-2:]
    view = coarse.resolution if size is None else int(size)
    # never a coarse view finer than the window itself (a fine stage run at a low --resolution)
    small_w, small_h = working_size(w, h, min(view, int((w * h) ** 0.5)), coarse.divisor)
    small = F.interpolate(known, size=(small_h, small_w), mode="area")
    m = (F.interpolate(mask.float(), size=(small_h, small_w), mode="area") > 0.5).to(known.dtype)
    small = small * (1 - m)
    cond = noise_fill(small, m, generator)
    start = fill_start(coarse.process.fill_start, small, m, generator)
    out = coarse.sample(cond, SamplerSettings(), generator, known=small, mask=m, start=start)
    big = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return torch.where(mask.bool(), big, known)


def lacks_coarse_stage(info: Any) -> bool:
    """Whether a model file's header ``info`` starts its fill from a coarse stage that the file does not hold."""
    from ..checkpoint import COARSE_KEY
    from ..diffusion.registry import process_from_metadata

    return (process_from_metadata(info.extra, info.training, info.schedule).fill_guess == "coarse"
            and COARSE_KEY not in info.extra)


def coarse_record(info: Any, size: int) -> dict[str, Any]:
    """What a model file keeps of its coarse stage: the coarse model's own config and its working size."""
    meta = info.to_metadata()
    meta.pop("format", None)
    meta.pop("format_version", None)
    return {**meta, "size": int(size)}

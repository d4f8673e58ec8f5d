"""`palette panorama`: a panorama by repeated uncropping, half a window per step."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from .options import (AllowHuge, BatchSize, DeviceOpt, Force, Model, Output, PrecisionOpt, Quiet, Resolution, Sampler,
                      Shard, SamplingSteps, Seed, SpacingOpt, Overwrite, RunOptions)
from .runner import run_batch


class PanoramaDirection(str, Enum):
    both = "both"
    left = "left"
    right = "right"


def panorama(image: Annotated[str, typer.Argument(help="The photo to extend.", show_default=False)],
             steps: Annotated[int, typer.Option(
                 "--steps", min=1, max=64, help="Extensions per side, each by half the image height.")] = 8,
             direction: Annotated[PanoramaDirection, typer.Option(help="Which side(s) to grow.")] = PanoramaDirection.both,
             frames: Annotated[bool, typer.Option(help="Also save every intermediate canvas (OUTPUT_frames/).")] = False,
             output: Output = None, model: Model = None, sampler: Sampler = None,
             sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None, seed: Seed = None,
             device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", batch_size: BatchSize = 4,
             overwrite: Overwrite = False, quiet: Quiet = False, allow_huge: AllowHuge = False,
             resolution: Resolution = None, shard: Shard = None, force: Force = False) -> None:
    """Make a panorama: a 256×256 photo with --steps 8 on both sides becomes 256×2304, as in the paper."""
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items()
                                  if k not in ("image", "steps", "direction", "frames")})

    def process(pipe, img, settings, generator, on_step, _extra):
        from ..imageio import check_canvas, save_image_atomic

        grown = steps * (1 if direction.value != "both" else 2) * max(1, img.height // 2)
        check_canvas(img.width + grown, img.height, opts.allow_huge)

        saved = []

        def on_frame(canvas):
            if frames:
                saved.append(canvas)

        result = pipe.panorama(img, steps, settings, generator, direction.value, on_step=on_step, on_frame=on_frame)
        if frames:
            from .runner import plan_jobs

            base = plan_jobs([image], opts, "_panorama")[0].outputs[0]
            folder = base.with_name(base.stem + "_frames")
            for k, frame in enumerate(saved):
                save_image_atomic(frame, folder / f"{k:03d}.png", overwrite=True)
        return [result]

    run_batch("panorama", [image], opts, "_panorama", process)

"""`palette restore`: remove JPEG compression artifacts at the photo's own resolution."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import (AllowHuge, BatchSize, DeviceOpt, Force, Inputs, Model, NumSamples, Output, PrecisionOpt, Quiet,
                      Recursive, Resolution, Sampler, SamplingSteps, Seed, Shard, SpacingOpt, Overwrite,
                      RunOptions)
from .runner import run_batch


def restore(inputs: Inputs, output: Output = None, model: Model = None, sampler: Sampler = None,
            sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None, seed: Seed = None,
            num_samples: NumSamples = 1, device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
            batch_size: BatchSize = 4, overwrite: Overwrite = False, quiet: Quiet = False,
            recursive: Recursive = False, allow_huge: AllowHuge = False, resolution: Resolution = None,
            shard: Shard = None, force: Force = False,
            tile: Annotated[Optional[int], typer.Option(min=16, help="Tile size in pixels (default 256).")] = None,
            overlap: Annotated[Optional[int], typer.Option(min=0, help="Tile overlap (default: a quarter tile).")] = None,
            ) -> None:
    """Restore JPEG-compressed photos. Large photos are sampled in overlapping tiles blended at every step."""
    if overlap is not None and 2 * overlap > (tile or 256):
        raise typer.BadParameter(f"--overlap {overlap} is more than half the tile ({tile or 256} pixels)",
                                 param_hint="'--overlap'")
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items() if k not in ("inputs", "tile", "overlap")})

    def process(pipe, image, settings, generator, on_step, _extra):
        from ..imageio import check_canvas

        check_canvas(image.width, image.height, opts.allow_huge)  # sampled at full size: must fit in memory
        return pipe.restore(image, settings, generator, opts.num_samples, tile=tile, overlap=overlap,
                            on_step=on_step)

    run_batch("restore", inputs, opts, "_restored", process)

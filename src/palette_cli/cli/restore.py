"""`palette restore`: remove JPEG compression artifacts at the photo's own resolution."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .help import in_range
from .options import (AllowHuge, Force, BatchSize, DeviceOpt, Inputs, Model, NumSamples, Output, OutputExt, PrecisionOpt,
                      Quiet, Recursive, Resolution, Sampler, SamplingSteps, Seed, Shard, SpacingOpt, Overwrite,
                      RunOptions)
from .runner import run_batch

DEFAULT_TILE = 256


def restore(inputs: Inputs, output: Output = None, ext: OutputExt = None, model: Model = None,
            sampler: Sampler = None, sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None,
            seed: Seed = None, num_samples: NumSamples = 1, device: DeviceOpt = "auto",
            precision: PrecisionOpt = "auto", batch_size: BatchSize = 4, overwrite: Overwrite = False,
            quiet: Quiet = False, recursive: Recursive = False, allow_huge: AllowHuge = False,
            resolution: Resolution = None, shard: Shard = None, force: Force = False,
            tile: Annotated[Optional[int], typer.Option(
                metavar="PIXELS", callback=in_range(16),
                help=f"Tile size in pixels, at least 16 (default {DEFAULT_TILE}).")] = None,
            overlap: Annotated[Optional[int], typer.Option(
                metavar="PIXELS", callback=in_range(0), help="Tile overlap (default: a quarter tile).")] = None,
            jpeg_constraint: Annotated[bool, typer.Option(
                "--jpeg-constraint/--no-jpeg-constraint",
                help="Keep every 8x8 DCT coefficient of a JPEG input within half a quantization step of the "
                     "file's (its own tables), so a lightly compressed photo cannot be made worse than the "
                     "file allows. Inputs that are not JPEG files are not affected.")] = True,
            ) -> None:
    """Restore JPEG-compressed photos. Large photos are sampled in overlapping tiles blended at every step."""
    if overlap is not None and 2 * overlap > (tile or DEFAULT_TILE):
        raise typer.BadParameter(f"--overlap {overlap} is more than half the tile ({tile or DEFAULT_TILE} pixels)",
                                 param_hint="'--overlap'")
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items()
                                  if k not in ("inputs", "tile", "overlap", "jpeg_constraint")})
    opts.task_options = {"tile": str(tile or "auto"), "overlap": str(overlap if overlap is not None else "auto"),
                         "jpeg_constraint": "on" if jpeg_constraint else "off"}

    def check(_job, size: tuple[int, int]) -> None:
        from ..imageio import check_canvas

        check_canvas(*size, opts.allow_huge)  # sampled at full size: must fit in memory

    def process(pipe, image, settings, generator, on_step, _extra):
        check(None, image.size)
        return pipe.restore(image, settings, generator, opts.num_samples, tile=tile, overlap=overlap,
                            on_step=on_step, jpeg_constraint=jpeg_constraint)

    run_batch("restore", inputs, opts, "_restored", process, check=check)

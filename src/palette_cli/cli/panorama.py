"""`palette panorama`: a panorama by repeated uncropping, half a window per step."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from .help import in_range
from .options import (AllowHuge, Force, BatchSize, DeviceOpt, Inputs, Model, NumSamples, Output, OutputExt, PrecisionOpt,
                      Quiet, Recursive, Resolution, Sampler, SamplingSteps, Seed, Shard, SpacingOpt, Overwrite,
                      RunOptions)
from .runner import run_batch

MAX_STEPS = 64
DEFAULT_COLOUR_ANCHOR = 7.0


class PanoramaDirection(str, Enum):
    both = "both"
    left = "left"
    right = "right"


def panorama(inputs: Inputs,
             steps: Annotated[int, typer.Option(
                 "--steps", metavar="N", callback=in_range(1, MAX_STEPS),
                 help=f"Extensions per side, 1 to {MAX_STEPS}, each by half the image height.")] = 8,
             direction: Annotated[PanoramaDirection, typer.Option(help="Which side(s) to grow.")] = PanoramaDirection.both,
             colour_anchor: Annotated[float, typer.Option(
                 "--colour-anchor", metavar="ΔE", callback=in_range(0, 100),
                 help="Keep the mean colour of each new band within this CIELAB ΔE of the input's, so colour "
                      "and brightness cannot wander pass after pass; 0 turns it off.")] = DEFAULT_COLOUR_ANCHOR,
             frames: Annotated[bool, typer.Option(help="Also save every intermediate canvas (OUTPUT_frames/).")] = False,
             output: Output = None, ext: OutputExt = None, model: Model = None, sampler: Sampler = None,
             sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None, seed: Seed = None,
             num_samples: NumSamples = 1, device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
             batch_size: BatchSize = 4, overwrite: Overwrite = False, quiet: Quiet = False,
             recursive: Recursive = False, allow_huge: AllowHuge = False, resolution: Resolution = None,
             shard: Shard = None, force: Force = False) -> None:
    """Make panoramas: a 256×256 photo with --steps 8 on both sides becomes 256×2304, as in the paper."""
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items()
                                  if k not in ("inputs", "steps", "direction", "frames", "colour_anchor")})
    opts.task_options = {"panorama_steps": str(steps), "direction": direction.value,
                         "colour_anchor": f"{colour_anchor:g}"}

    def check(_job, size: tuple[int, int]) -> None:
        from ..imageio import check_canvas

        grown = steps * (1 if direction.value != "both" else 2) * max(1, size[1] // 2)
        check_canvas(size[0] + grown, size[1], opts.allow_huge)

    def process(pipe, img, settings, generator, on_step, extra):
        from ..windows import offset_progress

        check(None, img.size)
        results = []
        for n, out in enumerate(extra.outputs):  # -n: one panorama after the other, progress over them all
            saved = []
            results.append(pipe.panorama(img, steps, settings, generator, direction.value,
                                         on_step=offset_progress(on_step, n, len(extra.outputs)),
                                         on_frame=saved.append if frames else None,
                                         colour_anchor=colour_anchor))
            if frames:
                save_frames(saved, out)
        return results

    run_batch("panorama", inputs, opts, "_panorama", process, prepare=lambda job, _size: job, check=check)


def save_frames(frames: list, output) -> None:
    """The intermediate canvases of one panorama, as ``OUTPUT_frames/000.png``..."""
    from ..imageio import save_image_atomic

    folder = output.with_name(output.stem + "_frames")
    for k, frame in enumerate(frames):
        save_image_atomic(frame, folder / f"{k:03d}.png", overwrite=True)

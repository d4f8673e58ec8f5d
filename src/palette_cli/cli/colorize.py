"""`palette colorize`: colour for grayscale (or colour) photos, keeping their own luminance."""

from __future__ import annotations

from .options import (AllowHuge, Force, Anneal, BatchSize, DeviceOpt, Inputs, Model, NumSamples, Output, OutputExt,
                      PrecisionOpt, Quiet, Recursive, Resolution, Sampler, SamplingSteps, Seed, Shard, SpacingOpt,
                      Overwrite, RunOptions)
from .runner import run_batch


def colorize(inputs: Inputs, output: Output = None, ext: OutputExt = None, model: Model = None,
             sampler: Sampler = None, sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None,
             anneal: Anneal = None, seed: Seed = None, num_samples: NumSamples = 1, device: DeviceOpt = "auto",
             precision: PrecisionOpt = "auto", batch_size: BatchSize = 4, overwrite: Overwrite = False,
             quiet: Quiet = False, recursive: Recursive = False, allow_huge: AllowHuge = False,
             resolution: Resolution = None, shard: Shard = None, force: Force = False) -> None:
    """Colorize photos. Colour inputs are made gray first; the output keeps the input's luminance exactly."""
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items() if k != "inputs"})

    def process(pipe, image, settings, generator, on_step, _extra):
        return pipe.colorize(image, settings, generator, opts.num_samples, on_step=on_step)

    run_batch("colorize", inputs, opts, "_colorized", process)

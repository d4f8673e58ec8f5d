"""`palette uncrop`: extend photos beyond their borders."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated

import typer

from ..defaults import UNCROP_DIRECTIONS
from .options import (
    AllowHuge,
    BatchSize,
    DeviceOpt,
    Force,
    Inputs,
    Model,
    NumSamples,
    Output,
    OutputExt,
    Overwrite,
    PrecisionOpt,
    Quiet,
    Recursive,
    Resolution,
    RunOptions,
    Sampler,
    SamplingSteps,
    Seed,
    Shard,
    SpacingOpt,
)
from .runner import run_batch

MAX_PASSES = 1000  # sampling passes one image may take without --allow-huge


Direction = Enum("Direction", {n: n for n in UNCROP_DIRECTIONS}, type=str)


def parse_amount(text: str) -> float | int:
    """``0.5`` = half the image's size along the direction; ``128`` or ``128px`` = pixels."""
    t = text.strip().lower().removesuffix("px")
    try:
        value = float(t)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a fraction (0.5) nor pixels (128)") from None
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{text!r}: the amount must be a positive number")
    if "." in t or value < 1:
        return value
    return int(value)


def amount_pixels(amount: float | int, length: int) -> int:
    return amount if isinstance(amount, int) else max(1, round(amount * length))


def check_work(width: int, height: int, extensions: list[tuple[str, int]], allow_huge: bool) -> None:
    """Refuse, before any sampling, a result over the canvas limit or one that takes over MAX_PASSES passes."""
    from ..imageio import check_canvas
    from ..pipeline import extension_passes

    passes = 0
    for side, px in extensions:
        passes += extension_passes(width, height, side, px)
        width, height = (width + px, height) if side in ("left", "right") else (width, height + px)
    check_canvas(width, height, allow_huge)
    if passes > MAX_PASSES and not allow_huge:
        raise ValueError(f"growing the image to {width}x{height} takes {passes} sampling passes, over the limit "
                         f"of {MAX_PASSES}; pass --allow-huge to lift it")


def uncrop(inputs: Inputs,
           direction: Annotated[Direction, typer.Option("--direction", "-d", help="Side(s) to extend.")] = Direction.right,
           amount: Annotated[str, typer.Option(
               metavar="FRACTION|PIXELS",
               help="How far: a fraction of the image's width/height (0.5) or pixels (128).")] = "0.5",
           output: Output = None, ext: OutputExt = None, model: Model = None, sampler: Sampler = None,
           sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None, seed: Seed = None,
           num_samples: NumSamples = 1, device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
           batch_size: BatchSize = 4, overwrite: Overwrite = False, quiet: Quiet = False,
           recursive: Recursive = False, allow_huge: AllowHuge = False, resolution: Resolution = None,
           shard: Shard = None, force: Force = False) -> None:
    """Uncrop photos: grow the canvas; the original pixels stay identical. Long extensions take several passes."""
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items() if k not in ("inputs", "direction", "amount")})
    value = parse_amount(amount)
    sides = ["left", "right", "top", "bottom"] if direction.value == "all" else [direction.value]
    opts.task_options = {"direction": direction.value, "amount": amount.strip().lower()}

    def extensions(size: tuple[int, int]) -> list[tuple[str, int]]:
        return [(side, amount_pixels(value, size[0] if side in ("left", "right") else size[1])) for side in sides]

    def check(_job, size: tuple[int, int]) -> None:
        check_work(*size, extensions(size), opts.allow_huge)

    def process(pipe, image, settings, generator, on_step, _extra):
        from ..windows import offset_progress

        check(None, image.size)
        results, n = [image] * opts.num_samples, opts.num_samples
        for k, (side, px) in enumerate(extensions(image.size)):  # progress counts every side of every sample
            results = [pipe.extend(r, side, px, settings, generator, 1,
                                   on_step=offset_progress(on_step, k * n + i, len(sides) * n))[0]
                       for i, r in enumerate(results)]
        return results

    run_batch("uncrop", inputs, opts, "_uncropped", process, check=check)

"""`palette inpaint`: fill the white pixels of a mask (or boxes) with generated content."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (AllowHuge, Force, BatchSize, DeviceOpt, Inputs, Model, NumSamples, Output, OutputExt, PrecisionOpt,
                      Quiet, Recursive, Resolution, Sampler, SamplingSteps, Seed, Shard, SpacingOpt, Overwrite,
                      RunOptions)
from .runner import fail, run_batch


def parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not x,y,w,h (four integers)") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise typer.BadParameter(f"{text!r}: x and y must be ≥ 0, w and h > 0")
    return x, y, w, h


def box_mask(boxes: list[tuple[int, int, int, int]], width: int, height: int):
    """A (1,H,W) mask with the x,y,w,h boxes set to 1 (clipped to the image)."""
    from ..imageio import ImageInputError
    from ..tasks.masks import boxes_to_mask

    for x, y, w, h in boxes:
        if x >= width or y >= height:
            raise ImageInputError(f"--box {x},{y},{w},{h}", f"lies outside the {width}x{height} image")
    mask = boxes_to_mask(height, width, [(y, x, h, w) for x, y, w, h in boxes])
    if mask.all():
        raise ImageInputError("--box", "the boxes cover the whole image: nothing is left to inpaint from")
    return mask


def mask_in_folder(folder: Path, rel: Path) -> Path | None:
    """The mask for the input ``rel`` in a mask folder: a file at the same relative place with exactly the
    same stem (any extension, image extensions first). Names are compared as they are, never as patterns,
    so ``a[1].png`` finds ``a[1].png`` and not ``a1.png``."""
    from ..imageio import is_image_path

    place = folder / rel.parent
    if not place.is_dir():
        return None
    found = [p for p in place.iterdir() if p.stem == rel.stem and p.is_file()]
    return min(found, key=lambda p: (not is_image_path(p), p.name), default=None)


def inpaint(inputs: Inputs,
            mask: Annotated[Optional[str], typer.Option(
                metavar="FILE|FOLDER", help="Mask image (white = fill), or a folder of masks named like the "
                                            "inputs.")] = None,
            box: Annotated[Optional[list[str]], typer.Option(
                metavar="X,Y,W,H", help="Region to fill as x,y,w,h (repeatable).")] = None,
            resize_mask: Annotated[bool, typer.Option(help="Resize a mask whose size differs from the image.")] = False,
            output: Output = None, ext: OutputExt = None, model: Model = None, sampler: Sampler = None,
            sampling_steps: SamplingSteps = None, spacing: SpacingOpt = None, seed: Seed = None,
            num_samples: NumSamples = 1, device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
            batch_size: BatchSize = 4, overwrite: Overwrite = False, quiet: Quiet = False,
            recursive: Recursive = False, allow_huge: AllowHuge = False, resolution: Resolution = None,
            shard: Shard = None, force: Force = False) -> None:
    """Inpaint photos: only the masked pixels change; every other pixel stays identical."""
    opts = RunOptions.from_cli(**{k: v for k, v in locals().items()
                                  if k not in ("inputs", "mask", "box", "resize_mask")})
    from ..imageio import ImageInputError, display_name, path_kind

    if (mask is None) == (not box):
        raise fail("give exactly one of --mask or --box", 2)
    boxes = [parse_box(b) for b in box or []]
    mask_path = Path(mask) if mask is not None else None
    if mask_path is not None:
        try:
            kind = path_kind(mask_path) if mask else "missing"
        except ImageInputError as e:
            raise fail(f"--mask {e}", 2)
        if kind == "missing":
            raise fail(f"mask not found: {display_name(mask)}", 2)
        if kind not in ("file", "folder"):
            raise fail(f"--mask {display_name(mask)}: is {kind}, not a regular file or folder", 2)
    opts.task_options = ({"box": " ".join(",".join(map(str, b)) for b in boxes)} if boxes else
                         {"mask": display_name(mask), "resize_mask": str(resize_mask)})

    def prepare(job, size: tuple[int, int]):
        from ..imageio import load_mask

        if boxes:
            return box_mask(boxes, *size)
        path = mask_path
        if mask_path.is_dir():
            path = mask_in_folder(mask_path, job.rel)
            if path is None:
                raise ImageInputError(mask_path, f"no mask for {job.rel} in this folder")
        return load_mask(path, size, resize=resize_mask, allow_huge=opts.allow_huge)

    def process(pipe, image, settings, generator, on_step, hole):
        return pipe.inpaint(image, hole, settings, generator, opts.num_samples, on_step=on_step)

    run_batch("inpaint", inputs, opts, "_inpainted", process, prepare)

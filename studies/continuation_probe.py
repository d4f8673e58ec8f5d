"""What the uncropping bar's feature distance rewards: real continuations of a photo against its mirror.

For every landscape photo wide enough, the evaluation's 256² reference (the largest centre square) is cut
from a strip that reaches ``extra`` pixels beyond it on both sides. Each "method" keeps the known left half
and fills the right half with:

* ``mirror``: the known half reflected (the classical baseline of the uncropping bar);
* ``shiftS``: the photo's own pixels S px further right: a real continuation of the scene, made by the
  camera, with only the S columns next to the seam missing (S = 0 would be the reference itself);
* ``other``: the right half of another photo of the set (real camera texture, unrelated scene).

The outputs and references are written as 256² PNGs, so ``palette eval --outputs`` scores them with the
same judges as every uncropping table::

    python -m studies.continuation_probe runs/c26/val90.txt runs/s17/references.txt --out runs/probe
    palette eval --task uncrop --method mirror --method telea --method ns --references runs/probe/references \
        --feature-net effnets --out runs/probe/classical          # the same inputs, and their masks/
    for m in mirror shift16 shift32 shift64 other; do
      palette eval --task uncrop --outputs runs/probe/$m --references runs/probe/references \
        --masks runs/probe/classical/masks \
        --feature-net effnets --out runs/probe/score-$m
    done
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from palette_cli.data import RESAMPLE, read_image_list
from palette_cli.imageio import load_image


def strip_of(image: Image.Image, size: int, extra: int) -> Image.Image | None:
    """The centre square resized to ``size`` plus ``extra`` resized pixels on each side, or None if the
    photo is not that wide."""
    w, h = image.size
    if w <= h:
        return None
    side = h
    scale = size / side
    pad = extra / scale  # in source pixels
    left = (w - side) / 2
    if left < pad:
        return None
    box = (left - pad, 0.0, left + side + pad, float(h))
    return image.resize((size + 2 * extra, size), RESAMPLE, box=box)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lists", nargs="+", type=Path, help="image list files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--shifts", default="16,32,64")
    args = parser.parse_args(argv)
    shifts = [int(s) for s in args.shifts.split(",")]
    extra = max(shifts)
    size, half = args.size, args.size // 2

    strips: dict[str, Image.Image] = {}
    for lst in args.lists:
        for path in read_image_list(lst, root=Path.cwd()):  # the lists hold paths from the project root
            strip = strip_of(load_image(path).convert("RGB"), size, extra)
            if strip is not None and path.stem not in strips:
                strips[path.stem] = strip
    names = sorted(strips)
    folders = ["references", "mirror", "other"] + [f"shift{s}" for s in shifts]
    for folder in folders:
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        strip = strips[name]
        ref = strip.crop((extra, 0, extra + size, size))
        ref.save(args.out / "references" / f"{name}.png")
        known = ref.crop((0, 0, half, size))

        def with_right(right: Image.Image) -> Image.Image:
            out = ref.copy()
            out.paste(right, (half, 0))
            return out

        with_right(known.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).save(args.out / "mirror" / f"{name}.png")
        for s in shifts:
            right = strip.crop((extra + half + s, 0, extra + size + s, size))
            with_right(right).save(args.out / f"shift{s}" / f"{name}.png")
        other = strips[names[(i + len(names) // 2) % len(names)]]
        with_right(other.crop((extra + half, 0, extra + size, size))).save(args.out / "other" / f"{name}.png")
    print(f"{len(names)} photos wide enough for {extra} px on each side → {args.out}")


if __name__ == "__main__":
    main()

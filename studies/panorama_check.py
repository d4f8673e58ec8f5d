"""Panoramas against the bars of the generating-fill work: does each new strip copy the one it continues,
does the colour wander, and how long does the command take with its defaults?

Runs ``palette panorama IMAGE --steps N -o OUT`` for each image (timed: the whole command, model loading
included), then on the result:

- the copy score (:func:`palette_cli.metrics.fills.copy_score`) of every new strip of half the input's
  height against the strip it continues (mirrored or not, shifted up to 8 px; a copy scores 1);
- CIELAB ΔE between the mean colour of the outermost ``input width`` pixels on each side and the input's
  mean colour.

    python studies/panorama_check.py examples/astronaut_256.png data/dev/some_landscape.png --out runs/pano
    python studies/panorama_check.py IMAGE --model runs/fill.safetensors --steps 8 --out runs/pano-b
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from palette_cli.imageio import pil_to_tensor
from palette_cli.metrics.fills import copy_score, detail
from palette_cli.metrics.pixel import mean_lab


def check(panorama: Image.Image, original: Image.Image, direction: str = "both") -> dict:
    """Copy scores of the strips and the colour drift of the ends of ``panorama`` grown from ``original``."""
    pano = (pil_to_tensor(panorama.convert("RGB")) + 1) / 2
    orig = (pil_to_tensor(original.convert("RGB")) + 1) / 2
    w, strip = orig.shape[-1], max(1, orig.shape[-2] // 2)
    total = pano.shape[-1]
    left = {"both": (total - w) // 2, "left": total - w, "right": 0}[direction]
    d = detail(pano)
    scores = []
    x = left + w  # right side: strips [x, x + strip) continue [x − strip, x)
    while x + strip <= total:
        scores.append(copy_score(d[:, x:x + strip], d[:, x - strip:x]))
        x += strip
    x = left  # left side: strips [x − strip, x) continue [x, x + strip)
    while x - strip >= 0:
        scores.append(copy_score(d[:, x - strip:x], d[:, x:x + strip]))
        x -= strip
    target = mean_lab(orig)
    drift = {}
    if left > 0:
        drift["left"] = float((mean_lab(pano[..., :w]) - target).norm())
    if total - (left + w) > 0:
        drift["right"] = float((mean_lab(pano[..., total - w:]) - target).norm())
    return {"size": list(panorama.size), "strips": len(scores), "copy_score_max": max(scores, default=0.0),
            "copy_score_mean": sum(scores) / len(scores) if scores else 0.0, "drift_delta_e": drift}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", required=True, help="folder for the panoramas and panorama_check.json")
    ap.add_argument("--model", default=None, help="model name or file (default: the command's)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--direction", default="both", choices=("both", "left", "right"))
    ap.add_argument("--extra", default="", help="further options for the command, e.g. '--sampling-steps 4'")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for image in args.images:
        target = out / f"{Path(image).stem}_panorama.png"
        cmd = ["palette", "panorama", image, "--steps", str(args.steps), "--direction", args.direction,
               "--seed", "0", "-o", str(target), "--overwrite", *args.extra.split()]
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            print(f"{image}: {done.stderr.strip() or done.stdout.strip()}", file=sys.stderr)
            return 1
        row = {"image": image, "seconds": round(seconds, 2),
               **check(Image.open(target), Image.open(image), args.direction)}
        rows.append(row)
        drift = ", ".join(f"{k} {v:.1f}" for k, v in row["drift_delta_e"].items())
        print(f"{Path(image).name}: {row['size'][0]}x{row['size'][1]} in {seconds:.1f} s; copy score of "
              f"{row['strips']} strips max {row['copy_score_max']:.3f} mean {row['copy_score_mean']:.3f}; "
              f"colour drift ΔE {drift}")
    (out / "panorama_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of the uncropped half a denoiser gets back from the bridge noise at a small t.

Gaussian noise of ``--sigma`` (in [0, 1] units; the bridge's σ·√(t(1−t)) / 2 for images in [−1, 1]) is added to
the right half of each reference, and OpenCV's non-local means (``fastNlMeansDenoisingColored``) at several
strengths removes it; the PSNR of the right half is printed for the noisy half, each strength, and for the right
halves of any output folders given (the fill model started from the true photo, ``studies/layout_oracle.py
--levels 256``):

    python -m studies.denoise_check runs/probe/references --sigma 0.075 --outputs runs/oracle-full/low256
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from palette_cli.metrics.pixel import psnr as psnr_batch


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two (H, W, 3) uint8 arrays."""
    a_t, b_t = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].double() for x in (a, b))
    return float(psnr_batch(a_t, b_t, data_range=255.0))


def main(argv: list[str] | None = None) -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", type=Path)
    parser.add_argument("--sigma", type=float, default=0.075)
    parser.add_argument("--strengths", default="10,15,20")
    parser.add_argument("--outputs", type=Path, nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    strengths = [float(h) for h in args.strengths.split(",")]
    rows: dict[str, list[float]] = {"noisy": [], **{f"nl-means h={h:g}": [] for h in strengths},
                                    **{str(o): [] for o in args.outputs}}
    for ref_path in sorted(args.references.glob("*.png")):
        ref = np.asarray(Image.open(ref_path).convert("RGB"))
        half = ref[:, ref.shape[1] // 2:]
        noisy = np.clip(half + rng.normal(0, args.sigma * 255, half.shape), 0, 255).astype(np.uint8)
        rows["noisy"].append(psnr(noisy, half))
        bgr = np.ascontiguousarray(noisy[..., ::-1])
        for h in strengths:
            rows[f"nl-means h={h:g}"].append(psnr(cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)[..., ::-1], half))
        for o in args.outputs:
            out = np.asarray(Image.open(o / ref_path.name).convert("RGB"))
            rows[str(o)].append(psnr(out[:, ref.shape[1] // 2:], half))
    for name, values in rows.items():
        print(f"{name}: right-half PSNR {np.mean(values):.2f} dB over {len(values)} photos")


if __name__ == "__main__":
    main()

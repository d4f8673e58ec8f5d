"""Does giving the generated region the known region's contrast and colourfulness help? (Study 20)

A post-process on an evaluation folder (``palette eval --out``: ``inputs/``, ``masks/``, ``outputs/``): in
CIELAB, the generated region's lightness deviations from its own mean are scaled by
``clip(std_L(known) / std_L(generated), 1, max_gain) ** strength`` and its a/b by the same kind of ratio
of mean chroma, ramped in from the seam over ``ramp`` pixels so no edge appears. Writes a new outputs
folder to score with ``palette eval --outputs``::

    python -m studies.stats_match RUN_DIR --out OUT_DIR [--max-gain 2] [--strength 1] [--channels L,ab]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from PIL import Image

from palette_cli.imageio import pil_to_tensor, tensor_to_pil
from palette_cli.metrics.pixel import lab_to_rgb, rgb_to_lab


def seam_ramp(mask: torch.Tensor, ramp: int) -> torch.Tensor:
    """(H,W) weight in [0,1]: 0 on the known region, rising to 1 at ``ramp`` px inside the generated one."""
    if ramp <= 0:
        return (mask > 0.5).float()
    known = (mask <= 0.5).float()[None, None]
    weight = torch.zeros_like(known)
    grown = known
    for _ in range(ramp):
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        weight = weight + (1.0 - grown)
    return (weight / ramp)[0, 0].clamp(0, 1)


def match(rgb: torch.Tensor, mask: torch.Tensor, *, max_gain: float, strength: float, channels: str,
          ramp: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """``rgb`` (3,H,W) in [0,1], ``mask`` (H,W) with 1 where generated → adjusted rgb, (gain_L, gain_ab)."""
    lab = rgb_to_lab(rgb[None])[0]
    gen, known = mask > 0.5, mask <= 0.5
    out = lab.clone()
    gains = [1.0, 1.0]
    w = seam_ramp(mask, ramp)
    if "L" in channels:
        l_gen, l_known = lab[0][gen], lab[0][known]
        g = float((l_known.std() / l_gen.std().clamp_min(1e-3)).clamp(1.0, max_gain)) ** strength
        mu = l_gen.mean()
        out[0] = lab[0] + w * (g - 1.0) * (lab[0] - mu)
        gains[0] = g
    if "ab" in channels:
        chroma = lab[1:].pow(2).sum(0).sqrt()
        g = float((chroma[known].mean() / chroma[gen].mean().clamp_min(1e-3)).clamp(1.0, max_gain)) ** strength
        out[1:] = lab[1:] * (1.0 + w * (g - 1.0))
        gains[1] = g
    return lab_to_rgb(out[None])[0].clamp(0, 1).to(rgb.dtype), (gains[0], gains[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-gain", type=float, default=2.0)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--channels", default="L,ab")
    ap.add_argument("--ramp", type=int, default=16)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    gl, gc = [], []
    for path in sorted((a.run / "outputs").iterdir()):
        stem = path.stem.rsplit("_s", 1)[0]
        mask = pil_to_tensor(Image.open(a.run / "masks" / f"{stem}.png").convert("L"))[0]
        mask = (mask + 1) / 2
        rgb = (pil_to_tensor(Image.open(path)) + 1) / 2
        out, (g1, g2) = match(rgb, mask, max_gain=a.max_gain, strength=a.strength, channels=a.channels, ramp=a.ramp)
        gl.append(g1), gc.append(g2)
        tensor_to_pil(out * 2 - 1).save(a.out / path.name)
    print(f"{len(gl)} outputs -> {a.out}; mean gain L {sum(gl) / len(gl):.2f}, ab {sum(gc) / len(gc):.2f}")


if __name__ == "__main__":
    main()

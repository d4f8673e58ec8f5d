"""Scene completion by retrieval as the coarse stage of the two-stage fill (after Hays & Efros 2007).

The learned coarse stage returns the conditional mean of the unknown half at 64², a grey smear (Study 20). This
study lays the unknown half out from real photos instead: every training photo is cut into 64² views framed
like the evaluation's (the photo's short side shrunk to 64 or 80 px, windows every 8 px, and their mirror
images), the known half of the photo to fill is matched against the views' left halves (CIELAB, the half
shrunk to 16 × 8 plus the four columns along the seam at twice the weight), and the right half of a close match,
its colour shifted to meet the known half along the seam, is the layout the fine stage starts from. Each seed
may take another of the closest matches, so the layout itself differs between samples.

    python -m studies.retrieval_layout build runs/k4/train.txt --out runs/r1/db.npz
    python -m studies.retrieval_layout fill runs/k2/two-k1-T3.safetensors --db runs/r1/db.npz \
        --references runs/s20/valgc/references --samples 2 --pick best --out runs/r1/best
    palette eval --task uncrop --outputs runs/r1/best/fill --references runs/s20/valgc/references \
        --masks runs/s20/valgc/masks --feature-net effnets --out runs/r1/score-best

The views come from training photos only; the photos filled are validation photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from palette_cli.data import item_seed
from palette_cli.diffusion.process import SamplerSettings
from palette_cli.imageio import load_image, tensor_to_pil
from palette_cli.metrics.pixel import lab_to_rgb, rgb_to_lab
from palette_cli.pipeline import Pipeline
from palette_cli.tasks.base import noise_fill
from palette_cli.tasks.starts import fill_start
from studies.layout_oracle import right_half_uncrop, sample_name

VIEW = 64          # the coarse working size
SEAM = 4           # columns along the seam that are matched at SEAM_WEIGHT
SEAM_WEIGHT = 2.0


def photo_views(image: Image.Image, short_sides: tuple[int, ...], stride: int) -> list[np.ndarray]:
    """64² views of ``image`` (uint8 HWC) with its short side shrunk to each of ``short_sides``, every ``stride``
    px along both axes, and each view's mirror image."""
    out = []
    for s in short_sides:
        w, h = image.size
        scale = s / min(w, h)
        size = (max(VIEW, round(w * scale)), max(VIEW, round(h * scale)))
        small = np.asarray(image.resize(size, Image.Resampling.BOX if scale < 0.5 else Image.Resampling.BICUBIC))
        for y in range(0, size[1] - VIEW + 1, stride):
            for x in range(0, size[0] - VIEW + 1, stride):
                view = small[y:y + VIEW, x:x + VIEW]
                out.extend([view, view[:, ::-1]])
    return out


def to_lab(views: Tensor) -> Tensor:
    """uint8 (N,H,W,3) → CIELAB (N,3,H,W) float32."""
    return rgb_to_lab(views.permute(0, 3, 1, 2).float() / 255).float()


def known_features(lab: Tensor) -> Tensor:
    """The matching features of the left (known) half of 64² CIELAB views (N,3,64,64) → (N,D)."""
    left = lab[..., : VIEW // 2]
    coarse = F.adaptive_avg_pool2d(left, (16, 8)).flatten(1)
    seam = F.adaptive_avg_pool2d(left[..., -SEAM:], (32, SEAM)).flatten(1) * SEAM_WEIGHT
    return torch.cat([coarse, seam], 1)


def build(args: argparse.Namespace) -> None:
    paths = [Path(p.strip()) for p in args.list.read_text().splitlines() if p.strip()]
    views = []
    for i, p in enumerate(paths):
        image = load_image(p).convert("RGB")
        views.extend(photo_views(image, tuple(args.short_sides), args.stride))
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(paths)} photos, {len(views)} views", flush=True)
    stack = np.stack(views)
    feats = torch.cat([known_features(to_lab(torch.from_numpy(stack[i:i + 2048].copy())))
                       for i in range(0, len(stack), 2048)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, views=stack, features=feats.numpy())
    print(f"{len(stack)} views from {len(paths)} photos -> {args.out}")


def seam_matched(query_lab: Tensor, match_lab: Tensor, decay: float) -> Tensor:
    """The match's right half (3,64,32) in CIELAB, shifted by the known halves' mean difference, plus the
    row-wise difference along the seam (smoothed over 9 rows) fading with distance from the seam."""
    half = VIEW // 2
    overall = (query_lab[:, :, :half] - match_lab[:, :, :half]).mean(dim=(1, 2), keepdim=True)
    rows = (query_lab[:, :, half - SEAM:half] - match_lab[:, :, half - SEAM:half]).mean(dim=2, keepdim=True)
    rows = F.avg_pool1d(rows.transpose(0, 1), 9, stride=1, padding=4, count_include_pad=False).transpose(0, 1)
    fade = torch.exp(-torch.arange(half, dtype=torch.float32) / decay).view(1, 1, -1)
    return match_lab[:, :, half:] + overall + (rows - overall) * fade


def retrieved_guess(known: Tensor, mask: Tensor, db_feats: Tensor, db_views: np.ndarray, rank: int,
                    decay: float) -> Tensor:
    """The guess for a 256² photo whose right half is unknown: the rank-th closest view's right half, colour
    matched, enlarged into the unknown half."""
    small = F.interpolate((known + 1) / 2, size=(VIEW, VIEW), mode="area").clamp(0, 1)
    q = rgb_to_lab(small.double()).float()[0]
    d = torch.cdist(known_features(q[None]), db_feats)[0]
    idx = int(torch.topk(d, rank + 1, largest=False).indices[rank])
    m = to_lab(torch.from_numpy(db_views[idx:idx + 1].copy()))[0]
    right = seam_matched(q, m, decay)
    comp_lab = torch.cat([q[:, :, : VIEW // 2], right], 2)
    comp = lab_to_rgb(comp_lab[None].double()).float().clamp(0, 1) * 2 - 1
    h, w = known.shape[-2:]
    big = F.interpolate(comp, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return torch.where(mask.bool(), big, known)


def fill(args: argparse.Namespace) -> None:
    data = np.load(args.db)
    db_views, db_feats = data["views"], torch.from_numpy(data["features"])
    pipe = Pipeline.from_file(args.model, device="cpu")
    if args.guess_time is not None:
        pipe.process.guess_time = args.guess_time
    settings = SamplerSettings(steps=args.steps, eta=args.eta)
    refs = sorted(p for p in args.references.iterdir() if p.suffix == ".png")
    for k in ("fill", "guess"):
        (args.out / k).mkdir(parents=True, exist_ok=True)
    for i, ref in enumerate(refs):
        _, mask, known = right_half_uncrop(ref)
        for j in range(args.samples):
            name = sample_name(ref, j, args.samples)
            g = torch.Generator().manual_seed(item_seed(args.seed, i, j))
            rank = j if args.pick == "rank" else (0 if args.pick == "best" else
                                                   int(torch.randint(args.top, (1,), generator=g)))
            guess = retrieved_guess(known, mask, db_feats, db_views, rank, args.decay)
            tensor_to_pil(guess[0]).save(args.out / "guess" / name)
            cond = noise_fill(known, mask, g)
            start = fill_start(pipe.process.fill_start, known, mask, g)
            out = pipe.sample(cond, settings, g, known=known, mask=mask, start=start, guess=guess)
            tensor_to_pil(out[0].clamp(-1, 1)).save(args.out / "fill" / name)
        print(f"{i + 1}/{len(refs)} {ref.stem}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="cut the training photos into 64² views and their matching features")
    b.add_argument("list", type=Path, help="a text file of training photo paths")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--short-sides", type=int, nargs="+", default=[64, 80])
    b.add_argument("--stride", type=int, default=8)
    f = sub.add_parser("fill", help="uncrop the right half of 256² references from retrieved layouts")
    f.add_argument("model", type=Path, help="a fill model file that starts from a guess (the fine stage)")
    f.add_argument("--db", type=Path, required=True)
    f.add_argument("--references", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--samples", type=int, default=1)
    f.add_argument("--pick", choices=("best", "rank", "random"), default="random",
                   help="best: the closest view for every sample; rank: sample j takes the j-th closest; "
                        "random: a seeded draw among the --top closest")
    f.add_argument("--top", type=int, default=5)
    f.add_argument("--decay", type=float, default=12.0, help="px (at 64²) over which the seam's row shift fades")
    f.add_argument("--guess-time", type=float, default=None)
    f.add_argument("--steps", type=int, default=None)
    f.add_argument("--eta", type=float, default=None)
    f.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args) if args.command == "build" else fill(args)


if __name__ == "__main__":
    main()

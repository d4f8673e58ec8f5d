"""Choose a chroma-bin colorizer's decoding (annealed-mean temperature, draw strength) and checkpoint on the
validation photos, with the judges of the colour issue: two ImageNet networks' feature distance and top-1
agreement with the original (EfficientNet-Lite0 and Lite2), the CIELAB a*b* error, colourfulness against
the originals', and for ``-n`` the a*b* spread of the samples and their average scores.

The network runs once per photo; every decoding setting reuses its logits, so a sweep costs little more
than one evaluation. The grey photo is scored as the baseline every colorizer must beat.

    python -m studies.colour_selection MODEL [MODEL ...] --photos data/photos/validation.txt \\
        --temperatures 0.25,0.38,0.5 --strengths 0.5,1.0 [--draw-temperatures 0.1,0.4] [--segments 0,8] \\
        [--guides 0,4] [--gains 1,1.2] [--samples 4] [--out table.md]

Report results on photos no choice was made on (``scripts/eval_side_by_side.sh``); this is for choosing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from palette_cli.diffusion.chroma import coherent_gumbel, segment_gumbel
from palette_cli.data import center_crop, list_images
from palette_cli.imageio import load_image, pil_to_tensor
from palette_cli.metrics.features import load_feature_net
from palette_cli.metrics.pixel import ab_error, ab_spread, colourfulness
from palette_cli.pipeline import Pipeline
from palette_cli.diffusion.bridge import ChromaBridgeProcess
from palette_cli.tasks.colorize import to_gray

JUDGES = ("effnet-lite0", "effnet-lite2")


def references(spec: str, size: int) -> torch.Tensor:
    return torch.stack([pil_to_tensor(center_crop(load_image(p), size)) for p in list_images(spec)])


class Judge:
    """Feature distance and top-1 agreement of outputs against the originals on the judging networks."""

    def __init__(self, refs: torch.Tensor):
        self.nets = [load_feature_net(kind) for kind in JUDGES]
        self.refs = refs
        with torch.no_grad():
            self.ref_out = [self._run(net, refs) for net in self.nets]

    @staticmethod
    def _run(net, images: torch.Tensor):
        pooled, labels = [], []
        for i in range(0, len(images), 8):
            f = net(images[i:i + 8].float())
            pooled.append(f.pooled)
            labels.append(f.logits.argmax(-1))
        return torch.cat(pooled), torch.cat(labels)

    @torch.no_grad()
    def score(self, outs: torch.Tensor) -> dict[str, float]:
        row: dict[str, float] = {}
        for kind, net, (ref_pooled, ref_labels) in zip(JUDGES, self.nets, self.ref_out):
            pooled, labels = self._run(net, outs)
            name = kind.replace("effnet-", "")
            row[f"pd_{name}"] = float((pooled - ref_pooled).norm(dim=1).mean())
            row[f"ca_{name}"] = float((labels == ref_labels).float().mean())
        x, y = (outs.float() + 1) / 2, (self.refs.float() + 1) / 2
        row["ab_error"] = float(ab_error(x, y).mean())
        row["colourfulness"] = float(colourfulness(x).mean() / colourfulness(y).mean())
        return row


@torch.no_grad()
def logits_of(pipe: Pipeline, gray: torch.Tensor) -> torch.Tensor:
    out = []
    for i in range(len(gray)):
        g = gray[i:i + 1].to(pipe.device)
        out.append(pipe.process.logits(pipe.net_fn, g, torch.ones(1, device=g.device), g).cpu())
    return torch.cat(out)


@torch.no_grad()
def sweep(path: str, refs: torch.Tensor, judge: Judge, temperatures: list[float], strengths: list[float],
          samples: int, seed: int, guides: list[int], cells: list[int] | None = None,
          gains: list[float] | None = None, draw_temperatures: list[float] | None = None,
          segments: list[int] | None = None, flips: list[int] | None = None) -> list[dict]:
    pipe = Pipeline.from_file(path)
    process = pipe.process
    if not isinstance(process, ChromaBridgeProcess):
        raise SystemExit(f"{path}: not a chroma-bin colorizer")
    gray = to_gray(refs)
    logits_by_flip = {}
    for flip in flips or [process.flip_average]:
        process.flip_average = flip
        logits_by_flip[flip] = logits_of(pipe, gray)
    rows = []
    for flip, radius, t, gain in [(f, r, t, k) for f in logits_by_flip for r in guides for t in temperatures
                                  for k in (gains or [process.chroma_gain])]:
        process.flip_average, process.guide_radius, process.chroma_gain = flip, radius, gain
        logits = logits_by_flip[flip]
        mean = process._on_luma(process.grid.decode(logits, t), gray).clamp(-1, 1)
        base = judge.score(mean)
        rows.append({"model": Path(path).name, "flip": process.flip_average, "guide": radius, "T": t, "gain": gain,
                     "draw": "mean", **base})
        # a draw kind: ("cells", n) for a lattice's smooth noise, ("segments", n) for noise shared per segment;
        # segments 0 stands for the lattices
        kinds = []
        for n in segments or [process.draw_segments]:
            kinds += [("segments", n)] if n else [("cells", c) for c in cells or [process.draw_cells]]
        for s, (kind, n_kind), t_draw in [(s, k, d) for s in strengths for k in kinds
                                          for d in (draw_temperatures or [t])]:
            gen = torch.Generator().manual_seed(seed)
            draws = []
            for _ in range(samples - 1):
                noise = (segment_gumbel(logits, gen, n_kind) if kind == "segments"
                         else coherent_gumbel(tuple(logits.shape), gen, n_kind)) * s
                draws.append(process._on_luma(process.grid.decode(logits, t_draw, noise), gray).clamp(-1, 1))
            scored = [judge.score(d) for d in draws]
            # the average over all samples: the annealed mean and the draws
            avg = {k: (base[k] + sum(r[k] for r in scored)) / samples for k in base}
            spread = sum(ab_spread((torch.stack([mean[i], *[d[i] for d in draws]]) + 1) / 2)
                         for i in range(len(refs))) / len(refs)
            rows.append({"model": Path(path).name, "flip": process.flip_average, "guide": radius, "T": t, "gain": gain,
                         "draw": f"n={samples}, s={s:g}, {kind}={n_kind}, T={t_draw:g}", **avg,
                         "ab_spread": spread})
    return rows


def table(rows: list[dict]) -> str:
    cols = ["model", "flip", "guide", "T", "gain", "draw", "pd_lite0", "pd_lite2", "ca_lite0", "ca_lite2", "ab_error", "colourfulness",
            "ab_spread"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--photos", default="data/photos/validation.txt")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--temperatures", default="0.38")
    ap.add_argument("--strengths", default="")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--guides", default="0", help="joint-bilateral upsampling radii of the chroma (0: bilinear)")
    ap.add_argument("--cells", default="", help="draw lattices to sweep (default: the model's draw_cells)")
    ap.add_argument("--gains", default="", help="chroma gains to sweep (default: the model's chroma_gain)")
    ap.add_argument("--segments", default="", help="draws per segment to sweep (0: over a lattice; default: "
                    "the model's draw_segments)")
    ap.add_argument("--draw-temperatures", default="", help="the draws' temperatures to sweep (default: the mean's)")
    ap.add_argument("--flips", default="", help="flip_average settings to sweep (0, 1; default: the model's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    refs = references(args.photos, args.size)
    judge = Judge(refs)
    rows = [{"model": "grey input", "T": "", "draw": "", **judge.score(to_gray(refs))}]
    temps = [float(t) for t in args.temperatures.split(",") if t]
    strengths = [float(s) for s in args.strengths.split(",") if s]
    for path in args.models:
        rows += sweep(path, refs, judge, temps, strengths, args.samples, args.seed,
                      [int(r) for r in args.guides.split(",") if r], [int(c) for c in args.cells.split(",") if c],
                      [float(k) for k in args.gains.split(",") if k],
                      [float(d) for d in args.draw_temperatures.split(",") if d],
                      [int(n) for n in args.segments.split(",") if n], [int(f) for f in args.flips.split(",") if f])
        print(table(rows), flush=True)
    text = f"{len(refs)} photos from {args.photos}, {args.size}² centre crops\n\n{table(rows)}\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

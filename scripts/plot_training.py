"""Draw a run's loss curve (training loss, smoothed, and validation loss) from metrics.jsonl as a PNG.

Uses matplotlib when it is installed, otherwise draws the chart with Pillow alone.

    python scripts/plot_training.py runs/shipped weights/loss_curve.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train, val = {}, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("event") == "log":
            train[r["step"]] = r["loss"]  # a resumed run may log a step twice: keep the last
        elif r.get("event") == "val":
            val[r["step"]] = r["val_loss"]
    return sorted(train.items()), sorted(val.items())


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else weight * acc + (1 - weight) * v
        out.append(acc)
    return out


def draw_pillow(train, val, path: Path, title: str, logy: bool = True) -> None:
    from PIL import Image, ImageDraw

    if logy:  # plot log10 of the losses, label the axis in loss units
        train = [(s, math.log10(v)) for s, v in train if v > 0]
        val = [(s, math.log10(v)) for s, v in val if v > 0]

    w, h, left, right, top, bottom = 800, 450, 70, 20, 40, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    points = [v for _, v in train] + [v for _, v in val]
    x_max = max([s for s, _ in train] + [s for s, _ in val] + [1])
    y_lo, y_hi = min(points), max(points)
    y_lo, y_hi = (y_lo - 0.05 * (y_hi - y_lo + 1e-9)), (y_hi + 0.05 * (y_hi - y_lo + 1e-9))

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (w - left - right) * step / x_max,
                top + (h - top - bottom) * (1 - (value - y_lo) / (y_hi - y_lo)))

    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for i in range(6):  # grid and tick labels
        v = y_lo + (y_hi - y_lo) * i / 5
        y = xy(0, v)[1]
        d.line([left, y, w - right, y], fill=(225, 225, 225))
        d.text((5, y - 6), f"{10 ** v if logy else v:.3g}", fill="black")
        s = x_max * i / 5
        x = xy(s, y_lo)[0]
        d.text((x - 15, h - bottom + 8), f"{int(s)}", fill="black")
    d.text((w // 2 - 20, h - 22), "step", fill="black")
    d.text((left, 12), title, fill="black")
    if train:
        d.line([xy(s, v) for s, v in train], fill=(180, 200, 235), width=1)
        d.line([xy(s, v) for (s, _), v in zip(train, smooth([v for _, v in train]))], fill=(30, 80, 200), width=2)
    if len(val) > 1:
        d.line([xy(s, v) for s, v in val], fill=(220, 80, 30), width=2)
    for s, v in val:
        x, y = xy(s, v)
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(220, 80, 30))
    d.text((w - right - 260, top + 8), "blue: training loss (EMA-smoothed)", fill=(30, 80, 200))
    d.text((w - right - 260, top + 22), "orange: validation loss (EMA weights)", fill=(220, 80, 30))
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--title", default="Palette multi-task model: epsilon-prediction L2 loss (log scale)")
    ap.add_argument("--linear", action="store_true", help="linear instead of logarithmic loss axis")
    args = ap.parse_args()
    train, val = read_metrics(args.run_dir)
    if not train:
        raise SystemExit(f"{args.run_dir}: no training records in metrics.jsonl")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        draw_pillow(train, val, args.out, args.title, logy=not args.linear)
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        ax.plot([s for s, _ in train], [v for _, v in train], color="#b4c8eb", lw=1)
        ax.plot([s for s, _ in train], smooth([v for _, v in train]), color="#1e50c8", lw=2, label="training loss")
        if val:
            ax.plot([s for s, _ in val], [v for _, v in val], "o-", color="#dc501e", label="validation loss (EMA)")
        ax.set_xlabel("step")
        if not args.linear:
            ax.set_yscale("log")
        ax.set_title(args.title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out)
    last = train[-1]
    print(f"{args.out}: {len(train)} points, last step {last[0]} loss {last[1]:.4f}"
          + (f", validation {val[-1][1]:.4f} at step {val[-1][0]}" if val else "")
          + ("" if math.isfinite(last[1]) else " (non-finite loss!)"))


if __name__ == "__main__":
    main()

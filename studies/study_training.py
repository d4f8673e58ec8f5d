"""Studies 2-4: models trained under one recipe that differ in one setting, compared on the same inputs.

The runs come from ``scripts/train_studies.sh`` (the arms of ``studies/matrix.py`` on ``configs/study.toml``:
the shipped network from scratch, 32² crops, a fixed number of steps): ``reference`` (diffusion, L2, all four tasks), ``regression`` (the
paper's regression baseline: same network, data and steps, one pass from the condition), ``l1`` (diffusion
with the L1 loss) and task-specific runs (``colorize-only`` …). Every run's newest checkpoint is exported
(all must stand at the same step), then each model is evaluated with ``palette_cli.evaluate.evaluate`` on
every task it was trained for: the same evaluation inputs and seeds for every model, ``--samples`` samples
per input for the diversity metrics, the CLI's default sampler for diffusion models.

Evaluation inputs are square crops of photos no model trained on (``--references``: the development
photos and the held-out training photos), ``--crops`` per photo at random positions and sizes (40-100% of
the shorter side; fixed seed), saved once as ``OUT/references`` and reused.

Prints one Markdown table per task (FID/KID/PD/IS on EfficientNet-Lite0 features: not comparable to
published numbers; PSNR, SSIM; diversity) and writes ``OUT/study.json`` and a sample grid per task,
``OUT/TASK/grid.png`` (rows: input, original, sample 0 of each model; columns: the first photos).

    python -m studies.study_training --runs reference regression l1 colorize-only \\
        --references data/dev-photos --references data/photos/heldout.txt --size 32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

from palette_cli.evaluate import EVAL_TASKS, evaluate, eval_names, select_references
from palette_cli.tasks import parse_task_spec
from palette_cli.training import export_checkpoint, latest_checkpoint, load_checkpoint
from studies.matrix import LABELS
from studies.study_samplers import fmt, sample_grid


def make_eval_crops(references: list[str], out: Path, crops: int, size: int, seed: int = 0) -> list[Path]:
    """``crops`` random square crops (40-100% of the shorter side, resized to ``size``) of every photo."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    made = []
    for src in select_references(references):
        img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
        short = min(img.size)
        for k in range(crops):
            side = int(short * rng.uniform(0.4, 1.0))
            x, y = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
            path = out / f"{src.stem}-{k}.png"
            if not path.exists():
                img.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.LANCZOS).save(path)
            made.append(path)
    return made


COLOURS = [(66, 114, 196), (237, 125, 49), (112, 173, 71), (255, 192, 0), (91, 155, 213), (165, 105, 189)]


def bar_chart(record: dict, metric: str, title: str, path: Path) -> None:
    """Grouped bars (Pillow only): one group per task, one bar per model, the value written on each bar."""
    from PIL import ImageDraw

    tasks = [t for t in record["tasks"] if any(r.get(metric) is not None for r in record["tasks"][t])]
    models = list(dict.fromkeys(r["run"] for t in tasks for r in record["tasks"][t]))
    if not tasks:
        return
    top = max(r[metric] for t in tasks for r in record["tasks"][t] if r.get(metric) is not None) * 1.15
    bar, gap, h, left, bottom = 34, 28, 300, 50, 40
    width = left + len(tasks) * (len(models) * bar + gap) + 20
    legend_h = 18 * len(models) + 10
    img = Image.new("RGB", (max(width, 420), h + bottom + 30 + legend_h), "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 6), title, fill="black")
    base = 30 + h
    draw.line((left - 4, base, width - 10, base), fill="black")
    x = left
    for task in tasks:
        rows = {r["run"]: r for r in record["tasks"][task]}
        for k, model in enumerate(models):
            value = rows.get(model, {}).get(metric)
            if value is not None:
                y = base - int(h * value / top)
                draw.rectangle((x + k * bar, y, x + (k + 1) * bar - 4, base), fill=COLOURS[k % len(COLOURS)])
                draw.text((x + k * bar, y - 12), f"{value:.0f}" if value >= 10 else f"{value:.2f}", fill="black")
        draw.text((x, base + 6), task, fill="black")
        x += len(models) * bar + gap
    for k, model in enumerate(models):
        y = base + bottom + 18 * k
        draw.rectangle((left, y, left + 12, y + 12), fill=COLOURS[k % len(COLOURS)])
        draw.text((left + 18, y), LABELS.get(model, model), fill="black")
    img.save(path)


def run_tasks(run_dir: Path) -> list[str]:
    """The evaluation tasks a run trained on (the parts of its task spec)."""
    task = parse_task_spec(load_checkpoint(latest_checkpoint(run_dir))["config"]["task"])
    names = {t.name for t in getattr(task, "tasks", [task])}
    return [t for t in EVAL_TASKS if t in names]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run names under --runs-dir")
    p.add_argument("--runs-dir", default="runs/studies")
    p.add_argument("--references", action="append", required=True)
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--ref-size", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--n-images", type=int, default=None)
    p.add_argument("--tasks", nargs="*", default=list(EVAL_TASKS))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--grid-photos", type=int, default=8)
    p.add_argument("--out", default="runs/study-training")
    args = p.parse_args()

    out = Path(args.out)
    refs = make_eval_crops(args.references, out / "references", args.crops, args.ref_size)
    if args.n_images:
        refs = refs[:args.n_images]
    models, steps = {}, {}
    for name in args.runs:
        ckpt = latest_checkpoint(Path(args.runs_dir) / name)
        steps[name] = int(load_checkpoint(ckpt)["step"])
        models[name] = export_checkpoint(ckpt, out / "models" / f"{name}.safetensors", dtype="fp32")
    if len(set(steps.values())) != 1:
        sys.exit(f"the runs stand at different steps: {steps}")
    step = next(iter(steps.values()))
    print(f"{len(args.runs)} models at step {step}; {len(refs)} evaluation crops at {args.size} px, "
          f"{args.samples} samples each", flush=True)

    record: dict = {"step": step, "size": args.size, "samples": args.samples, "n_images": len(refs), "tasks": {}}
    # grid columns: the first crop of each photo, so that the columns show different photos
    all_names = eval_names(refs)
    names = list(dict.fromkeys([n for n in all_names if n.endswith("-0")] + all_names))[:args.grid_photos]
    for task in args.tasks:
        rows, done = [], []
        for name in args.runs:
            if task not in run_tasks(Path(args.runs_dir) / name):
                continue
            t = time.perf_counter()
            result = evaluate(str(models[name]), task, [str(r) for r in refs], out / task / name,
                              samples_per_image=args.samples, size=args.size, seed=0, threads=args.threads,
                              batch_size=args.batch_size, log=None)
            m = result["metrics"]
            rows.append({"run": name, "seconds": time.perf_counter() - t,
                         "s_per_image": result["generation"]["timing_s"]["generation_per_image"], **m})
            done.append((LABELS.get(name, name), out / task / name))
        if not rows:
            continue
        record["tasks"][task] = rows
        sample_grid(out / task, done, names).save(out / task / "grid.png")
        print(f"\n### {task} ({len(refs)} crops at {args.size} px, step {step})\n")
        print("| model | FID-effnet | KID-effnet | PD-effnet | IS-effnet | PSNR | SSIM | div. MS-SSIM ↓ | "
              "div. LPIPS-effnet ↑ | s/image |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            vals = [r.get(k) for k in ("fid_effnet_lite0", "kid_effnet_lite0", "pd_effnet_lite0", "is_effnet_lite0",
                                        "psnr", "ssim", "diversity_ms_ssim", "diversity_lpips_effnet_lite0")]
            print(f"| {LABELS.get(r['run'], r['run'])} | " + " | ".join(fmt(v) for v in vals)
                  + f" | {fmt(r['s_per_image'], 3)} |", flush=True)
        (out / "study.json").write_text(json.dumps(record, indent=2))
    bar_chart(record, "fid_effnet_lite0", f"FID on EfficientNet-Lite0 features (lower is better), step {step}",
              out / "fid.png")


if __name__ == "__main__":
    main()

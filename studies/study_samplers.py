"""Study 1: quality against sampling cost — the paper's 1000-step DDPM vs DDIM and DPM-Solver++ at few steps.

For each task, every sampler configuration runs on the same evaluation inputs with the same seeds
(``palette_cli.evaluate.generate_outputs``) and is scored with ``score_outputs``. Printed per task, as
a Markdown table: model calls per sample, seconds per image, FID / perceptual distance on
EfficientNet-Lite0 features (not comparable to published numbers), PSNR, SSIM, and the RMSE (8-bit
levels, over the generated pixels) between each output and the 1000-step DDPM output of the same
input and seed. A sample grid per task (rows: input, original, then each configuration; columns: the
first photos) is saved as ``OUT/TASK/grid.png``, the numbers as ``OUT/study.json``.

The 1000-step DDPM costs 1000 model calls per sample, about as much as all the other configurations
together several times over: at 64 px on one CPU thread it takes roughly 40 s per photo, so choose
``--n-images`` and ``--size`` by it (the script prints the total number of model calls first).

    python -m studies.study_samplers --model MODEL --references data/dev-photos \\
        --references runs/shipped/photos/heldout --task colorize --task inpaint --n-images 8 --size 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from palette_cli.evaluate import (EVAL_MASK_MODES, EVAL_TASKS, MASKS_DIR, OUTPUTS_DIR, EvalTask, generate_outputs,
                                  score_outputs, select_references)
from palette_cli.hub import resolve_model
from palette_cli.pipeline import Pipeline, SamplerSettings
from palette_cli.diffusion.sampling import DEFAULT_SPACING

DEFAULT_CONFIGS = ("ddpm:1000,ddim:5,ddim:10,ddim:20,ddim:50,"
                   "dpmpp_2m:5,dpmpp_2m:10,dpmpp_2m:20,dpmpp_2m:50,"
                   "dpmpp_2m_sde:5,dpmpp_2m_sde:10,dpmpp_2m_sde:20,dpmpp_2m_sde:50")
REFERENCE_CONFIG = ("ddpm", 1000, None)
LABEL_WIDTH = 120
MIN_CELL = 96  # smaller images are enlarged (nearest neighbour) in the grid


def parse_configs(text: str) -> list[tuple[str, int, str | None]]:
    """``"ddpm:1000,ddim:10,ddpm:50:logsnr"`` → [("ddpm", 1000, None), ("ddim", 10, None), ("ddpm", 50, "logsnr")]
    (no spacing: the sampler's default)."""
    configs = []
    for item in text.split(","):
        sampler, steps, *spacing = item.strip().split(":")
        configs.append((sampler, int(steps), spacing[0] if spacing else None))
    return configs


def config_name(sampler: str, steps: int, spacing: str | None) -> str:
    return f"{sampler}-{steps}" + (f"-{spacing}" if spacing else "")


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def rmse_to(run: Path, reference_run: Path, names: list[str]) -> float:
    """Mean over photos of the RMSE (8-bit levels) between sample 0 of two runs, over the generated pixels."""
    values = []
    for name in names:
        a = read_rgb(run / OUTPUTS_DIR / f"{name}_s0.png")
        b = read_rgb(reference_run / OUTPUTS_DIR / f"{name}_s0.png")
        mask_file = run / MASKS_DIR / f"{name}.png"
        where = (np.asarray(Image.open(mask_file)) > 0 if mask_file.is_file()
                 else np.ones(a.shape[:2], bool))
        values.append(float(np.sqrt(((a - b)[where] ** 2).mean())))
    return float(np.mean(values))


def sample_grid(task_dir: Path, runs: list[tuple[str, Path]], names: list[str]) -> Image.Image:
    """Rows: input, original, then sample 0 of each run; columns: the photos ``names``; labels on the left."""
    first = runs[0][1]
    rows = [("input", [first / "inputs" / f"{n}.png" for n in names]),
            ("original", [first / "references" / f"{n}.png" for n in names])]
    rows += [(label, [run / OUTPUTS_DIR / f"{n}_s0.png" for n in names]) for label, run in runs]
    size = Image.open(rows[0][1][0]).size[0]
    cell = size * max(1, -(-MIN_CELL // size))
    grid = Image.new("RGB", (LABEL_WIDTH + cell * len(names), cell * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (label, files) in enumerate(rows):
        draw.text((4, r * cell + cell // 2 - 5), label, fill="black")
        for c, file in enumerate(files):
            image = Image.open(file).convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(image, (LABEL_WIDTH + c * cell, r * cell))
    return grid


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def print_table(task: EvalTask, rows: list[dict], facts: str) -> None:
    setting = ", ".join(f"{k} {v}" for k, v in task.describe().items() if k != "task")
    print(f"\n### {task.name}{f' ({setting})' if setting else ''}: {facts}\n")
    print("| sampler | steps | spacing | model calls | s/image | FID-effnet | PSNR | SSIM | PD-effnet | "
          "RMSE to DDPM-1000 |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        values = [fmt(r["seconds_per_image"], 3), fmt(r["fid_effnet_lite0"]), fmt(r["psnr"]), fmt(r["ssim"]),
                  fmt(r["pd_effnet_lite0"]), fmt(r["rmse_to_ddpm_1000"], 3)]
        print(f"| {r['sampler']} | {r['steps']} | {r['spacing']} | {r['model_calls']} | {' | '.join(values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model file, shipped name or Hub repo")
    parser.add_argument("--references", action="append", required=True, help="folder or list of photos (repeatable)")
    parser.add_argument("--task", action="append", choices=EVAL_TASKS, help="task (repeatable; default colorize)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="sampler:steps[:spacing],… (default: %(default)s)")
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--samples-per-image", type=int, default=1)
    parser.add_argument("--grid-images", type=int, default=4)
    parser.add_argument("--mask-mode", default="free_form_20_30", choices=EVAL_MASK_MODES)
    parser.add_argument("--jpeg-quality", type=int, default=10)
    parser.add_argument("--direction", default="right")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: adaptive, as in training)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep outputs of an earlier run (their time is not measured)")
    parser.add_argument("--out", type=Path, default=Path("runs/study-samplers"))
    args = parser.parse_args()

    tasks = args.task or ["colorize"]
    configs = parse_configs(args.configs)
    if REFERENCE_CONFIG in configs:  # run it first: the others are compared with it
        configs.remove(REFERENCE_CONFIG)
        configs.insert(0, REFERENCE_CONFIG)
    n = len(select_references(args.references, args.n_images))
    per_photo = args.samples_per_image * sum(steps for _, steps, _ in configs)
    reference_share = args.samples_per_image * 1000 if REFERENCE_CONFIG in configs else 0
    print(f"{len(tasks)} task(s) x {n} photos x {args.samples_per_image} sample(s) at {args.size} px: "
          f"{n * per_photo} model calls per task ({n * reference_share} of them for the 1000-step DDPM)")

    path, model_id = resolve_model(args.model)
    pipe = Pipeline.from_file(path, device=args.device, precision=args.precision, model_id=model_id,
                              resolution=args.size, batch_size=max(1, args.samples_per_image))
    threads = None if args.threads == 0 else args.threads
    study: dict[str, list[dict]] = {}
    for task_name in tasks:
        task = EvalTask(task_name, args.mask_mode, args.jpeg_quality, args.direction)
        task_dir = args.out / task_name
        runs: list[tuple[str, Path]] = []
        rows: list[dict] = []
        reference_run = task_dir / config_name(*REFERENCE_CONFIG)
        for sampler, steps, spacing in configs:
            run = task_dir / config_name(sampler, steps, spacing)
            t0 = time.perf_counter()
            record = generate_outputs(pipe, task, args.references, run, n_images=args.n_images,
                                      samples_per_image=args.samples_per_image, size=args.size,
                                      settings=SamplerSettings(sampler, steps, spacing), seed=args.seed,
                                      threads=threads, overwrite=not args.reuse, log=None)
            names = list(record["images"]["names"])
            refs = [str(run / "references" / f"{name}.png") for name in names]
            scores = score_outputs(run / OUTPUTS_DIR, refs, samples_per_image=args.samples_per_image, out_dir=run,
                                   log=None)
            m = scores["metrics"]
            row = {"sampler": sampler, "steps": steps, "spacing": spacing or DEFAULT_SPACING[sampler],
                   "model_calls": record["model_calls_per_sample"],
                   "seconds_per_image": record["timing_s"]["generation_per_image"],
                   "fid_effnet_lite0": m.get("fid_effnet_lite0"), "psnr": m.get("psnr"), "ssim": m.get("ssim"),
                   "pd_effnet_lite0": m.get("pd_effnet_lite0"),
                   "rmse_to_ddpm_1000": (rmse_to(run, reference_run, names)
                                         if (reference_run / OUTPUTS_DIR).is_dir() else None)}
            rows.append(row)
            runs.append((config_name(sampler, steps, spacing).replace("-", " "), run))
            print(f"{task_name} {config_name(sampler, steps, spacing)}: {time.perf_counter() - t0:.0f} s", flush=True)
        study[task_name] = rows
        grid = sample_grid(task_dir, runs, names[:args.grid_images])
        grid.save(task_dir / "grid.png")

        print_table(task, rows, f"{n} photos, {args.size} px, {args.samples_per_image} sample(s), seed {args.seed}, "
                    f"model {model_id}")
        print(f"\ngrid: {task_dir / 'grid.png'}\n", flush=True)
    (args.out / "study.json").write_text(json.dumps(
        {"model": model_id, "model_hash": pipe.model_hash, "settings": {k: str(v) for k, v in vars(args).items()},
         "torch_threads": torch.get_num_threads(), "results": study}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""What the JPEG quantization constraint costs `palette restore`: the shipped restorer on one JPEG photo with the
constraint and without, in the same run, interleaved (with, without, with, …), medians of ``--repeats``, and
the projection alone on that photo's result.

The photo is made here: ``examples/astronaut_256.png`` enlarged to ``--size`` pixels a side (Lanczos) and saved
at ``--quality``. The ratio is what counts; absolute times depend on the CPU and on what else runs.

    python benchmarks/bench_jpeg_constraint.py [--size 1024] [--quality 75] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from palette_cli.diffusion.process import SamplerSettings
from palette_cli.imageio import load_image, pil_to_tensor
from palette_cli.pipeline import Pipeline
from palette_cli.tasks.quantization import JpegQuantization, project

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        Image.open(ROOT / "examples/astronaut_256.png").convert("RGB").resize(
            (args.size, args.size), Image.LANCZOS).save(path, quality=args.quality)
        image = load_image(path)
    pipe = Pipeline.from_file(ROOT / "weights/palette-restore.safetensors", task="restore")
    settings = SamplerSettings(None, None)  # the model file's own sampler and steps, as the command uses
    times: dict[bool, list[float]] = {True: [], False: []}
    outputs = {}
    for _ in range(args.repeats + 1):  # the first round warms up and is not counted
        for constraint in (True, False):
            t0 = time.perf_counter()
            outputs[constraint] = pipe.restore(image, settings, torch.Generator().manual_seed(0),
                                               jpeg_constraint=constraint)[0]
            times[constraint].append(time.perf_counter() - t0)
    quant = JpegQuantization.from_image(image)
    raw, decoded = pil_to_tensor(outputs[False])[None], pil_to_tensor(image)[None]
    alone = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        project(raw, decoded, quant)
        alone.append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    print(f"palette-restore on a {args.size}x{args.size} JPEG (quality {args.quality}), {torch.get_num_threads()} "
          f"threads, medians of {args.repeats}:")
    print(f"  with the constraint    {med[True]:.3f} s")
    print(f"  without                {med[False]:.3f} s")
    print(f"  ratio with / without   {med[True] / med[False]:.3f}")
    print(f"  the projection alone   {statistics.median(alone):.3f} s")


if __name__ == "__main__":
    main()

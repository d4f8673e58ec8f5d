"""End-to-end speed of the CLI on this machine.

Prints: the time of `palette --help` (target < 0.5 s), the time to colorize a 512×512 photo (target
≤ 4 s) and to restore a 1-megapixel JPEG (1024×1024 at quality 10, target ≤ 30 s), each with the
command's default model, sampler and step count, measured as the median of a few runs of the real
command in a fresh process; and each time's ratio to its target.

    python benchmarks/bench_cli.py [--colorize-model NAME_OR_FILE] [--restore-model NAME_OR_FILE] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--colorize-model", "--model", default=None)
    parser.add_argument("--restore-model", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--photo", default=str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper_gray.jpg"))
    args = parser.parse_args()
    from PIL import Image

    palette = [sys.executable, "-c", "from palette_cli.cli.app import main; main()"]
    help_times = [timed(palette + ["--help"]) for _ in range(5)]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo512.png"
        Image.open(args.photo).convert("RGB").resize((512, 512), Image.Resampling.LANCZOS).save(photo)
        cmd = palette + ["colorize", str(photo), "-o", str(Path(tmp) / "out.png"), "--overwrite", "--quiet",
                         "--seed", "0"] + (["--model", args.colorize_model] if args.colorize_model else [])
        runs = [timed(cmd) for _ in range(args.runs)]
        jpeg = Path(tmp) / "photo1mp.jpg"
        Image.open(args.photo).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(jpeg, quality=10)
        cmd = palette + ["restore", str(jpeg), "-o", str(Path(tmp) / "restored.png"), "--overwrite", "--quiet",
                         "--seed", "0"] + (["--model", args.restore_model] if args.restore_model else [])
        restore_runs = [timed(cmd) for _ in range(args.runs)]
    rows = [("`palette --help`", help_times, 0.5, "<"),
            ("`palette colorize` 512×512, defaults", runs, 4.0, "≤"),
            ("`palette restore` 1024×1024 JPEG q10, defaults", restore_runs, 30.0, "≤")]
    print("| measurement | median | min | max | target | median / target | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, times, target, rel in rows:
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} s | {min(times):.2f} s | {max(times):.2f} s | {rel} {target:g} s | "
              f"{med / target:.2f} | {len(times)} |")


if __name__ == "__main__":
    main()

"""End-to-end speed of the CLI on this machine.

Prints: the time of `palette --help` (target < 0.5 s), and the time to colorize a 512×512 photo with
the default model, sampler and step count (target ≤ 15 s on a 2-core CPU), measured as the median of
a few runs of the real command in a fresh process.

    python benchmarks/bench_cli.py [--model NAME_OR_FILE] [--runs 3]
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
    parser.add_argument("--model", default=None)
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
                         "--seed", "0"] + (["--model", args.model] if args.model else [])
        runs = [timed(cmd) for _ in range(args.runs)]
    print("| measurement | median | target | runs |")
    print("|---|---|---|---|")
    print(f"| `palette --help` | {statistics.median(help_times):.2f} s | < 0.5 s | {len(help_times)} |")
    print(f"| `palette colorize` 512×512, defaults | {statistics.median(runs):.1f} s | ≤ 15 s | {len(runs)} |")


if __name__ == "__main__":
    main()

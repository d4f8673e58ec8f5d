"""End-to-end speed of the CLI on this machine.

Prints: the time of `palette --help` (target < 0.5 s), the time to colorize a 512×512 photo (target
≤ 4 s), to restore a 1-megapixel JPEG (1024×1024 at quality 10, target ≤ 30 s), to fill a 128×128 hole in
a 1-megapixel photo (target ≤ 10 s, as for one uncropping window), to uncrop a 256×256
photo to 256×512 (target ≤ 10 s) and to make its 8-step panorama (target ≤ 60 s), each with the
command's default model, sampler and step count, measured as the median of a few runs of the real
command in a fresh process; and each time's ratio to its target.

    python benchmarks/bench_cli.py [--colorize-model NAME_OR_FILE] [--restore-model NAME_OR_FILE]
        [--fill-model NAME_OR_FILE] [--runs 3] [--skip restore,inpaint,panorama]
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
    parser.add_argument("--fill-model", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated rows to leave out: colorize, restore, inpaint, "
                        "uncrop, panorama")
    parser.add_argument("--photo", default=str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper_gray.jpg"))
    args = parser.parse_args()
    from PIL import Image

    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - {"colorize", "restore", "inpaint", "uncrop", "panorama"}
    if unknown:
        parser.error(f"unknown row(s) to skip: {', '.join(sorted(unknown))}")

    def model(name: str | None) -> list[str]:
        return ["--model", name] if name else []

    palette = [sys.executable, "-c", "from palette_cli.cli.app import main; main()"]
    rows = [("`palette --help`", [timed(palette + ["--help"]) for _ in range(5)], 0.5, "<")]
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--overwrite", "--quiet", "--seed", "0"]
        runs = lambda cmd: [timed(cmd) for _ in range(args.runs)]  # noqa: E731
        source = Image.open(args.photo).convert("RGB")
        if "colorize" not in skip:
            photo = Path(tmp) / "photo512.png"
            source.resize((512, 512), Image.Resampling.LANCZOS).save(photo)
            cmd = palette + ["colorize", str(photo), "-o", str(Path(tmp) / "out.png")] + common
            rows.append(("`palette colorize` 512×512, defaults", runs(cmd + model(args.colorize_model)), 4.0, "≤"))
        if "restore" not in skip:
            jpeg = Path(tmp) / "photo1mp.jpg"
            source.resize((1024, 1024), Image.Resampling.LANCZOS).save(jpeg, quality=10)
            cmd = palette + ["restore", str(jpeg), "-o", str(Path(tmp) / "restored.png")] + common
            rows.append(("`palette restore` 1024×1024 JPEG q10, defaults", runs(cmd + model(args.restore_model)),
                         30.0, "≤"))
        if "inpaint" not in skip:
            big = Path(tmp) / "photo1mp.png"
            source.resize((1024, 1024), Image.Resampling.LANCZOS).save(big)
            cmd = palette + ["inpaint", str(big), "--box", "448,448,128,128", "-o", str(Path(tmp) / "filled.png")] + common
            rows.append(("`palette inpaint` 1024×1024, one 128×128 hole, defaults", runs(cmd + model(args.fill_model)),
                         10.0, "≤"))
        small = Path(tmp) / "photo256.png"
        source.resize((256, 256), Image.Resampling.LANCZOS).save(small)
        if "uncrop" not in skip:
            cmd = palette + ["uncrop", str(small), "--direction", "right", "--amount", "256",
                             "-o", str(Path(tmp) / "wide.png")] + common
            rows.append(("`palette uncrop` 256×256 → 256×512, defaults", runs(cmd + model(args.fill_model)), 10.0,
                         "≤"))
        if "panorama" not in skip:
            cmd = palette + ["panorama", str(small), "--steps", "8", "-o", str(Path(tmp) / "pano.png")] + common
            rows.append(("`palette panorama --steps 8` from 256×256, defaults", runs(cmd + model(args.fill_model)),
                         60.0, "≤"))
    print("| measurement | median | min | max | target | median / target | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, times, target, rel in rows:
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} s | {min(times):.2f} s | {max(times):.2f} s | {rel} {target:g} s | "
              f"{med / target:.2f} | {len(times)} |")


if __name__ == "__main__":
    main()

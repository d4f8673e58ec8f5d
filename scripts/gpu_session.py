#!/usr/bin/env python3
"""One GPU session, in three steps: prepare a carry folder here, run on the GPU machine, unpack here.

    python scripts/gpu_session.py prepare                 # → runs/gpu-carry (training photos, eval crops)
    python3 scripts/gpu_session.py run --minutes 6        # on the GPU machine, carrying runs/gpu-carry; writes $OUT
    python scripts/gpu_session.py unpack BACK_DIR         # here: → runs/gpu-back/shipped.safetensors and studies/

``run`` continues the shipped model's run (from the shipped weights, at 128² crops,
bigger batches) and, with ``--studies``, side by side on the same GPU, trains study models from scratch
under one recipe that differs in one thing each (objective, loss, task). When all stop it exports each
study model at the newest step that all of them reached, samples the evaluation inputs with each one on the GPU, and packs the outputs so they can
be scored on any machine with ``palette eval --outputs``. Files it brings back stay under the transfer
limits (≤ 8 files, ≤ 15 MiB each).

``run --fresh --main-set prediction=v`` starts a new v-prediction run of the shipped recipe instead
(docs/RESULTS.md, Studies 2-4, explains why); ``unpack`` brings its weights back the same way.

``DEVICE=cpu`` with ``--minutes 0.3 --batch 4 --study-batch 2 --workers 0`` smoke-tests the whole path on a CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the studies package
from studies.matrix import STUDIES, trained_tasks  # noqa: E402

CARRY = ROOT / "runs" / "gpu-carry"
CONFIG = ROOT / "configs" / "shipped.toml"

# Each study model (studies/matrix.py): the shipped recipe at 64² crops from scratch, changing one setting
# against "reference"; evaluated on every task, a task-specific model on its own task only.
EVAL_TASKS = ["colorize", "inpaint", "uncrop", "jpeg"]
CKPT_EVERY = 250


def prepare(args: argparse.Namespace) -> None:
    carry = Path(args.carry)
    if carry.exists():
        shutil.rmtree(carry)
    shutil.copytree(ROOT / "runs" / "shipped" / "photos", carry / "photos")
    # Evaluation references for the study models: random square crops of photos no model trains on.
    from studies.study_training import make_eval_crops

    n = len(make_eval_crops([args.dev, str(carry / "photos" / "heldout")], carry / "evalrefs", args.crops,
                            args.ref_size))
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    print(f"{carry}: photos and {n} eval crops, {size / 2**20:.1f} MiB")


def _train_cmd(run: Path, config_sets: list[str], resume: bool) -> list[str]:
    boot = ("import torch; torch.backends.cudnn.benchmark = True; "
            "torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True; "
            "from palette_cli.cli.app import main; main()")
    cmd = [sys.executable, "-c", boot, "train", str(CONFIG), "--out", str(run), "--quiet"]
    if resume:
        cmd.append("--resume")
    for s in config_sets:
        cmd += ["--set", s]
    return cmd


def run(args: argparse.Namespace) -> None:
    import torch

    out = Path(os.environ.get("OUT", ROOT / "runs" / "gpu-out"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    carry, device = Path(args.carry), os.environ.get("DEVICE", "cuda")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    name = torch.cuda.get_device_name(0) if device == "cuda" else device
    print(f"torch {torch.__version__} on {name}", flush=True)

    common = [f"data.source={carry}/photos/train", f"data.heldout={carry}/photos/heldout",
              f"device={device}", "adaptive_threads=false", "val_every=100000000", "log_every=50",
              "ckpt_minutes=1000", f"max_minutes={args.minutes}"]
    main_run = work / "shipped"
    if args.fresh:  # a new run from random weights (e.g. --main-set prediction=v)
        print("main run starts afresh", flush=True)
        main_init = []
    else:  # the shipped weights themselves (EMA weights seed model and EMA; Adam restarts)
        print(f"main run continues from {args.init}", flush=True)
        main_init = [f"init={args.init}"]
    procs: dict[str, subprocess.Popen] = {}
    logs = {}
    main_sets = common + [f"batch_size={args.batch}", f"num_workers={args.workers}", f"data.size={args.size}",
                          f"data.options.max_scale={args.max_scale}", "ckpt_every=100000000", "keep_ckpts=2"] + main_init + args.main_set
    logs["shipped"] = open(work / "shipped.log", "w")
    procs["shipped"] = subprocess.Popen(_train_cmd(main_run, main_sets, True), env=env, stdout=logs["shipped"],
                                        stderr=subprocess.STDOUT, cwd=ROOT)
    for study, sets in STUDIES.items():
        if study not in args.studies:
            continue
        study_sets = common + [f"batch_size={args.study_batch}", f"num_workers={args.study_workers}",
                               f"ckpt_every={CKPT_EVERY}", "keep_ckpts=100"] + sets
        logs[study] = open(work / f"{study}.log", "w")
        procs[study] = subprocess.Popen(_train_cmd(work / study, study_sets, False), env=env,
                                        stdout=logs[study], stderr=subprocess.STDOUT, cwd=ROOT)
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        time.sleep(15)
        tails = []
        for study in procs:
            lines = (work / f"{study}.log").read_text().strip().splitlines()
            tails.append(f"{study}: {lines[-1][:90] if lines else '-'}")
        print(f"[{time.monotonic() - t0:5.0f}s] " + " | ".join(tails), flush=True)
        if procs["shipped"].poll() not in (None, 0):  # fail fast: the main run is what the session is for
            for p in procs.values():
                p.terminate()
            print((work / "shipped.log").read_text()[-3000:], flush=True)
            raise SystemExit("the main run failed")
    codes = {k: p.returncode for k, p in procs.items()}
    print(f"exit codes: {codes}", flush=True)

    # Bring the main run back first: it matters most. Its EMA weights travel as an fp32 model file in parts
    # (a later stint continues from it with init=; Adam's moments restart, as with any start from a model file).
    from palette_cli.training import export_checkpoint

    if codes["shipped"] == 0:
        export_checkpoint(main_run, work / "shipped.safetensors", dtype="fp32")
        split_file(work / "shipped.safetensors", out, "shipped.safetensors")
    studies_dir = work / "studies"
    studies_dir.mkdir()
    for study in procs:
        shutil.copy(work / f"{study}.log", studies_dir / f"{study}.log")
    for name in ("metrics.jsonl", "config.json"):
        if (main_run / name).exists():
            shutil.copy(main_run / name, studies_dir / f"shipped-{name}")
    try:
        evaluate_studies(args, work, studies_dir, [s for s in procs if s != "shipped" and codes[s] == 0], device)
    finally:
        with tarfile.open(work / "studies.tar.gz", "w:gz") as tar:
            tar.add(studies_dir, arcname="studies", filter=_slim)
        split_file(work / "studies.tar.gz", out, "studies.tar.gz")
    print(f"wall {time.monotonic() - t0:.0f}s", flush=True)


PART_BYTES = 15 * 1024 * 1024


def split_file(path: Path, out: Path, name: str) -> None:
    """``path`` → ``out/name.partNN`` (each ≤ 15 MiB) plus ``out/name.sha256``."""
    import hashlib

    data = path.read_bytes()
    for i in range(0, len(data), PART_BYTES):
        (out / f"{name}.part{i // PART_BYTES:02d}").write_bytes(data[i:i + PART_BYTES])
    (out / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest())


def join_file(back: Path, name: str, dest: Path) -> Path:
    import hashlib

    data = b"".join(p.read_bytes() for p in sorted(back.glob(f"{name}.part*")))
    if hashlib.sha256(data).hexdigest() != (back / f"{name}.sha256").read_text().strip():
        raise SystemExit(f"{name}: parts incomplete or corrupt")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def _slim(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Outputs travel; inputs and references do not, except the references of the first colorize run
    (every task's reference is the same centre crop, so one copy serves all scoring)."""
    parts = info.name.split("/")
    if "inputs" in parts:
        return None
    if "references" in parts and parts[1:3] != ["reference", "colorize"]:
        return None
    return info


def evaluate_studies(args: argparse.Namespace, work: Path, dest: Path, studies: list[str], device: str) -> None:
    from palette_cli.evaluate import generate_outputs
    from palette_cli.pipeline import SamplerSettings
    from palette_cli.training import export_checkpoint, list_checkpoints

    if not studies:
        return
    steps_of = {s: {int(p.stem.split("-")[1]) for p in list_checkpoints(work / s)} for s in studies}
    shared = set.intersection(*steps_of.values())
    # the newest step all reached; failing that (runs too short to share one), each at its own newest
    common = max(shared) if shared else None
    print(f"study models compared at step {common or 'their newest'}: " + ", ".join(f"{s} reached {max(v)}" for s, v in steps_of.items()),
          flush=True)
    (dest / "studies.json").write_text(json.dumps({"step": common, "reached": {s: max(v) for s, v in steps_of.items()},
                                                   "studies": {s: STUDIES[s] for s in studies}}, indent=2))
    refs = Path(args.carry) / "evalrefs"
    deadline = time.monotonic() + 60 * args.eval_minutes
    order = [(study, task) for task in EVAL_TASKS for study in studies if task in (trained_tasks(study) or EVAL_TASKS)]
    models: dict[str, Path] = {}
    for study, task in order:
        if time.monotonic() > deadline:
            print(f"  {study}/{task}: skipped (out of evaluation time)", flush=True)
            continue
        if study not in models:
            step = common or max(steps_of[study])
            models[study] = export_checkpoint(work / study / "checkpoints" / f"step-{step:08d}.pt",
                                              work / f"{study}.safetensors", dtype="fp32")
        t = time.monotonic()
        generate_outputs(str(models[study]), task, refs, dest / study / task, n_images=args.n_images,
                         samples_per_image=args.samples, size=args.eval_size, settings=SamplerSettings(), seed=0,
                         device=device, precision="bf16" if device == "cuda" else "fp32",
                         batch_size=args.eval_batch, log=None)
        print(f"  {study}/{task}: {time.monotonic() - t:.1f}s", flush=True)


def unpack(args: argparse.Namespace) -> None:
    back = Path(args.back)
    if (back / "shipped.safetensors.sha256").exists():
        print(join_file(back, "shipped.safetensors", ROOT / "runs" / "gpu-back" / "shipped.safetensors"))
    if (back / "studies.tar.gz.sha256").exists():
        tgz = join_file(back, "studies.tar.gz", ROOT / "runs" / "gpu-back" / "studies.tar.gz")
        with tarfile.open(tgz) as tar:
            tar.extractall(ROOT / "runs" / "gpu-back", filter="data")
        print(ROOT / "runs" / "gpu-back" / "studies")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--carry", default=str(CARRY))
    a.add_argument("--dev", default=str(ROOT / "data" / "dev-photos"))
    a.add_argument("--crops", type=int, default=8, help="evaluation crops per unseen photo")
    a.add_argument("--ref-size", type=int, default=128)
    a.set_defaults(fn=prepare)
    r = sub.add_parser("run")
    r.add_argument("--carry", default=str(CARRY))
    r.add_argument("--work", default="/tmp/palette-gpu")
    r.add_argument("--init", default=str(ROOT / "weights" / "palette-multitask-small.safetensors"),
                   help="model file the main run continues from (unless --fresh)")
    r.add_argument("--minutes", type=float, default=6.0)
    r.add_argument("--fresh", action="store_true", help="start the main run from random weights")
    r.add_argument("--main-set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the main run (repeatable), e.g. prediction=v with --fresh")
    r.add_argument("--batch", type=int, default=128)
    r.add_argument("--size", type=int, default=128)
    r.add_argument("--max-scale", type=float, default=3.5)
    r.add_argument("--workers", type=int, default=6)
    r.add_argument("--study-batch", type=int, default=64)
    r.add_argument("--study-workers", type=int, default=1)
    r.add_argument("--studies", nargs="*", default=[], choices=list(STUDIES),
                   help="study models to train beside the main run (default: none; each adds a GPU process)")
    r.add_argument("--samples", type=int, default=2, help="samples per evaluation input (diversity)")
    r.add_argument("--eval-size", type=int, default=64)
    r.add_argument("--eval-batch", type=int, default=64)
    r.add_argument("--eval-minutes", type=float, default=1.5, help="time budget for sampling the study models")
    r.add_argument("--n-images", type=int, default=None, help="evaluation crops to use (default: all)")
    r.set_defaults(fn=run)
    u = sub.add_parser("unpack")
    u.add_argument("back")
    u.set_defaults(fn=unpack)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

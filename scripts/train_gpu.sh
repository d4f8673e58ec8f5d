#!/usr/bin/env bash
# Continue the shipped run on a CUDA GPU for MINUTES, from a packed checkpoint and a carried photo shard,
# and pack the result into $OUT (parts ≤ 15 MiB) to bring back.
#
# Before (on the CPU machine, from the repo root):
#   python -c "from palette_cli.training import pack_checkpoint; pack_checkpoint('runs/shipped', 'runs/gpu-carry/ckpt')"
#   cp -r runs/shipped/photos runs/gpu-carry/photos
# On the GPU machine (carry runs/gpu-carry):   scripts/train_gpu.sh 8
# After (back on the CPU machine; OUT_BACK = where $OUT's files landed):
#   python -c "from palette_cli.training import unpack_checkpoint as u; print(u('OUT_BACK/ckpt', 'runs/shipped'))"
#   then scripts/train_shipped.sh resumes from it (Adam's moments restart; the lr is warmed up again).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-8}
CARRY=${CARRY:-runs/gpu-carry}
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-10}
OUT=${OUT:-runs/gpu-out}
DEVICE=${DEVICE:-cuda}       # DEVICE=cpu BATCH=4 WORKERS=0 scripts/train_gpu.sh 0.2  smoke-tests it on a CPU
RUN=${GPU_RUN:-/tmp/palette-gpu-run}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

python3 - "$CARRY" "$RUN" "$MINUTES" "$BATCH" "$WORKERS" "$OUT" "$DEVICE" <<'PY' 2>&1 | tee "$OUT/train.log"
import json, shutil, sys, time
from pathlib import Path
import torch
from palette_cli.training import Trainer, load_config, pack_checkpoint, unpack_checkpoint

carry, run, minutes, batch, workers, out, device = sys.argv[1:8]
run, out = Path(run), Path(out)
ckpt = unpack_checkpoint(Path(carry) / "ckpt", run)
print(f"resuming {ckpt} on {torch.cuda.get_device_name(0) if device == 'cuda' else device}", flush=True)
cfg = load_config("configs/shipped.toml", [
    f"data.source={carry}/photos/train", f"data.heldout={carry}/photos/heldout", f"batch_size={batch}",
    f"num_workers={workers}", f"max_minutes={minutes}", f"device={device}", "ckpt_minutes=1000", "ckpt_every=1000000",
    "val_every=1000000", "log_every=50"])
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.backends.cudnn.benchmark = True

def hook(event, r):
    if event == "log":
        print(f"step {r['step']} loss {r['loss']:.4f} {r['images_per_s']:.0f} img/s", flush=True)

t = Trainer(cfg, run, resume=True, hook=hook)
start = t.step
result = t.run()  # max_minutes ends it with a checkpoint
t.validate()
print(json.dumps({"from_step": start, **result}), flush=True)
pack_checkpoint(run, out / "ckpt")
shutil.copy(run / "metrics.jsonl", out / "metrics.jsonl")
val = sorted((run / "val").glob("*.png"))
if val:
    shutil.copy(val[-1], out / "val.png")
PY
ls -la "$OUT" "$OUT/ckpt"

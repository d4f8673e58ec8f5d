#!/usr/bin/env bash
# Start — or resume, if the run folder holds a checkpoint — the shipped model's CPU training run in the
# background. Photos of PHOTOS/split.json are pre-shrunk once (longest side MAX_SIDE, JPEG q95 4:4:4)
# into RUN/photos/{train,heldout}, so that 64² crops show whole objects and decoding stays cheap.
#   scripts/train_shipped.sh            # start or resume (RUN=, CONFIG=, SHIPPED= pick another run; NICE=0
#                                       # when training is the machine's main job)
#   tail -f runs/shipped/train.log      # follow it; stop with: kill "$(cat runs/shipped/train.pid)"
# SIGTERM makes the run write a checkpoint before it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/shipped}
PHOTOS=${PHOTOS:-data/photos}
MAX_SIDE=${MAX_SIDE:-448}
CONFIG=${CONFIG:-configs/shipped.toml}
PYTHON=${PYTHON:-python}
mkdir -p "$RUN"

if [ ! -f "$RUN/photos/manifest.json" ]; then
  "$PYTHON" - "$PHOTOS" "$RUN/photos" "$MAX_SIDE" <<'PY'
import json, sys
from pathlib import Path
from PIL import Image, ImageOps

src, dst, max_side = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
split = json.loads((src / "split.json").read_text())
manifest = {}
for part in ("train", "heldout"):
    out = dst / part
    out.mkdir(parents=True, exist_ok=True)
    for entry in split[part]:
        name = entry if isinstance(entry, str) else entry.get("file") or entry.get("path")
        path = src / name
        if not path.exists():
            hits = [p for p in src.rglob(Path(name).name)]
            if not hits:
                sys.exit(f"{name}: listed in split.json but not found under {src}")
            path = hits[0]
        img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        scale = max_side / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        target = out / (path.stem + ".jpg")
        img.save(target, quality=95, subsampling=0)
        manifest.setdefault(part, []).append({"source": str(path.relative_to(src)), "file": target.name,
                                              "size": list(img.size)})
(dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
print(f"pre-shrunk {sum(map(len, manifest.values()))} photos to longest side {max_side} in {dst}")
PY
fi

# Resume this machine's run if it has a checkpoint; otherwise carry on from the shipped weights
# (a fresh machine: the EMA weights seed model and EMA, the step count continues, Adam restarts).
SHIPPED=${SHIPPED:-weights/palette-multitask-small.safetensors}
RESUME=()
if compgen -G "$RUN/checkpoints/step-*.pt" > /dev/null; then RESUME=(--resume);
elif [ -f "$SHIPPED" ]; then RESUME=(--set "init=$SHIPPED"); fi
echo "$(date -u +%FT%TZ) start: palette train $CONFIG --out $RUN ${RESUME[*]} --quiet" >> "$RUN/stints.txt"
nohup nice -n "${NICE:-5}" "$PYTHON" -c 'from palette_cli.cli.app import main; main()' train "$CONFIG" --out "$RUN" "${RESUME[@]}" --quiet \
  >> "$RUN/train.log" 2>&1 &
echo $! > "$RUN/train.pid"
echo "training in the background: pid $(cat "$RUN/train.pid"), log $RUN/train.log"

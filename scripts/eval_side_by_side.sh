#!/usr/bin/env bash
# The side-by-side tables of docs/RESULTS.md: models against the classical tools a user already has, on
# photos no model trained on (the held-out split of `palette data fetch-photos` plus the development
# photos of `palette data fetch-dev-photos`), 256² centre crops, each method on identical inputs.
#   scripts/eval_side_by_side.sh OUT_DIR [TASK ...]
# Tasks: colorize jpeg inpaint-center inpaint-ff uncrop (default: all; TASK-model: the models only, no
# classical tools). Models per task come from
# MODELS_COLORIZE, MODELS_JPEG, MODELS_INPAINT, MODELS_UNCROP (space-separated names or files; default:
# the command's default model). PHOTOS and DEV name the photo folders; REFERENCES, a list of photo files,
# replaces them (e.g. the validation split, for choosing recipes); EXTRA passes further options
# (e.g. EXTRA="--threads 1 --samples-per-image 2").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/eval_side_by_side.sh OUT_DIR [TASK ...]}
shift
TASKS=("$@")
[ ${#TASKS[@]} -gt 0 ] || TASKS=(colorize jpeg inpaint-center inpaint-ff uncrop)
PHOTOS=${PHOTOS:-data/photos}
DEV=${DEV:-data/dev}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
REFS="$OUT/references.txt"
if [ -n "${REFERENCES:-}" ]; then
  "$PYTHON" - "$REFERENCES" "$REFS" <<'PY'
import sys
from pathlib import Path
source, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = [line.strip() for line in source.read_text().splitlines() if line.strip()]
paths = [str((Path(p) if Path(p).is_absolute() or Path(p).exists() else source.parent / p).resolve()) for p in lines]
out.write_text("\n".join(paths) + "\n")
print(f"{len(paths)} photos from {source} -> {out}")
PY
else
"$PYTHON" - "$PHOTOS" "$DEV" "$REFS" <<'PY'
import json, sys
from pathlib import Path
photos, dev, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
held = [str((photos / name).resolve()) for name in json.loads((photos / "split.json").read_text())["heldout"]]
devs = sorted(str(p.resolve()) for p in dev.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
out.write_text("\n".join(held + devs) + "\n")
print(f"{len(held)} held-out + {len(devs)} development photos -> {out}")
PY
fi
models() {  # --model options for a space-separated list (empty: the default model)
  local m; for m in $1; do printf -- '--model %s ' "$m"; done
}
COMMON=(--references "$REFS" --size 256 --seed 0 --quiet)
for task in "${TASKS[@]}"; do
  case "$task" in
    colorize) args=(--task colorize --method model --method identity $(models "${MODELS_COLORIZE:-}")) ;;
    jpeg) args=(--task jpeg --jpeg-quality 10 --method model --method identity --method nlmeans $(models "${MODELS_JPEG:-}")) ;;
    inpaint-center) args=(--task inpaint --mask-mode center --method model --method telea --method ns $(models "${MODELS_INPAINT:-}")) ;;
    inpaint-ff) args=(--task inpaint --mask-mode free_form_20_30 --method model --method telea --method ns $(models "${MODELS_INPAINT:-}")) ;;
    uncrop) args=(--task uncrop --direction right --method model --method mirror --method telea --method ns $(models "${MODELS_UNCROP:-}")) ;;
    uncrop-model) args=(--task uncrop --direction right --method model $(models "${MODELS_UNCROP:-}")) ;;
    inpaint-center-model) args=(--task inpaint --mask-mode center --method model $(models "${MODELS_INPAINT:-}")) ;;
    inpaint-ff-model) args=(--task inpaint --mask-mode free_form_20_30 --method model $(models "${MODELS_INPAINT:-}")) ;;
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
  echo "== $task"
  palette eval "${args[@]}" "${COMMON[@]}" ${EXTRA:-} --out "$OUT/$task"
done

#!/usr/bin/env bash
# Train study models of configs/study.toml in the background, each changing one setting against the
# reference recipe. Runs go to runs/studies/NAME (resumable: run the same line again after a stop).
#   scripts/train_studies.sh reference regression      # two runs side by side, one CPU thread each
# Known names: reference, regression, l1, v-prediction, colorize-only, inpaint-only, jpeg-only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
for name in "$@"; do
  case "$name" in
    reference) sets=() ;;
    regression) sets=(--set objective=regression) ;;
    l1) sets=(--set loss=l1) ;;
    v-prediction) sets=(--set prediction=v) ;;
    colorize-only) sets=(--set task=colorize) ;;
    inpaint-only) sets=(--set task=inpaint) ;;
    jpeg-only) sets=(--set task=jpeg) ;;
    *) echo "unknown study run: $name" >&2; exit 2 ;;
  esac
  run=runs/studies/$name
  mkdir -p "$run"
  resume=()
  if compgen -G "$run/checkpoints/step-*.pt" > /dev/null; then resume=(--resume); fi
  OMP_NUM_THREADS=1 nohup "$PYTHON" -c 'from palette_cli.cli.app import main; main()' train configs/study.toml \
    --out "$run" "${sets[@]}" "${resume[@]}" --quiet >> "$run/train.log" 2>&1 &
  echo $! > "$run/train.pid"
  echo "$name: pid $(cat "$run/train.pid"), log $run/train.log"
done

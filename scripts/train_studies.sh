#!/usr/bin/env bash
# Train study models of configs/study.toml in the background, each changing one setting against the
# reference recipe. Runs go to runs/studies/NAME (resumable: run the same line again after a stop).
#   scripts/train_studies.sh reference regression      # two runs side by side, one CPU thread each
# The study names and their overrides are those of studies/matrix.py (python -m studies.matrix lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
for name in "$@"; do
  overrides=$("$PYTHON" -m studies.matrix "$name") || exit 2
  sets=()
  while IFS= read -r assignment; do
    if [ -n "$assignment" ]; then sets+=(--set "$assignment"); fi
  done <<< "$overrides"
  run=runs/studies/$name
  mkdir -p "$run"
  resume=()
  if compgen -G "$run/checkpoints/step-*.pt" > /dev/null; then resume=(--resume); fi
  OMP_NUM_THREADS=1 nohup "$PYTHON" -c 'from palette_cli.cli.app import main; main()' train configs/study.toml \
    --out "$run" "${sets[@]}" "${resume[@]}" --quiet >> "$run/train.log" 2>&1 &
  echo $! > "$run/train.pid"
  echo "$name: pid $(cat "$run/train.pid"), log $run/train.log"
done

#!/usr/bin/env bash
# The main job on the embedded defaults: installs everything, then runs the whole chain on the
# local CPU device (lookup table -> predictor -> search with calibration -> report) in ./work.
# A second run continues the search in ./work (--resume) instead of starting over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
WORKDIR="${WORKDIR:-work}"
RESUME=""
if [ -f "$WORKDIR/search_checkpoint.json" ]; then RESUME="--resume"; fi
mnas search --config configs/fmnist.py --variant main --workdir "$WORKDIR" $RESUME "$@"

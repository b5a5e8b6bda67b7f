#!/usr/bin/env bash
# Installs the project with its test extras (and the dataset) and runs the default test suite
# (everything not marked slow) on two workers, one test module per worker at a time (pytest-xdist).
# pytest's exit code 5 ("no tests collected") fails here, as in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"

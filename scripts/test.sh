#!/usr/bin/env bash
# Installs the project with its test extras and runs the default (fast) test suite.
# pytest's exit code 5 ("no tests collected") is a failure here, as it is in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[dev]"
python -m pytest -q "$@"

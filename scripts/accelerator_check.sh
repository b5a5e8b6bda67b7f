#!/usr/bin/env bash
# The accelerator path in one command (<= 10 minutes): the driver's and a child's JAX backend, a
# proxy child and a paper-preset child trained whole-network on the accelerator and on the CPU
# (compile seconds, images/s), and 2 Ray children asking for {"GPU": 1} each. Results under $OUT
# when set (the device tool), else runs/accelerator_check/. JAX_PLATFORMS=cpu: the CPU half only.
# Usage: bash scripts/accelerator_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import mnas_jax" 2>/dev/null; then
  bash scripts/install.sh
fi
if command -v nvidia-smi >/dev/null 2>&1 && ! python -c "import jax; jax.devices('gpu')" 2>/dev/null; then
  # the GPU plugin of the installed jax version (needs the package registry)
  python -m pip install --quiet "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')" || \
    echo "accelerator_check: could not install jax[cuda12]; the GPU half will report the CPU" >&2
fi
exec timeout 600 python -m benchmarks.accelerator_check "$@"

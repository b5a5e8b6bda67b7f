#!/usr/bin/env bash
# Installs what mnas-jax needs on a fresh machine: Debian's Fashion-MNIST package (the embedded
# default dataset) and the Python package itself. Usage: bash scripts/install.sh [EXTRAS], e.g. dev.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  $SUDO apt-get install -y dataset-fashion-mnist
fi
if [ -n "${1:-}" ]; then
  python -m pip install --quiet -e ".[$1]"
else
  python -m pip install --quiet -e .
fi

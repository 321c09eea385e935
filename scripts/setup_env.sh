#!/usr/bin/env bash
# Create (or reuse) .venv with the CPU build of PyTorch first, then this package and its extras.
# Usage: source scripts/setup_env.sh   (idempotent; a second run only checks what is installed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PYTHON" -m venv "$ROOT/.venv"
fi
# shellcheck disable=SC1091
. "$ROOT/.venv/bin/activate"
# torch first: otherwise pip resolves it to a multi-GB CUDA build
python -c "import torch" 2>/dev/null || pip install --quiet "torch==2.13.0"
pip install --quiet -e "$ROOT[tests,postgres,video,ray,box2d]"

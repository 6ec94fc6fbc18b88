#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole test suite in two
# stages: everything but the long end-to-end runs, then those (`-m slow`:
# ONNX export of every model family, one epoch of every paper config, mim
# from an installed copy). Both stages must pass.
# Usage: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pytest tests -q -m 'not slow' "$@"
.venv/bin/python -m pytest tests -q -m slow "$@"

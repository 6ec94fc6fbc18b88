#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole test suite in two
# stages: everything but the long end-to-end runs, then those (`-m slow`:
# ONNX export of every model family, one epoch of every paper config, mim
# from an installed copy). Both stages must pass.
# Each stage runs on TEST_WORKERS pytest-xdist worker processes (default 2,
# the CI machine's cores; TEST_WORKERS=0 runs in this process). The tests
# that share the trained demo model train it once for all workers
# (tests/integration/conftest.py).
# Usage: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
WORKERS=(-n "${TEST_WORKERS:-2}")
.venv/bin/python -m pytest tests -q -m 'not slow' "${WORKERS[@]}" "$@"
.venv/bin/python -m pytest tests -q -m slow "${WORKERS[@]}" "$@"

#!/usr/bin/env bash
# Create (or reuse) ./.venv and install zeromamba_mm with the tested versions.
# Usage: bash scripts/setup_env.sh            (PYTHON=python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
STAMP="$VENV/.zeromamba_mm-installed"
# Reinstall only when the requirements changed.
HASH=$(cat requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    exit 0
fi
$PIP install -q --upgrade -c requirements/constraints.txt pip 'setuptools<81' wheel
# torch/torchvision first, from the pinned versions (local wheel store here).
$PIP install -q -c requirements/constraints.txt torch torchvision
$PIP install -q -c requirements/constraints.txt -e '.[tests]'
"$VENV/bin/python" -c 'import zeromamba_mm, mmpretrain, torch; print("zeromamba_mm", zeromamba_mm.__version__, "| torch", torch.__version__, "| mmpretrain", mmpretrain.__version__)'
echo "$HASH" > "$STAMP"

#!/usr/bin/env bash
# The main job on a fresh machine, on CPU: set up ./.venv, write the embedded
# demo dataset, train ZeroMamba on it and evaluate the best checkpoint,
# printing ZSL T1 and GZSL U / S / H (and AUSUC).
# Usage: bash scripts/demo.sh [CONFIG]     (default configs/zeromamba_demo.py)
# Each run writes to a fresh work_dirs/<config>_<time>/; existing data and
# results are never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/zeromamba_demo.py}
bash scripts/setup_env.sh
PY=.venv/bin/python
DATA=data/zsl_demo
if [ ! -f "$DATA/att_splits.mat" ]; then
    "$PY" tools/make_demo_data.py --out "$DATA" --seed 0
fi
NAME=$(basename "$CONFIG" .py)
# The PID keeps two demos started in the same second apart.
WORK=work_dirs/${NAME}_$(date +%Y%m%d_%H%M%S)_$$
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK"
BEST=$(ls -t "$WORK"/best_*.pth 2>/dev/null | head -n 1 || true)
if [ -z "$BEST" ]; then
    echo "No best checkpoint was written under $WORK" >&2
    exit 1
fi
echo "Evaluating $BEST"
# The last line printed is the summary: "Results: ZSL T1 .. | GZSL U .. |
# S .. | H .. | AUSUC ..".
"$PY" tools/test.py "$CONFIG" "$BEST" --work-dir "$WORK"

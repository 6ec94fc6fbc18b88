#!/usr/bin/env bash
# Test a checkpoint on a Slurm cluster, one task per GPU.
# Usage:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
set -e
if [ $# -lt 4 ]; then
    echo "Usage: bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
TOOLS="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/_launch_checks.sh
source "$TOOLS/_launch_checks.sh"
GPUS=${GPUS:-8}
require_int GPUS "$GPUS" 1 100000 "the total number of tasks (GPUs)"
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( 10#$GPUS < 8 ? 10#$GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
check_slurm_env
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
set -x
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    $PYTHON -u "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "${@:5}"

#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU (MMEngine's `--launcher slurm`
# reads the rank and world size from srun's SLURM_* variables).
# Usage:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# e.g. 16 GPUs on two 8-GPU nodes, keeping the paper's total batch of 32:
#   GPUS=16 bash tools/slurm_train.sh gpu zm_cub configs/zeromamba_cub.py \
#       work_dirs/zeromamba_cub --cfg-options train_dataloader.batch_size=2
set -e
if [ $# -lt 4 ]; then
    echo "Usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
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
# SRUN_ARGS is split into words on purpose (several srun options).
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
    $PYTHON -u "$TOOLS/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "${@:5}"

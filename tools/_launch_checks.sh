#!/usr/bin/env bash
# Sourced by tools/{dist,slurm}_{train,test}.sh: launcher settings are
# checked before torchrun or srun sees them, with the setting named.

# require_int NAME VALUE MIN MAX WHAT [EXAMPLE]: stop (exit 2) unless VALUE
# is a whole number from MIN to MAX; EXAMPLE (default MIN) is suggested.
require_int() {
    local name=$1 value=$2 min=$3 max=$4 what=$5 example=${6:-$3}
    if ! [[ $value =~ ^[0-9]{1,9}$ ]] || ((10#$value < min)) ||
        ((10#$value > max)); then
        echo "$name='$value' is not valid: $what must be a whole number" \
            "from $min to $max, e.g. $name=$example." >&2
        exit 2
    fi
}

# check_dist_env GPUS: the settings of tools/dist_{train,test}.sh.
check_dist_env() {
    require_int GPUS "$1" 1 4096 "the number of processes per node"
    require_int NNODES "$NNODES" 1 100000 "the number of nodes"
    require_int NODE_RANK "$NODE_RANK" 0 $((10#$NNODES - 1)) \
        "the rank of this node (0 .. NNODES-1)"
    require_int PORT "$PORT" 1 65535 "the master port" 29500
}

# check_slurm_env: the settings of tools/slurm_{train,test}.sh.
check_slurm_env() {
    require_int GPUS "$GPUS" 1 100000 "the total number of tasks (GPUs)"
    require_int GPUS_PER_NODE "$GPUS_PER_NODE" 1 4096 \
        "the number of tasks (GPUs) per node"
    require_int CPUS_PER_TASK "$CPUS_PER_TASK" 1 4096 \
        "the number of CPU cores per task"
}

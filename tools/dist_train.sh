#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Works on CPU-only machines too (gloo backend, one process per "GPU").
set -e
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
if [ -z "$CONFIG" ] || [ -z "$GPUS" ]; then
    echo "Usage: bash tools/dist_train.sh CONFIG GPUS [train.py options]" >&2
    exit 2
fi
# shellcheck source=tools/_launch_checks.sh
source "$(dirname "$0")/_launch_checks.sh"
check_dist_env "$GPUS"
PYTHON=${PYTHON:-python}
# The master node binds PORT: say so before torchrun fails with a bare
# "address already in use" (another run on this machine holds the port).
if [ "$NODE_RANK" = "0" ] && ! $PYTHON -c "import socket, sys
s = socket.socket()
try:
    s.bind(('', int(sys.argv[1])))
except OSError:
    sys.exit(1)" "$PORT" 2>/dev/null; then
    echo "Port $PORT is in use (another distributed run on this machine?)." \
        "Set another one, e.g. PORT=$(( 10#$PORT < 65535 ? 10#$PORT + 1 : 29500 )) bash $0 $*" >&2
    exit 2
fi
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
$PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

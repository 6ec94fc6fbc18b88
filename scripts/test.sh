#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole test suite.
# Usage: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest tests -q "$@"

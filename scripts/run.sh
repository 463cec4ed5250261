#!/usr/bin/env bash
# Set up (first run) and start the launcher + proxy on http://127.0.0.1:8081.
# Linux default: the offline tiny random model. On a Mac pass a real MLX model:
#   scripts/run.sh --model mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$#" -eq 0 ] || [[ " $* " != *" --model "* ]]; then
  set -- --model tiny-random "$@"
fi
exec .venv/bin/mlx-launch "$@"

#!/usr/bin/env bash
# Set up (first run) and start the launcher + proxy on http://127.0.0.1:8081.
# Default: SmolLM2-135M-Instruct, a real (small) model that needs no model hub. On a Mac pass
# a real coding model: scripts/run.sh --model mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$#" -eq 0 ] || [[ " $* " != *" --model "* ]]; then
  set -- --model smollm2-135m "$@"
fi
exec .venv/bin/mlx-launch "$@"

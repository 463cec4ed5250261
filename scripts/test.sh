#!/usr/bin/env bash
# Set up (first run) and run the whole test suite: real mlx_lm.server (CPU MLX on Linux),
# real redis-server, real openai/anthropic SDK clients. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# redis-server (the shared cache's tests) and npm (the tests install real Claude Code from npm).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(uname)" = "Darwin" ]; then
    echo "missing ${missing[*]}: brew install redis node" >&2; exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"

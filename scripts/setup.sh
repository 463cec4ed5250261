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
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/test-constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}" ${constraints[@]+"${constraints[@]}"}  # bash 3.2-safe
  touch "$stamp"
fi

#!/usr/bin/env bash
# satchel's main job on a fresh machine: make a virtualenv, install satchel with the
# scikit-learn, serving and registry extras, then train a model on iris, save it, load it,
# predict, register it (alias champion), serve models:/iris@champion over HTTP and score
# it (examples/quickstart.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -e ".[sklearn,serve,registry]" --config-settings editable_mode=strict
exec .venv/bin/python examples/quickstart.py "$@"

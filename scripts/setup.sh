#!/usr/bin/env bash
# Create ./.venv if it is missing and install llm-repair-gym into it (editable, with the dev extras).
# torch: an importable torch is left alone; otherwise torch==2.13.0 (a CPU build on this kind of machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install -q "torch==2.13.0"
fi
python -m pip install -q -e ".[dev]"

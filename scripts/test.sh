#!/usr/bin/env bash
# Set up ./.venv if needed, then run the default test suite (long runs are marked `slow` and skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pytest -q "$@"

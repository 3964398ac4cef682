#!/usr/bin/env bash
# Set up ./.venv if needed, then run the main job on the built-in default (the tiny preset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python -m llm_repair_gym.cli zoo --preset tiny "$@"

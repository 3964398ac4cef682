#!/usr/bin/env bash
# Set up ./.venv if needed, then run the default test suite (long runs are marked `slow` and skipped) in two
# pytest-xdist workers, one test file each at a time (module fixtures are built once), one torch thread each so
# that the two do not fight over the 2 cores' OpenMP threads. TEST_WORKERS=0 runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -q -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

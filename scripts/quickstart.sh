#!/usr/bin/env bash
# Set up ./.venv if needed, then run the main job on the built-in default (the tiny preset):
# build (or load) the healthy model zoo, then play no-op, random and oracle policies on seeded
# LLMRepair-v0 episodes and print the per-fault table; replay the carried learned agent (DQfD) on its 32
# held-out episodes and check its recorded score; finally verify one run of the carried leaderboard (every
# episode replayed from its seed and actions).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python -m llm_repair_gym.cli zoo --preset tiny
python benchmarks/repair_baselines.py --episodes "${EPISODES:-30}" --num-envs 15 --seed 1000 "$@"
python -m benchmarks.replay_policy agents/checkpoints/LLMRepair-v0/dqfd
llm-repair-gym verify benchmarks/leaderboard/episodes/dqfd_carried/seed1.jsonl

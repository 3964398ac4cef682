"""Leaderboard on LLMRepair-v0 in one command: the runner plays every agent on the suite's test split, then the
leaderboard ranks them.

    python -m benchmarks.repair_agents --seeds 1 2 3 4 5 --total-steps 4000 --jobs 2

is ``llm-repair-gym run`` (:func:`llm_repair_gym.bench.runner.plan_jobs` and ``run_jobs``: trained agents train on
the suite's train split, every agent plays every test entry, one results line per episode, finished jobs
reused unless ``--rerun``) followed by ``llm-repair-gym leaderboard`` (:func:`llm_repair_gym.bench.leaderboard.
write_leaderboard`: normalized scores, rliable intervals, ``leaderboard.{md,json,html}`` and plots), with a list
of seeds and the agents of the suite's env by default: the leaderboard has one pool (the runner's) and one
kind of interval (the leaderboard's). Everything goes to ``--out-dir`` (``results/leaderboard``): the runner's
``episodes/<agent>/seed<s>.jsonl`` and ``train/<agent>_seed<s>/``, then ``leaderboard.{md,json,html}`` and plots.

Studies that train seeds and score them on held-out evaluation sets with Student-t intervals, outside the
leaderboard, use :mod:`benchmarks.held_out_study`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.bench.leaderboard import write_leaderboard
from llm_repair_gym.bench.registry import agents_for
from llm_repair_gym.bench.runner import plan_jobs, run_jobs
from llm_repair_gym.envs.suites import load_suite


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="LLMRepair-Suite-v0")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="run seeds")
    parser.add_argument("--num-envs", type=int, default=16, help="envs of the trained agents' training")
    parser.add_argument("--total-steps", type=int, default=4_000, help="training env steps per agent and seed")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at a time (local worker processes)")
    parser.add_argument("--agents", nargs="+", default=None, help="default: every agent of the suite's env")
    parser.add_argument("--rerun", action="store_true", help="play jobs again even where their results exist")
    parser.add_argument("--out-dir", type=Path, default=Path("results/leaderboard"))
    args = parser.parse_args(argv)

    agents = args.agents or agents_for(load_suite(args.suite).env_id)
    todo, done = plan_jobs(agents, args.seeds, args.suite, args.split, args.out_dir, rerun=args.rerun,
                           total_steps=args.total_steps, train_envs=args.num_envs)
    print(f"{len(todo)} jobs to run, {len(done)} already done (results in {args.out_dir / 'episodes'})", flush=True)
    run_jobs(todo, workers=args.jobs)
    board = write_leaderboard([args.out_dir / "episodes"], args.out_dir)
    print((args.out_dir / "leaderboard.md").read_text())
    return board


if __name__ == "__main__":
    main()

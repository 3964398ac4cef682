"""Leaderboard on LLMRepair-v0 in one command: the runner plays every agent on the suite's test split, then the
leaderboard ranks them.

    python -m benchmarks.repair_agents --seeds 1 2 3 4 5 --total-steps 4000 --jobs 2

is ``llm-repair-gym run`` (:func:`llm_repair_gym.bench.runner.plan_jobs` and ``run_jobs``: trained agents train on
the suite's train split, every agent plays every test entry, one results line per episode, finished jobs
reused unless ``--rerun``) followed by ``llm-repair-gym leaderboard`` (:func:`llm_repair_gym.bench.leaderboard.
write_leaderboard`: normalized scores, rliable intervals, ``leaderboard.{md,json,html}`` and plots), with a list
of seeds and the agents of the suite's env by default: the leaderboard has one pool (the runner's) and one
kind of interval (the leaderboard's).

The helpers below the command (:func:`train_runs`, :func:`baseline_summaries`, :func:`t_interval`) rank nothing
here: they are the older held-out-evaluation-set flow that ``benchmarks/meta_repair_agents.py``,
``learnability.py`` and ``maml_llm.py`` still import (training scripts run as subprocesses, each evaluated on
evaluation set ``s``; means over seeds with a Student-t interval), kept until those move to the runner.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import llm_repair_gym  # noqa: F401  (registers the ids)
from agents.baselines import NoOpPolicy, OraclePolicy, RandomPolicy
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.bench.leaderboard import write_leaderboard
from llm_repair_gym.bench.registry import agent_spec, agents_for
from llm_repair_gym.bench.runner import plan_jobs, run_jobs
from llm_repair_gym.envs.suites import load_suite
from llm_repair_gym.rl.episodes import evaluate_and_save, parse_env_kwargs


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


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (larger df: the next smaller key's value)."""

BASELINES = ("noop", "random", "heuristic", "oracle")


def train_command(agent: str) -> list[str]:
    """The script (and its flags) that trains ``agent``, from the runner's agent table."""
    return list(agent_spec(agent).script)


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% Student-t half-width of ``values`` (NaN half-width for one value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    df = len(x) - 1
    t = T_975[max(k for k in T_975 if k <= df)]
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(len(x)))


def env_kwargs_flags(args: argparse.Namespace) -> list[str]:
    """``--env-kwargs KEY=VALUE ...`` for the training scripts, when ``args`` carries any."""
    pairs = getattr(args, "env_kwargs", None) or []
    return ["--env-kwargs", *pairs] if pairs else []


def train_runs(args: argparse.Namespace) -> None:
    """Train every (agent, seed) without an ``eval.json``, ``--jobs`` subprocesses at a time."""
    pending = []
    for seed in args.seeds:
        for agent in args.agents:
            out = args.out_dir / f"{agent}_seed{seed}"
            if args.retrain or not (out / "eval.json").exists():
                pending.append([sys.executable, *train_command(agent), "--env-id", args.env_id, "--seed",
                                str(seed), "--num-envs", str(args.num_envs), "--total-steps", str(args.total_steps),
                                "--eval-episodes", str(args.eval_episodes), "--device", args.device,
                                "--threads", "1", *env_kwargs_flags(args), "--out-dir", str(out)])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running: list[tuple[subprocess.Popen, Path]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            command = pending.pop(0)
            log = Path(command[-1]).with_suffix(".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            print("start:", " ".join(command[1:]), flush=True)
            running.append((subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for process, log in list(running):
            if process.poll() is not None:
                running.remove((process, log))
                if process.returncode != 0:
                    raise RuntimeError(f"training failed (exit {process.returncode}); see {log}")
                print("done:", log.read_text().strip().splitlines()[-1], flush=True)


def baseline_summaries(args: argparse.Namespace, seed: int, action_names: list[str], feature_names: list[str],
                       names: tuple[str, ...] = BASELINES) -> dict[str, dict]:
    """The ``names`` baselines (default: no-op, random, the observation-only heuristic and the oracle) on
    evaluation set ``seed``, each saved like a trained agent's run (``<name>_seed<seed>/eval.json``) and reused
    unless ``--retrain``; ``args.env_kwargs`` (``KEY=VALUE`` pairs), where present, go to the env."""
    policies = {"noop": lambda: NoOpPolicy(action_names), "random": lambda: RandomPolicy(action_names, seed=seed),
                "heuristic": lambda: HeuristicPolicy(action_names, feature_names),
                "oracle": lambda: OraclePolicy(action_names, feature_names)}
    env_kwargs = parse_env_kwargs(getattr(args, "env_kwargs", None) or [])
    out = {}
    for name in names:
        run = args.out_dir / f"{name}_seed{seed}"
        if args.retrain or not (run / "eval.json").exists():
            run.mkdir(parents=True, exist_ok=True)
            evaluate_and_save(args.env_id, policies[name](), seed, args.eval_episodes, run, device=args.device,
                              num_envs=args.num_envs, progress=False, env_kwargs=env_kwargs, agent=name, seed=seed)
        out[name] = json.loads((run / "eval.json").read_text())["summary"]
    return out


if __name__ == "__main__":
    main()

"""Held-out-set studies outside the leaderboard: train seeds and score them on evaluation sets with Student-t
intervals.

``benchmarks/meta_repair_agents.py`` (zoo vs MAML initialization on LLMMetaRepair-v0), ``learnability.py`` and
``maml_llm.py`` use these helpers to answer their own questions, each with its own pool of runs:

* :func:`train_runs` trains every (agent, seed) of ``args`` with its training script, ``--jobs`` subprocesses at
  a time, each run evaluated on evaluation set ``seed`` (held-out episodes, ``<out-dir>/<agent>_seed<seed>/
  eval.json``) and reused unless ``--retrain``;
* :func:`baseline_summaries` plays the no-op, random, heuristic and oracle baselines on the same evaluation
  set, saved the same way;
* :func:`t_interval` is the mean over seeds with a 95% Student-t half-width.

Nothing here ranks agents: the leaderboard is ``llm-repair-gym run`` then ``llm-repair-gym leaderboard`` (or
``python -m benchmarks.repair_agents``, both in one), with the runner's pool and rliable intervals.
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

from agents.baselines import NoOpPolicy, OraclePolicy, RandomPolicy
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.bench.registry import agent_spec
from llm_repair_gym.rl.episodes import evaluate_and_save, parse_env_kwargs

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


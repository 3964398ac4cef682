"""Leaderboard on LLMRepair-v0: no-op, random, the heuristic, tabular Q, our DQN and DQfD, the
Stable-Baselines3 baselines (PPO, A2C, DQN, QR-DQN) and the oracle on the same held-out episodes.

    python -m benchmarks.repair_agents --seeds 1 2 3 4 5 --total-steps 4000 --jobs 2

For every seed ``s`` the trained agents (``--agents``, default all) are trained by
``scripts/train_tabular_q.py``, ``scripts/train_dqn.py`` (DQfD: ``--demonstrations heuristic``, whose
demonstration steps come on top of ``--total-steps``) and ``scripts/train_sb3.py --algo ...`` (``--jobs``
at a time, one torch thread each) and evaluated greedily on held-out evaluation set ``s``; no-op, random
(seeded ``s``), the observation-only heuristic and the privileged oracle are played on the same set.
A row's return is the mean over seeds of each seed's mean episode return, with a 95% Student-t
confidence interval over the seeds. Runs whose ``eval.json`` already exists are reused unless
``--retrain``. Writes ``leaderboard.json``, ``leaderboard.md`` and ``leaderboard.png`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

import llm_repair_gym  # noqa: F401  (registers the ids)
from agents.baselines import NoOpPolicy, OraclePolicy, RandomPolicy
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.bench.registry import agent_spec
from llm_repair_gym.repair.faults import FAULT_NAMES
from llm_repair_gym.rl.episodes import env_names, evaluate_and_save, parse_env_kwargs
from llm_repair_gym.rl.training_log import LOG_FILE, learning_curves

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (larger df: the next smaller key's value)."""

TRAINED = ("tabular_q", "dqn", "dqfd", "sb3_ppo", "sb3_a2c", "sb3_dqn", "sb3_qrdqn")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--total-steps", type=int, default=4_000, help="training env steps per agent and seed")
    parser.add_argument("--eval-episodes", type=int, default=32, help="held-out episodes per seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    parser.add_argument("--agents", nargs="+", choices=TRAINED, default=list(TRAINED), help="trained agents")
    parser.add_argument("--retrain", action="store_true", help="train again even where eval.json exists")
    parser.add_argument("--out-dir", type=Path, default=Path("results/agents"))
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("a confidence interval over seeds needs at least 2 --seeds")

    train_runs(args)
    names = env_names(args.env_id, args.device)
    rows = ["noop", "random", "heuristic", *args.agents, "oracle"]
    per_seed: dict[str, list[dict]] = {row: [] for row in rows}
    for seed in args.seeds:
        for agent in args.agents:
            run = json.loads((args.out_dir / f"{agent}_seed{seed}" / "eval.json").read_text())
            per_seed[agent].append(run["summary"])
        print(f"baselines on evaluation set {seed} ...", flush=True)
        for name, summary in baseline_summaries(args, seed, *names).items():
            per_seed[name].append(summary)

    board = {}
    oracle = np.array([s["mean_return"] for s in per_seed["oracle"]])
    for row in rows:
        mean, half = t_interval([s["mean_return"] for s in per_seed[row]])
        norm_mean, norm_half = t_interval(list(np.array([s["mean_return"] for s in per_seed[row]]) / oracle))
        by_fault = {f: float(np.nanmean([s["return_by_fault"].get(f, np.nan) for s in per_seed[row]]))
                    for f in FAULT_NAMES}
        board[row] = {"mean_return": mean, "ci95": half, "per_seed": [s["mean_return"] for s in per_seed[row]],
                      "normalized": norm_mean, "normalized_ci95": norm_half,
                      "mean_steps": float(np.mean([s["mean_steps"] for s in per_seed[row]])),
                      "return_by_fault": by_fault,
                      "train_minutes": float(np.mean([s["train_seconds"] for s in per_seed[row]]) / 60)
                      if row not in BASELINES else 0.0}
    lines = [f"LLMRepair-v0, {len(args.seeds)} seeds x {args.eval_episodes} held-out episodes; trained agents: "
             f"{args.total_steps} env steps on {args.num_envs} envs. Return: mean over seeds ± 95% t-interval; "
             "normalized: each seed's return over the oracle's on the same episodes (no-op = 0, oracle = 1).", "",
             "| policy | return | normalized | steps | train min | " + " | ".join(FAULT_NAMES) + " |",
             "|---|---|---|---|---|" + "---|" * len(FAULT_NAMES)]
    for row, b in board.items():
        lines.append(f"| {row} | {b['mean_return']:.3f} ± {b['ci95']:.3f} | {b['normalized']:.2f} ± "
                     f"{b['normalized_ci95']:.2f} | {b['mean_steps']:.1f} | "
                     f"{b['train_minutes']:.1f} | " + " | ".join(f"{b['return_by_fault'][f]:.3f}" for f in FAULT_NAMES)
                     + " |")
    text = "\n".join(lines)
    print("\n" + text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "leaderboard.md").write_text(text + "\n")
    (args.out_dir / "leaderboard.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                               "board": board}, indent=1))
    plot(board, args.out_dir / "leaderboard.png")
    plot_learning_curves(args, args.out_dir / "learning_curves.png")


def plot_learning_curves(args: argparse.Namespace, path: Path, bin_steps: int = 500) -> None:
    """Mean training episode return per ``bin_steps`` env steps, over seeds (shaded: min to max), for every
    agent that logs ``train.csv`` (``llm_repair_gym.rl.training_log``)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for agent in args.agents:
        logs = [args.out_dir / f"{agent}_seed{seed}" / LOG_FILE for seed in args.seeds]
        ends, returns = learning_curves([log for log in logs if log.exists()], bin_steps)
        if len(returns):
            ax.plot(ends, np.nanmean(returns, 0), label=agent)
            ax.fill_between(ends, np.nanmin(returns, 0), np.nanmax(returns, 0), alpha=0.15)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"training episode return (mean per {bin_steps} steps)")
    ax.set_title(f"learning curves, {len(args.seeds)} seeds (shaded: min-max over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(board: dict, path: Path) -> None:
    """Mean return with its interval per policy, and mean return per fault type."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    names = list(board)
    left.bar(names, [board[n]["mean_return"] for n in names], yerr=[board[n]["ci95"] for n in names], capsize=4,
             color="tab:blue")
    left.axhline(0, color="black", linewidth=0.8)
    left.set_ylabel("held-out episode return")
    left.set_title("mean over seeds, 95% t-interval")
    width = 0.8 / len(names)
    x = np.arange(len(FAULT_NAMES))
    for i, n in enumerate(names):
        right.bar(x + i * width, [board[n]["return_by_fault"][f] for f in FAULT_NAMES], width, label=n)
    right.set_xticks(x + 0.4 - width / 2, FAULT_NAMES)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_title("mean return by fault type")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

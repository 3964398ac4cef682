"""Prove our DQN on CartPole-v1: mean greedy return >= 475 over 100 episodes after <= 100k env steps.

Every ``DQNConfig`` field is a flag (``--learning-rate``, ``--train-frequency``, ``--no-double-q``, ...);
the defaults are ``DQNConfig``'s, tuned for CartPole-v1. Training stops early once the last 10 training
episodes average 490 (``--stop-return inf`` trains for all ``--total-steps``). Run from the repository
root::

    python -m benchmarks.classic_dqn --seed 1 --num-seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.dqn import DQNAgent, DQNConfig

MAX_TOTAL_STEPS = 100_000


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per :class:`DQNConfig` field, defaulting to the field's default."""
    for field in dataclasses.fields(DQNConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif isinstance(field.default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=list(field.default))
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)


def config_from_args(args: argparse.Namespace, **overrides: object) -> DQNConfig:
    """The :class:`DQNConfig` described by parsed flags, with ``overrides`` (e.g. ``seed``) applied."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(DQNConfig)}
    values["hidden_sizes"] = tuple(values["hidden_sizes"])
    values.update(overrides)
    return DQNConfig(**values)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--num-seeds", type=int, default=1, help="train seeds seed, seed+1, ...")
    parser.add_argument("--num-envs", type=int, default=1, help="sub-environments of the training vector env")
    parser.add_argument("--total-steps", type=int, default=MAX_TOTAL_STEPS, help=f"at most {MAX_TOTAL_STEPS}")
    parser.add_argument("--eval-episodes", type=int, default=100, help="greedy evaluation episodes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--log-dir", type=Path, default=None, help="write one training CSV per seed here")
    parser.add_argument("--bar", type=float, default=475.0, help="mean return every seed must reach")
    parser.add_argument(
        "--stop-return",
        type=float,
        default=490.0,
        help="stop training early once the last --stop-window training episodes average this return "
        "('inf' never stops early)",
    )
    parser.add_argument("--stop-window", type=int, default=10, help="episodes averaged by --stop-return")
    add_config_arguments(parser)
    args = parser.parse_args()
    if args.total_steps > MAX_TOTAL_STEPS:
        parser.error(f"--total-steps must be at most {MAX_TOTAL_STEPS}")
    return args


def greedy_returns(agent: DQNAgent, env: gym.Env, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` greedy episodes."""
    returns = np.zeros(episodes)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            returns[episode] += reward
            done = terminated or truncated
        obs, _ = env.reset()
    return returns


def main() -> int:
    """Train and evaluate one agent per seed, print a table; exit status 1 if a seed misses the bar."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(args.seed, args.seed + args.num_seeds):
        config = config_from_args(args, seed=seed)
        train_env = gym.make_vec(args.env_id, num_envs=args.num_envs, vectorization_mode="sync")
        agent = DQNAgent.for_env(train_env, config)
        log_path = None if args.log_dir is None else args.log_dir / f"dqn_{args.env_id}_seed{seed}.csv"
        start = time.perf_counter()
        agent.learn(
            train_env,
            args.total_steps,
            log_path=log_path,
            progress_bar=True,
            stop_return=args.stop_return,
            stop_window=args.stop_window,
        )
        train_seconds = time.perf_counter() - start
        train_env.close()

        eval_env = gym.make(args.env_id)
        returns = greedy_returns(agent, eval_env, args.eval_episodes, seed=10_000 + seed)
        eval_env.close()
        rows.append((seed, returns.mean(), returns.std(), returns.min(), agent.num_steps, train_seconds))

    print(
        f"\n{args.env_id}  DQN  {args.total_steps} steps x {args.num_envs} envs on {args.device}  "
        f"early stop at mean {args.stop_return} over {args.stop_window} episodes  "
        f"eval {args.eval_episodes} greedy episodes"
    )
    print(f"{'seed':>6} {'mean':>8} {'std':>7} {'min':>7} {'steps':>8} {'train s':>8}")
    for seed, mean, std, minimum, steps, train_seconds in rows:
        print(f"{seed:>6} {mean:>8.1f} {std:>7.1f} {minimum:>7.0f} {steps:>8} {train_seconds:>8.1f}")
    means = np.array([row[1] for row in rows])
    print(f"{'all':>6} {means.mean():>8.1f} {means.std():>7.1f}  (bar {args.bar} for every seed)")
    passed = bool((means >= args.bar).all())
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

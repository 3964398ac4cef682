"""Prove tabular Q-learning on FrozenLake-v1 (4x4, slippery): greedy success rate >= 0.70.

The optimal policy succeeds about 74% of the time within FrozenLake's 100-step limit.
Run from the repository root::

    python -m benchmarks.classic_tabular_q --seed 1 --num-seeds 3
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np

from agents.schedules import LinearSchedule
from agents.tabular_q import TabularQAgent


def parse_args() -> argparse.Namespace:
    """Command-line options; defaults are the tuned FrozenLake settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="FrozenLake-v1", help="any env with Discrete obs and actions")
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--num-seeds", type=int, default=1, help="train seeds seed, seed+1, ...")
    parser.add_argument("--num-envs", type=int, default=8, help="sub-environments of the training vector env")
    parser.add_argument("--total-steps", type=int, default=200_000, help="training environment steps")
    parser.add_argument("--alpha", type=float, default=0.05, help="learning rate")
    parser.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    parser.add_argument("--start-e", type=float, default=1.0, help="initial exploration rate")
    parser.add_argument("--end-e", type=float, default=0.05, help="final exploration rate")
    parser.add_argument(
        "--exploration-fraction",
        type=float,
        default=0.5,
        help="fraction of total steps over which epsilon decays linearly",
    )
    parser.add_argument("--eval-episodes", type=int, default=1000, help="greedy evaluation episodes")
    parser.add_argument("--bar", type=float, default=0.70, help="success rate every seed must reach")
    return parser.parse_args()


def greedy_success_rate(agent: TabularQAgent, env: gym.Env, episodes: int, seed: int) -> float:
    """Fraction of ``episodes`` greedy episodes that end with a positive reward."""
    successes = 0
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, greedy=True))
            done = terminated or truncated
        successes += reward > 0
        obs, _ = env.reset()
    return successes / episodes


def main() -> int:
    """Train and evaluate one agent per seed, print a table; exit status 1 if a seed misses the bar."""
    args = parse_args()
    rows = []
    for seed in range(args.seed, args.seed + args.num_seeds):
        train_env = gym.make_vec(args.env_id, num_envs=args.num_envs, vectorization_mode="sync")
        agent = TabularQAgent.for_env(
            train_env,
            alpha=args.alpha,
            gamma=args.gamma,
            epsilon=LinearSchedule(args.start_e, args.end_e, round(args.exploration_fraction * args.total_steps)),
            seed=seed,
        )
        start = time.perf_counter()
        agent.learn(train_env, args.total_steps, progress_bar=True)
        train_seconds = time.perf_counter() - start
        train_env.close()

        eval_env = gym.make(args.env_id)
        success_rate = greedy_success_rate(agent, eval_env, args.eval_episodes, seed=10_000 + seed)
        eval_env.close()
        rows.append((seed, success_rate, train_seconds))

    print(
        f"\n{args.env_id}  tabular Q  {args.total_steps} steps x {args.num_envs} envs  "
        f"eval {args.eval_episodes} greedy episodes"
    )
    print(f"{'seed':>6} {'success':>8} {'train s':>8}")
    for seed, success_rate, train_seconds in rows:
        print(f"{seed:>6} {success_rate:>8.3f} {train_seconds:>8.1f}")
    rates = np.array([row[1] for row in rows])
    print(f"{'mean':>6} {rates.mean():>8.3f}  (std {rates.std():.3f}, min {rates.min():.3f}, bar {args.bar})")
    passed = bool((rates >= args.bar).all())
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

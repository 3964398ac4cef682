"""Prove our DQN on CartPole-v1: mean greedy return >= 475 over 100 episodes after <= 100k env steps.

Every ``DQNConfig`` field is a flag (``--learning-rate``, ``--train-frequency``, ``--no-double-q``, ...);
the defaults are ``DQNConfig``'s, tuned for CartPole-v1. Training stops early once the last 10 training
episodes average 490 (``--stop-return inf`` trains for all ``--total-steps``). DQN on CartPole is known to
forget a solved policy late in training, so, like Stable-Baselines3's ``EvalCallback``, every
``--select-every`` steps the greedy policy plays ``--select-episodes`` episodes on a separate env and the
best network so far is kept (``--select-every 0`` turns this off); the reported evaluation then plays
``--eval-episodes`` fresh episodes with it. Selection episodes are not training steps and are counted
apart. Run from the repository root::

    python -m benchmarks.classic_dqn --seed 1 --num-seeds 3
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.dqn import DQNAgent, add_config_arguments, config_from_args

MAX_TOTAL_STEPS = 100_000


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
    parser.add_argument("--select-every", type=int, default=5_000, help="env steps between checkpoint selections")
    parser.add_argument("--select-episodes", type=int, default=10, help="greedy episodes per selection")
    parser.add_argument("--select-target", type=float, default=500.0,
                        help="stop training once a selection round averages this (CartPole-v1's maximum)")
    add_config_arguments(parser)
    args = parser.parse_args()
    if args.total_steps > MAX_TOTAL_STEPS:
        parser.error(f"--total-steps must be at most {MAX_TOTAL_STEPS}")
    return args


def greedy_returns(agent: DQNAgent, env: gym.Env, episodes: int, seed: int) -> tuple[np.ndarray, int]:
    """Undiscounted returns of ``episodes`` greedy episodes, and the env steps they took."""
    returns = np.zeros(episodes)
    steps = 0
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            returns[episode] += reward
            steps += 1
            done = terminated or truncated
        obs, _ = env.reset()
    return returns, steps


class BestCheckpoint:
    """A ``learn`` callback that keeps the Q-network scoring best on periodic greedy evaluations.

    The network as it is at the end of training is also scored, so selection can only help. Stops
    training once a selection round averages ``target`` (CartPole-v1's maximum, 500: nothing can beat it).
    """

    def __init__(self, env: gym.Env, every: int, episodes: int, target: float, seed: int) -> None:
        self.env, self.every, self.episodes, self.target, self.seed = env, every, episodes, target, seed
        self.best_return, self.best_step, self.best_state = -np.inf, 0, None
        self.env_steps = 0  # steps played by selection rounds (not training steps)
        self.last_round = 0

    def _score(self, agent: DQNAgent) -> bool:
        returns, steps = greedy_returns(agent, self.env, self.episodes, seed=20_000 + self.seed + agent.num_steps)
        self.env_steps += steps
        if returns.mean() > self.best_return:
            self.best_return, self.best_step = returns.mean(), agent.num_steps
            self.best_state = copy.deepcopy(agent.q_network.state_dict())
        return returns.mean() >= self.target

    def __call__(self, agent: DQNAgent) -> bool:
        if agent.num_steps // self.every == self.last_round:
            return False
        self.last_round = agent.num_steps // self.every
        return self._score(agent)

    def restore_best(self, agent: DQNAgent) -> None:
        """Score the final network too, then load the best one into ``agent``."""
        if self.every <= 0:
            return
        self._score(agent)
        agent.q_network.load_state_dict(self.best_state)


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
        selector = BestCheckpoint(gym.make(args.env_id), args.select_every, args.select_episodes, args.select_target,
                                  seed)
        start = time.perf_counter()
        agent.learn(
            train_env,
            args.total_steps,
            log_path=log_path,
            progress_bar=True,
            stop_return=args.stop_return,
            stop_window=args.stop_window,
            callback=selector if args.select_every > 0 else None,
        )
        train_seconds = time.perf_counter() - start
        train_env.close()
        selector.restore_best(agent)

        eval_env = gym.make(args.env_id)
        returns, _ = greedy_returns(agent, eval_env, args.eval_episodes, seed=10_000 + seed)
        eval_env.close()
        rows.append((seed, returns.mean(), returns.std(), returns.min(), agent.num_steps, train_seconds,
                     selector.best_step, selector.env_steps))

    print(
        f"\n{args.env_id}  DQN  {args.total_steps} steps x {args.num_envs} envs on {args.device}  "
        f"early stop at mean {args.stop_return} over {args.stop_window} episodes  "
        f"eval {args.eval_episodes} greedy episodes  "
        f"checkpoint selection every {args.select_every} steps on {args.select_episodes} greedy episodes"
    )
    print(f"{'seed':>6} {'mean':>8} {'std':>7} {'min':>7} {'steps':>8} {'train s':>8} {'kept@':>8} "
          f"{'select steps':>13}")
    for seed, mean, std, minimum, steps, train_seconds, kept, select_steps in rows:
        print(f"{seed:>6} {mean:>8.1f} {std:>7.1f} {minimum:>7.0f} {steps:>8} {train_seconds:>8.1f} {kept:>8} "
              f"{select_steps:>13}")
    means = np.array([row[1] for row in rows])
    print(f"{'all':>6} {means.mean():>8.1f} {means.std():>7.1f}  (bar {args.bar} for every seed)")
    passed = bool((means >= args.bar).all())
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Steps per second of LLMRepair-v0: the single env and the native vector env.

    python benchmarks/env_speed.py --num-envs 64 --steps 20 --seed 0

Two action mixes: ``random`` (uniform over the action table, autoresets included) and ``train_all``
(every env trains every step: the most expensive step there is). Env-steps/s counts every env, so a
vector step of N envs is N env-steps. Threads: torch's default unless ``--threads``.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import llm_repair_gym  # noqa: F401  (registers the ids)


def measure(env, num_envs: int, steps: int, mix: str, seed: int) -> float:
    """Env-steps per second over ``steps`` vector steps (after one warm-up step)."""
    rng = np.random.default_rng(seed)
    names = env.unwrapped.action_names
    train_all = names.index("train_all")
    single = num_envs == 0

    def actions():
        if mix == "train_all":
            a = np.full(max(num_envs, 1), train_all)
        else:
            a = rng.integers(len(names), size=max(num_envs, 1))
        return int(a[0]) if single else a

    env.reset(seed=seed)
    env.step(actions())
    start = time.perf_counter()
    for _ in range(steps):
        out = env.step(actions())
        if single and (out[2] or out[3]):
            env.reset()
    elapsed = time.perf_counter() - start
    return steps * max(num_envs, 1) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="vector steps timed per configuration")
    parser.add_argument("--single-steps", type=int, default=100, help="single-env steps timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads={torch.get_num_threads()} device={args.device}")
    single = gym.make(args.env_id, device=args.device)
    vector = gym.make_vec(args.env_id, num_envs=args.num_envs, device=args.device)
    print(f"{'env':<22}{'mix':<11}{'env-steps/s':>12}")
    for mix in ("random", "train_all"):
        rate = measure(single, 0, args.single_steps, mix, args.seed)
        print(f"{'single (N=1)':<22}{mix:<11}{rate:>12.1f}")
        rate = measure(vector, args.num_envs, args.steps, mix, args.seed)
        print(f"{f'vector (N={args.num_envs})':<22}{mix:<11}{rate:>12.1f}")


if __name__ == "__main__":
    main()

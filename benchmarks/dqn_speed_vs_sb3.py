"""Wall-clock per environment step of our DQN vs Stable-Baselines3's DQN, matched, in one process.

Both learn on one CartPole-v1 env for the same number of steps with the same hyperparameters, network,
train frequency, gradient steps, batch size, learning-rate schedule, device and torch thread count; only
``learn`` is timed.
SB3's DQN has no double-DQN option, so ours runs without it unless ``--double-q`` is given (double DQN
costs one more forward pass per gradient step). Each repeat times both, alternating which goes first.
Run from the repository root::

    python -m benchmarks.dqn_speed_vs_sb3 --total-steps 20000 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN as SB3DQN

from agents.dqn import DQNAgent, DQNConfig, add_config_arguments, config_from_args


def parse_args() -> argparse.Namespace:
    """Command-line options; ``--double-q`` defaults to off to match SB3."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--total-steps", type=int, default=20_000, help="environment steps per learn call")
    parser.add_argument("--repeats", type=int, default=2, help="timed learn calls per implementation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, for both")
    add_config_arguments(parser)
    parser.set_defaults(double_q=False)
    return parser.parse_args()


def time_ours(env_id: str, config: DQNConfig, total_steps: int) -> float:
    """Seconds our ``DQNAgent.learn`` takes for ``total_steps`` steps on a fresh single env."""
    env = gym.make(env_id)
    agent = DQNAgent.for_env(env, config)
    start = time.perf_counter()
    agent.learn(env, total_steps)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def time_sb3(env_id: str, config: DQNConfig, total_steps: int) -> float:
    """Seconds SB3's ``DQN.learn`` takes for ``total_steps`` steps on a fresh single env, same settings."""
    env = gym.make(env_id)
    model = SB3DQN(
        "MlpPolicy",
        env,
        learning_rate=(lambda remaining: config.learning_rate * remaining)
        if config.anneal_lr
        else config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_frequency,
        gradient_steps=config.gradient_steps,
        target_update_interval=config.target_network_frequency,
        exploration_fraction=config.exploration_fraction,
        exploration_initial_eps=config.start_e,
        exploration_final_eps=config.end_e,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={"net_arch": list(config.hidden_sizes)},
        seed=config.seed,
        device=config.device,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=total_steps)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def main() -> int:
    """Time both implementations, print per-step times and the ratio; exit status 1 if ours is slower."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    config = config_from_args(args)
    timers = {"ours": time_ours, "sb3": time_sb3}
    seconds: dict[str, list[float]] = {name: [] for name in timers}
    for repeat in range(args.repeats):
        order = list(timers) if repeat % 2 == 0 else list(reversed(timers))
        for name in order:
            seconds[name].append(timers[name](args.env_id, config, args.total_steps))
            print(f"repeat {repeat}: {name:>4} {seconds[name][-1]:.2f} s", flush=True)

    print(
        f"\n{args.env_id}  {args.total_steps} steps x {args.repeats} repeats  threads={args.threads}  "
        f"device={config.device}  net={list(config.hidden_sizes)}  batch={config.batch_size}  "
        f"train_freq={config.train_frequency}  gradient_steps={config.gradient_steps}  "
        f"double_q(ours)={config.double_q}"
    )
    print(f"{'impl':>6} {'us/step (mean)':>15} {'us/step (min)':>14}")
    per_step = {name: np.array(times) / args.total_steps * 1e6 for name, times in seconds.items()}
    for name, micros in per_step.items():
        print(f"{name:>6} {micros.mean():>15.1f} {micros.min():>14.1f}")
    ratio = per_step["ours"].mean() / per_step["sb3"].mean()
    print(f"ours / sb3 time ratio: {ratio:.3f}  ({1 / ratio:.2f}x {'faster' if ratio <= 1 else 'slower'})")
    return 0 if ratio <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Train our DQN on LLMRepair-v0, save it, and evaluate it greedily on held-out episodes.

    python scripts/train_dqn.py --env-id LLMRepair-v0 --seed 1 --num-envs 16 --total-steps 4000

The agent learns on the native vector env (SAME_STEP autoreset) and is evaluated on held-out evaluation
set ``--eval-set`` (default: the seed), episodes that training never meets
(``llm_repair_gym.evaluation.held_out_seeds``). Writes, under ``--out-dir``: ``agent.pt`` (load it with
``DQNAgent.load``), ``train.csv`` (episodic return and loss by env step) and ``eval.json`` (the summary and
one record per evaluation episode). Every ``DQNConfig`` field is a flag; the defaults below are the ones
tuned for LLMRepair (observations scaled by their bounds, one gradient step per env step).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import gymnasium as gym
import torch

import llm_repair_gym  # noqa: F401  (registers the ids)
from agents.dqn import DQNAgent, DQNConfig, add_config_arguments, config_from_args
from llm_repair_gym.evaluation import GreedyPolicy, evaluate_and_save

REPAIR_DQN = DQNConfig(
    learning_rate=5e-4,
    buffer_size=50_000,
    gamma=0.98,
    target_network_frequency=256,
    batch_size=128,
    end_e=0.05,
    exploration_fraction=0.5,
    learning_starts=512,
    train_frequency=16,
    gradient_steps=16,
    hidden_sizes=(128, 128),
    scale_obs=True,
)
"""DQN settings for LLMRepair-v0: env steps are dear, gradient steps cheap, so every transition is replayed
(one gradient step per env step) and the target network follows every 256 env steps."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--num-envs", type=int, default=16, help="envs of the training vector env")
    parser.add_argument("--total-steps", type=int, default=4_000, help="training env steps (all envs)")
    parser.add_argument("--eval-set", type=int, default=None, help="held-out evaluation set (default: --seed)")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: results/agents/dqn_seed<seed>")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_config_arguments(parser, REPAIR_DQN)
    args = parser.parse_args(argv)
    if args.total_steps < 1 or args.num_envs < 1 or args.eval_episodes < 1:
        parser.error("--total-steps, --num-envs and --eval-episodes must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path("results/agents") / f"dqn_seed{args.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    config = config_from_args(args)
    env = gym.make_vec(args.env_id, num_envs=args.num_envs, device=args.device)
    agent = DQNAgent.for_env(env, config)
    start = time.perf_counter()
    agent.learn(env, args.total_steps, log_path=out_dir / "train.csv", progress_bar=True)
    train_seconds = time.perf_counter() - start
    env.close()
    agent.save(out_dir / "agent.pt")

    eval_set = args.seed if args.eval_set is None else args.eval_set
    summary = evaluate_and_save(args.env_id, GreedyPolicy(agent.act), eval_set, args.eval_episodes, out_dir,
                                device=args.device, agent="dqn", seed=args.seed, total_steps=agent.num_steps,
                                train_seconds=train_seconds, config=dataclasses.asdict(config))
    print(f"dqn seed {args.seed}: {agent.num_steps} steps in {train_seconds / 60:.1f} min; held-out return "
          f"{summary['mean_return']:.3f} ± {summary['ci95']:.3f} over {summary['episodes']} episodes -> {out_dir}")
    return summary


if __name__ == "__main__":
    main()

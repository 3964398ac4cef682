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

import gymnasium as gym

import llm_repair_gym  # noqa: F401  (registers the ids)
from agents.dqn import REPAIR_DQN, DQNAgent, add_config_arguments, config_from_args
from llm_repair_gym.evaluation import (
    GreedyPolicy,
    add_run_arguments,
    check_run_arguments,
    evaluate_and_save,
    prepare_run,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    add_config_arguments(parser, REPAIR_DQN)
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out_dir = prepare_run(args, "dqn")
    config = config_from_args(args)
    env = gym.make_vec(args.env_id, num_envs=args.num_envs, device=args.device, **args.env_kwargs)
    agent = DQNAgent.for_env(env, config)
    start = time.perf_counter()
    agent.learn(env, args.total_steps, log_path=out_dir / "train.csv", progress_bar=True)
    train_seconds = time.perf_counter() - start
    env.close()
    agent.save(out_dir / "agent.pt")

    eval_set = args.seed if args.eval_set is None else args.eval_set
    summary = evaluate_and_save(args.env_id, GreedyPolicy(agent.act), eval_set, args.eval_episodes, out_dir,
                                device=args.device, env_kwargs=args.env_kwargs, agent="dqn", seed=args.seed,
                                total_steps=agent.num_steps,
                                train_seconds=train_seconds, config=dataclasses.asdict(config))
    print(f"dqn seed {args.seed}: {agent.num_steps} steps in {train_seconds / 60:.1f} min; held-out return "
          f"{summary['mean_return']:.3f} ± {summary['ci95']:.3f} over {summary['episodes']} episodes -> {out_dir}")
    return summary


if __name__ == "__main__":
    main()

"""Train tabular Q-learning on LLMRepair-v0 or v1 through ``DiscretizeObservation``, save it, evaluate it.

    python -m agents.train_tabular_q --env-id LLMRepair-v0 --seed 1 --num-envs 16 --total-steps 4000

The Box observation is cut into bins (``llm_repair_gym.envs.wrappers.default_bins``: validation accuracy per
family, lr, loss spread and budget on LLMRepair-v0, the episode's price for the loss spread on v1; 216 states). The
agent learns on the native vector env and is evaluated greedily on held-out evaluation set ``--eval-set`` (default:
the seed). Writes, under ``--out-dir``: ``agent.npz`` (``TabularQAgent.load``) with ``policy.json``
(``agents.load_policy``), ``train.csv`` (episodic return and length by env step, ``llm_repair_gym.rl.training_log``)
and ``eval.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

from agents.loading import POLICY_FILE
from agents.schedules import LinearSchedule
from agents.tabular_q import TabularQAgent
from llm_repair_gym._version import __version__
from llm_repair_gym.envs.wrappers import VectorDiscretizeObservation
from llm_repair_gym.rl.episodes import (
    GreedyPolicy,
    add_run_arguments,
    check_run_arguments,
    evaluate_and_save,
    prepare_run,
)
from llm_repair_gym.rl.training_log import LOG_FILE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="device of the env's models (the table is numpy)")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--gamma", type=float, default=0.98)
    parser.add_argument("--start-e", type=float, default=1.0)
    parser.add_argument("--end-e", type=float, default=0.05)
    parser.add_argument("--exploration-fraction", type=float, default=0.5)
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out_dir = prepare_run(args, "tabular_q")
    env = VectorDiscretizeObservation(gym.make_vec(args.env_id, num_envs=args.num_envs, device=args.device,
                                                            **args.env_kwargs))
    epsilon = LinearSchedule(args.start_e, args.end_e, round(args.exploration_fraction * args.total_steps))
    agent = TabularQAgent.for_env(env, alpha=args.alpha, gamma=args.gamma, epsilon=epsilon, seed=args.seed)
    start = time.perf_counter()
    agent.learn(env, args.total_steps, progress_bar=True, log_path=out_dir / LOG_FILE)
    train_seconds = time.perf_counter() - start
    discretizer, feature_names = env.discretizer, list(env.unwrapped.feature_names)
    bins = {name: edges.tolist() for name, edges in zip(discretizer.names, discretizer.edges)}
    env.close()
    agent.save(out_dir / "agent.npz")
    (out_dir / POLICY_FILE).write_text(json.dumps({
        "kind": "tabular_q", "env_id": args.env_id, "package_version": __version__,
        "feature_names": feature_names, "bins": bins,
        "seed": args.seed, "total_steps": agent.num_steps}, indent=1))

    eval_set = args.seed if args.eval_set is None else args.eval_set
    policy = GreedyPolicy(lambda obs: agent.act(discretizer(obs), greedy=True))
    summary = evaluate_and_save(args.env_id, policy, eval_set, args.eval_episodes, out_dir, device=args.device,
                                env_kwargs=args.env_kwargs, agent="tabular_q", seed=args.seed,
                                total_steps=agent.num_steps,
                                train_seconds=train_seconds, bins=bins,
                                visited_states=int((agent.q_table != 0).any(1).sum()))
    print(f"tabular Q seed {args.seed}: {agent.num_steps} steps in {train_seconds / 60:.1f} min; held-out return "
          f"{summary['mean_return']:.3f} ± {summary['ci95']:.3f} over {summary['episodes']} episodes -> {out_dir}")
    return summary


if __name__ == "__main__":
    main()

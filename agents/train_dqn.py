"""Train our DQN on LLMRepair-v0, save it, and evaluate it greedily on held-out episodes.

    python -m agents.train_dqn --env-id LLMRepair-v0 --seed 1 --num-envs 16 --total-steps 4000
    python -m agents.train_dqn --demonstrations heuristic --seed 1 --total-steps 8000   # DQfD

The agent learns on the native vector env (SAME_STEP autoreset) and is evaluated on held-out evaluation
set ``--eval-set`` (default: the seed), episodes that training never meets
(``llm_repair_gym.rl.episodes.held_out_seeds``). Writes, under ``--out-dir``: ``agent.pt`` (load it with
``agents.load_policy`` or ``DQNAgent.load``) with ``policy.json``, ``train.csv`` (episodic return and loss by
env step) and ``eval.json`` (the summary and one record per evaluation episode). Every ``DQNConfig`` field is
a flag; the defaults below are the ones tuned for LLMRepair (observations scaled by their bounds, one
gradient step per env step).

``--demonstrations heuristic`` trains DQfD (``agents.demonstrations``): the observation-only heuristic first
plays ``--demo-steps`` env steps on the training env, the agent pretrains ``--pretrain-steps`` gradient steps
on them and keeps them in replay; the flags' defaults become ``REPAIR_DQFD``'s and the run is named ``dqfd``.
``--total-steps`` counts the agent's own steps; ``eval.json`` records the demonstrator's as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import gymnasium as gym

from agents import save_checkpoint
from agents.demonstrations import DEMONSTRATORS, REPAIR_DEMONSTRATIONS, learn_from_demonstrations
from agents.dqn import REPAIR_DQFD, REPAIR_DQN, DQNAgent, add_config_arguments, config_from_args
from llm_repair_gym.rl.episodes import (
    GreedyPolicy,
    add_run_arguments,
    check_run_arguments,
    evaluate_and_save,
    prepare_run,
)
from llm_repair_gym.rl.training_log import LOG_FILE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    first = argparse.ArgumentParser(add_help=False)  # --demonstrations decides the other flags' defaults
    first.add_argument("--demonstrations", choices=("none", *DEMONSTRATORS), default="none",
                       help="learn from this policy's demonstrations first (DQfD)")
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[first])
    add_run_arguments(parser)
    parser.add_argument("--demo-steps", type=int, default=None,
                        help=f"env steps the demonstrator plays (default {REPAIR_DEMONSTRATIONS.env_steps})")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="gradient steps on the demonstrations "
                        f"alone (default {REPAIR_DEMONSTRATIONS.pretrain_steps})")
    add_config_arguments(parser, REPAIR_DQN if known.demonstrations == "none" else REPAIR_DQFD)
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    given = [flag for flag, value in (("--demo-steps", args.demo_steps), ("--pretrain-steps", args.pretrain_steps))
             if value is not None]
    if args.demonstrations == "none" and given:
        parser.error(f"{' and '.join(given)} need --demonstrations {'|'.join(DEMONSTRATORS)}")
    if args.demonstrations != "none":
        try:
            args.plan = dataclasses.replace(REPAIR_DEMONSTRATIONS, demonstrator=args.demonstrations,
                                            **{k: v for k, v in (("env_steps", args.demo_steps),
                                                                 ("pretrain_steps", args.pretrain_steps))
                                               if v is not None})
        except ValueError as err:
            parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    name = "dqn" if args.demonstrations == "none" else "dqfd"
    out_dir = prepare_run(args, name)
    config = config_from_args(args)
    env = gym.make_vec(args.env_id, num_envs=args.num_envs, device=args.device, **args.env_kwargs)
    agent = DQNAgent.for_env(env, config)
    start = time.perf_counter()
    demonstrations = {}
    if args.demonstrations != "none":
        demonstrations = {"demonstrations": learn_from_demonstrations(agent, env, args.plan, args.seed,
                                                                      progress=True)}
    agent.learn(env, args.total_steps, log_path=out_dir / LOG_FILE, progress_bar=True)
    train_seconds = time.perf_counter() - start
    feature_names = list(env.unwrapped.feature_names)
    env.close()
    save_checkpoint(agent, out_dir, env_id=args.env_id, feature_names=feature_names, seed=args.seed,
                    total_steps=agent.num_steps, **demonstrations)

    eval_set = args.seed if args.eval_set is None else args.eval_set
    summary = evaluate_and_save(args.env_id, GreedyPolicy(agent.act), eval_set, args.eval_episodes, out_dir,
                                device=args.device, env_kwargs=args.env_kwargs, agent=name, seed=args.seed,
                                total_steps=agent.num_steps, train_seconds=train_seconds,
                                config=dataclasses.asdict(config), **demonstrations)
    print(f"{name} seed {args.seed}: {agent.num_steps} steps in {train_seconds / 60:.1f} min; held-out return "
          f"{summary['mean_return']:.3f} ± {summary['ci95']:.3f} over {summary['episodes']} episodes -> {out_dir}")
    return summary


if __name__ == "__main__":
    main()

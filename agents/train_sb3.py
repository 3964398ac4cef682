"""Train a Stable-Baselines3 baseline on LLMRepair-v0's native vector env, save it, evaluate it held out.

    python -m agents.train_sb3 --algo ppo --seed 1 --num-envs 16 --total-steps 4000 --device cpu

``--algo`` is ppo, a2c, dqn (SB3's) or qrdqn (sb3-contrib); hyperparameters come from
``agents/hyperparams/<algo>.yml`` (RL Zoo's format; ``--hyperparams FILE`` for another). The model learns on
``llm_repair_gym.integrations.sb3.SB3VecEnv`` over the native vector env (one batched step for all envs, the bank's
``train`` split), wrapped in SB3's ``VecMonitor`` and, where the file says ``normalize``, ``VecNormalize``.
It is then played greedily on held-out evaluation set ``--eval-set`` (default: the seed), the episodes every
other agent of the leaderboard is scored on. Writes, under ``--out-dir`` (default
``results/agents/sb3_<algo>_seed<seed>``): ``policy.safetensors`` + ``policy.json`` (``agents.load_policy``),
``model.zip`` (SB3's ``load``), ``train.csv`` (episodic return and length by env step) and ``eval.json``.
"""

from __future__ import annotations

import argparse
import time

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from agents.loading import load_policy
from agents.sb3_baselines import AGENT_NAMES, ALGOS, build_model, load_hyperparams, normalize_kwargs, save_policy
from llm_repair_gym.integrations.sb3 import make_sb3_vec_env
from llm_repair_gym.rl.episodes import add_run_arguments, check_run_arguments, evaluate_and_save, prepare_run
from llm_repair_gym.rl.training_log import LOG_FILE, TrainingLog, training_log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--algo", choices=ALGOS, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="device of the env's models and of the SB3 networks")
    parser.add_argument("--hyperparams", default=None, help="an RL Zoo yml file (default: agents/hyperparams)")
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    return args


class EpisodeLog(BaseCallback):
    """Writes every finished episode's return and length (from ``VecMonitor``) to a training log."""

    def __init__(self, log: TrainingLog) -> None:
        super().__init__()
        self.log = log

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.log.episode(self.num_timesteps, info["episode"]["r"], info["episode"]["l"])
        return True


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    agent = AGENT_NAMES[args.algo]
    out_dir = prepare_run(args, agent)
    hyperparams = load_hyperparams(args.algo, args.env_id, args.hyperparams)
    venv = VecMonitor(make_sb3_vec_env(args.env_id, args.num_envs, seed=args.seed, device=args.device,
                                        **args.env_kwargs))
    feature_names = venv.get_attr("feature_names")[0]
    norm = normalize_kwargs(hyperparams)
    if norm is not None:
        venv = VecNormalize(venv, **{"norm_reward": False, **norm})
    model = build_model(args.algo, venv, hyperparams, seed=args.seed, device=args.device)
    start = time.perf_counter()
    with training_log(out_dir / LOG_FILE) as log:
        model.learn(args.total_steps, callback=EpisodeLog(log), progress_bar=True)
    train_seconds = time.perf_counter() - start
    save_policy(model, out_dir, args.algo, hyperparams, feature_names, args.env_id,
                vec_normalize=venv if norm is not None else None, seed=args.seed,
                total_steps=int(model.num_timesteps), train_seconds=train_seconds)
    venv.close()

    eval_set = args.seed if args.eval_set is None else args.eval_set
    summary = evaluate_and_save(args.env_id, load_policy(out_dir), eval_set, args.eval_episodes, out_dir,
                                device=args.device, env_kwargs=args.env_kwargs, agent=agent, seed=args.seed,
                                total_steps=int(model.num_timesteps),
                                train_seconds=train_seconds, config={k: str(v) for k, v in hyperparams.items()})
    print(f"{agent} seed {args.seed}: {model.num_timesteps} steps in {train_seconds / 60:.1f} min; held-out return "
          f"{summary['mean_return']:.3f} ± {summary['ci95']:.3f} over {summary['episodes']} episodes -> {out_dir}")
    return summary


if __name__ == "__main__":
    main()

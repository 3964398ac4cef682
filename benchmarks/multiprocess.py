"""LLMRepair-v0 in worker processes: per-worker step time against the single-process step time.

    python -m benchmarks.multiprocess            # tiny preset, 2 and 4 workers (about 5 minutes on 2 cores)

A single env of ``gym.make`` in this process sets the references: its step with torch's default threads
(one per core) and with one thread (what each worker runs on). Then Gymnasium's
``AsyncVectorEnv`` (``fork``, ``spawn``, ``forkserver``) and SB3's ``SubprocVecEnv`` (``forkserver``, its
default) run ``--workers`` single envs each; every worker steps its env once per vector step, in parallel,
so a vector step's wall time is one worker's step time. Every step is ``train_all`` (the same cost on
every step and worker); ``--warmup`` steps are not timed. With perfect sharing of the cores a worker's
step would take ``max(1, workers / cores)`` times the one-thread single-process step. Writes
``multiprocess.json`` and ``.md`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import numpy as np

ENV = "llm_repair_gym:LLMRepair-v0"


def _time_steps(step, steps: int, warmup: int) -> float:
    """Mean seconds per call of ``step()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def single(kwargs: dict, steps: int, warmup: int, seed: int) -> float:
    import gymnasium as gym

    env = gym.make(ENV, **kwargs)
    env.reset(seed=seed)
    action = env.unwrapped.action_names.index("train_all")
    seconds = _time_steps(lambda: env.step(action), steps, warmup)
    env.close()
    return seconds


def workers(kind: str, context: str, n: int, kwargs: dict, steps: int, warmup: int, seed: int) -> float:
    import gymnasium as gym

    if kind == "gymnasium":
        envs = gym.vector.AsyncVectorEnv([functools.partial(gym.make, ENV, **kwargs)] * n, context=context)
        envs.reset(seed=seed)
    else:
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import SubprocVecEnv

        envs = make_vec_env(ENV, n_envs=n, seed=seed, env_kwargs=kwargs, vec_env_cls=SubprocVecEnv,
                            vec_env_kwargs={"start_method": context})
        envs.reset()
    step = functools.partial(envs.step, np.zeros(n, dtype=np.int64))  # action 0 is train_all
    seconds = _time_steps(step, steps, warmup)
    envs.close()
    return seconds


def main(argv: list[str] | None = None) -> None:
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="LLMRepair-v0", choices=["LLMRepair-v0"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="reset seed of every env")
    parser.add_argument("--out-dir", type=Path, default=Path("results/multiprocess"))
    args = parser.parse_args(argv)
    kwargs = {"preset": args.preset, "progress": False}
    cores = os.cpu_count() or 1
    import torch

    reference = single(kwargs, args.steps, args.warmup, args.seed)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one_thread = single(kwargs, args.steps, args.warmup, args.seed)
    torch.set_num_threads(default_threads)
    cases = [(kind, context, n) for n in args.workers for kind, context in
             [("gymnasium", "fork"), ("gymnasium", "spawn"), ("gymnasium", "forkserver"), ("sb3", "forkserver")]]
    rows = []
    for kind, context, n in tqdm(cases, desc="worker configurations"):
        seconds = workers(kind, context, n, kwargs, args.steps, args.warmup, args.seed)
        bound = max(1.0, n / cores)
        rows.append({"vec_env": "AsyncVectorEnv" if kind == "gymnasium" else "SubprocVecEnv (SB3)",
                     "context": context, "workers": n, "step_s": seconds, "ratio": seconds / reference,
                     "ratio_one_thread": seconds / one_thread,
                     "bound": bound})
    lines = [f"{args.env_id}, preset `{args.preset}`, `train_all` steps, {cores} cores; single-process step "
             f"{1000 * reference:.1f} ms with {default_threads} torch threads, {1000 * one_thread:.1f} ms with one.",
             "", "| vec env | start method | workers | step per worker (ms) | x single | x single, one thread "
             "| ideal max(1, W/cores) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['vec_env']} | {r['context']} | {r['workers']} | {1000 * r['step_s']:.1f} | {r['ratio']:.2f} "
              f"| {r['ratio_one_thread']:.2f} | {r['bound']:.1f} |" for r in rows]
    table = "\n".join(lines) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"single_step_s": reference, "single_step_one_thread_s": one_thread, "cores": cores, "rows": rows}
    (args.out_dir / "multiprocess.json").write_text(json.dumps(summary, indent=1))
    (args.out_dir / "multiprocess.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

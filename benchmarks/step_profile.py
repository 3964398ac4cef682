"""Where a step's time goes: the share of each part of LLMRepair's vector step, per action mix.

    python -m benchmarks.step_profile --env-id LLMRepair-v1 --num-envs 64 --seed 0
    python -m benchmarks.step_profile --env-id LLMRepair-v0 --num-envs 64 --seed 0

It steps the native vector env (``--steps`` vector steps per mix, after one warm-up step) and clocks, by
wrapping them, the parts of a step: the training steps (forward, backward and optimizer update of the train
actions, fault injections excluded), the other model-changing actions (``filter_noisy``'s audit, re-inits,
pruning, ...), the probes, the free measurement (v0: the measurement with its gradient pass), the test-split
scoring (v1: when an episode ends, and live resets), the resets of finished episodes (bank loads and their
measurement) and the host transfer (``step_to_host``: observations, rewards and infos to numpy in one copy).
The rest is Python bookkeeping: the observation, reward and info columns. The learner's own share of a
training run is the ``training run`` row of ``benchmarks/throughput.py``. Parts nest (a reset's measurement
counts under the reset), so each part is clocked only outside the others. Writes JSON and a Markdown table
under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
import torch

MIXES = ("train_all", "random")
PARTS = ("training", "other actions", "probes", "free measurement", "test scoring", "resets", "host transfer")


class Clock:
    """Adds up the wall time of the outermost clocked call of each part."""

    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self._inside = False

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            if self._inside:
                return fn(*args, **kwargs)
            self._inside, start = True, time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
                self._inside = False
        return timed


def _instrument(env, clock: Clock) -> None:
    """Wrap the env's parts (its action effects, measurement, test score, reset and host transfer)."""
    import dataclasses

    from llm_repair_gym.envs import repair, repair_v1

    for index, action in enumerate(env.actions):
        part = {"train": "training", "probe": "probes"}.get(action.kind, "other actions")
        env.actions = (*env.actions[:index], dataclasses.replace(action, effect=clock.wrap(part, action.effect)),
                       *env.actions[index + 1:])
    if isinstance(env, repair_v1.LLMRepairV1VectorEnv):
        repair_v1.measure_free = clock.wrap("free measurement", repair_v1.measure_free)
        repair_v1.test_accuracy = clock.wrap("test scoring", repair_v1.test_accuracy)
    else:
        repair.measure = clock.wrap("free measurement", repair.measure)
    env._reset_envs = clock.wrap("resets", env._reset_envs)
    repair.step_to_host = clock.wrap("host transfer", repair.step_to_host)


def profile(env_id: str, num_envs: int, steps: int, seed: int, threads: int) -> dict:
    import gymnasium as gym

    import llm_repair_gym  # noqa: F401  (registers the ids)

    torch.set_num_threads(threads)
    env = gym.make_vec(env_id, num_envs=num_envs, progress=True, num_threads=threads).unwrapped
    clock = Clock()
    _instrument(env, clock)
    rng = np.random.default_rng(seed)
    names = env.action_names
    out = {}
    for mix in MIXES:
        env.reset(seed=seed)
        env.step(np.full(num_envs, names.index("train_all")))  # warm-up
        clock.seconds.clear()
        start = time.perf_counter()
        for _ in range(steps):
            env.step(np.full(num_envs, names.index("train_all")) if mix == "train_all"
                     else rng.integers(len(names), size=num_envs))
        wall = time.perf_counter() - start
        shares = {part: clock.seconds[part] / wall for part in PARTS}
        shares["bookkeeping"] = 1 - sum(shares.values())
        out[mix] = {"env_steps_per_s": steps * num_envs / wall, "shares": shares}
    env.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="LLMRepair-v1")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12, help="timed vector steps per mix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out-dir", type=Path, default=Path("results/step_profile"))
    args = parser.parse_args(argv)
    result = profile(args.env_id, args.num_envs, args.steps, args.seed, args.threads)
    parts = (*PARTS, "bookkeeping")
    lines = [f"{args.env_id}, N={args.num_envs}, {args.threads} threads, torch {torch.__version__}", "",
             "| mix | env-steps/s | " + " | ".join(parts) + " |", "|---|---|" + "---|" * len(parts)]
    for mix, row in result.items():
        lines.append(f"| {mix} | {row['env_steps_per_s']:.1f} | "
                     + " | ".join(f"{row['shares'][p]:.0%}" for p in parts) + " |")
    markdown = "\n".join(lines) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"step_profile-{args.env_id}"
    stem.with_suffix(".json").write_text(json.dumps({**vars(args), "out_dir": str(args.out_dir), **result},
                                                     indent=1))
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    return result


if __name__ == "__main__":
    main()

"""Fuzz every registered llm-repair-gym id with random actions, and watch memory over a long run.

    python -m benchmarks.fuzz                        # micro settings: about 17 minutes on 2 cores
    python -m benchmarks.fuzz --preset tiny --fuzz-steps 5000   # the real preset (about 24 env-steps/s at N=64)

Two phases per id, on the CPU, each in a fresh process (spawn) with ``--threads`` torch threads, so the
memory phase does not start on a heap the fuzz phase grew:

* **fuzz**: ``--fuzz-steps`` env-steps (default 50,000) of uniformly random actions on ``--num-envs`` envs
  (default 64), with same-step autoreset. Every step's observations, rewards and info values are checked
  for NaN and inf; an exception is caught, counted with its traceback, and the env is made again. Random
  actions seldom make a model diverge, so every ``--poison-every`` steps one env's parameters are set to
  NaN, as a diverging update would leave them. Episodes in which the model diverged (``info["crashed"]``)
  are counted, and among them those that were repaired back to finite (a later step of the same episode
  not crashed: ``rollback`` does that).
* **memory**: ``--memory-envs`` envs (default 16) stepped with random actions until at least
  ``--memory-steps`` env-steps (20,000) and ``--memory-resets`` episode resets (2,000) have run. The
  resident set size is sampled throughout; its growth is measured from the end of warm-up (the first 10%
  of ``--memory-steps``) to the end, and so is the number of objects Python's garbage collector tracks (a
  leak of Python objects can hide in memory malloc keeps for reuse; the count cannot).

``--preset micro`` (the default) uses :mod:`llm_repair_gym.testing`: every code path of the env at a
fraction of the cost. Writes ``fuzz.json``, ``fuzz.md`` and ``memory.png`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path

import numpy as np

WARMUP_FRACTION = 0.1


def _rss_bytes() -> int:
    """The process's current resident set size (Linux ``/proc``; 0 where it is unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _non_finite(info: dict) -> int:
    """How many float values of a (nested) vector info are NaN or inf."""
    count = 0
    for value in info.values():
        if isinstance(value, dict):
            count += _non_finite(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            count += int((~np.isfinite(value)).sum())
    return count


def _kwargs(preset: str, cache_dir: str | None, env_id: str = "LLMRepair-v0") -> dict:
    from llm_repair_gym.testing import micro_env_kwargs

    if preset == "micro":
        return micro_env_kwargs(cache_dir, env_id)
    return {"preset": preset, "cache_dir": cache_dir, "progress": False}


def fuzz(env_id: str, kwargs: dict, num_envs: int, steps: int, seed: int, poison_every: int) -> dict:
    """Random actions for ``steps`` env-steps; counts of exceptions, non-finite values and crashed episodes."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    env.reset(seed=seed)
    exceptions: list[str] = []
    non_finite = crashed_episodes = recovered_episodes = episodes = 0
    crashed_now = np.zeros(num_envs, dtype=bool)  # this episode has crashed
    recovered = np.zeros(num_envs, dtype=bool)  # ... and a later step was finite again
    done_steps, poisoned, start = 0, 0, time.perf_counter()
    with tqdm(total=steps, desc=f"fuzz {env_id}", unit="env-step") as bar:
        while done_steps < steps:
            actions = rng.integers(env.single_action_space.n, size=num_envs)
            if poison_every and (done_steps // num_envs) % poison_every == poison_every - 1:
                env.unwrapped.state.params[int(rng.integers(num_envs))] = float("nan")
                poisoned += 1
            try:
                obs, reward, terminated, truncated, info = env.step(actions)
            except Exception:  # the fuzz's purpose: count anything a valid step raises
                exceptions.append(traceback.format_exc())
                env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
                env.reset(seed=int(rng.integers(2**62)))
                crashed_now[:], recovered[:] = False, False
                continue
            non_finite += int((~np.isfinite(obs)).sum() + (~np.isfinite(reward)).sum()) + _non_finite(info)
            done = terminated | truncated
            crashed = info["final_info"]["crashed"] if done.any() else np.zeros(num_envs, dtype=bool)
            step_crashed = np.where(done, crashed, info["crashed"])  # the ending episode's last state
            recovered |= crashed_now & ~step_crashed
            crashed_now |= step_crashed
            episodes += int(done.sum())
            crashed_episodes += int((crashed_now & done).sum())
            recovered_episodes += int((recovered & done).sum())
            crashed_now[done], recovered[done] = False, False
            done_steps += num_envs
            bar.update(num_envs)
    seconds = time.perf_counter() - start
    env.close()
    return {"env_steps": done_steps, "poisoned": poisoned, "exceptions": len(exceptions),
            "tracebacks": exceptions[:5],
            "non_finite_values": non_finite, "episodes": episodes, "crashed_episodes": crashed_episodes,
            "crashed_and_recovered_episodes": recovered_episodes, "env_steps_per_s": done_steps / seconds}


def memory(env_id: str, kwargs: dict, num_envs: int, min_steps: int, min_resets: int, seed: int) -> dict:
    """Random steps until ``min_steps`` env-steps and ``min_resets`` resets; resident set size over time."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    env.reset(seed=seed)
    steps = resets = 0
    trace: list[tuple[int, int]] = [(0, _rss_bytes())]
    objects_warm = None
    with tqdm(total=min_steps, desc=f"memory {env_id}", unit="env-step") as bar:
        while steps < min_steps or resets < min_resets:
            _, _, terminated, truncated, _ = env.step(rng.integers(env.single_action_space.n, size=num_envs))
            resets += int((terminated | truncated).sum())
            steps += num_envs
            bar.update(num_envs)
            if steps % (num_envs * 10) == 0:
                trace.append((steps, _rss_bytes()))
            if objects_warm is None and steps >= WARMUP_FRACTION * min_steps:
                gc.collect()
                objects_warm = len(gc.get_objects())
    trace.append((steps, _rss_bytes()))
    gc.collect()
    objects_end = len(gc.get_objects())
    env.close()
    warm = next(rss for step, rss in trace if step >= WARMUP_FRACTION * min_steps)
    return {"env_steps": steps, "resets": resets, "rss_after_warmup_mib": warm / 2**20,
            "rss_end_mib": trace[-1][1] / 2**20, "rss_peak_mib": max(r for _, r in trace) / 2**20,
            "growth_after_warmup": (trace[-1][1] - warm) / warm if warm else float("nan"),
            "gc_objects_after_warmup": objects_warm, "gc_objects_end": objects_end, "trace": trace}


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for env_id, result in results.items():
        trace = np.array(result["memory"]["trace"], dtype=float)
        ax.plot(trace[:, 0], trace[:, 1] / 2**20, label=env_id)
        ax.axvline(WARMUP_FRACTION * result["memory_min_steps"], color="grey", ls=":", lw=1)
    ax.set_xlabel("env-steps")
    ax.set_ylabel("resident set (MiB)")
    ax.set_title("Memory over a long random run (dotted: end of warm-up)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(results: dict, args: argparse.Namespace) -> str:
    lines = [f"Fuzz: {args.fuzz_steps} random env-steps per id at N={args.num_envs}; memory: N={args.memory_envs}, "
             f">= {args.memory_steps} env-steps and >= {args.memory_resets} resets; preset `{args.preset}`, "
             f"seed {args.seed}, CPU.", "",
             "| id | env-steps | exceptions | non-finite values | episodes | poisoned | crashed "
             "| crashed and recovered | env-steps/s | resets (memory run) | RSS after warm-up → end (MiB) | growth "
             "| gc objects after warm-up → end |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for env_id, r in results.items():
        f, m = r["fuzz"], r["memory"]
        lines.append(f"| {env_id} | {f['env_steps']} | {f['exceptions']} | {f['non_finite_values']} | {f['episodes']} "
                     f"| {f['poisoned']} | {f['crashed_episodes']} | {f['crashed_and_recovered_episodes']} "
                     f"| {f['env_steps_per_s']:.0f} "
                     f"| {m['resets']} | {m['rss_after_warmup_mib']:.0f} → {m['rss_end_mib']:.0f} "
                     f"| {100 * m['growth_after_warmup']:+.1f}% "
                     f"| {m['gc_objects_after_warmup']} → {m['gc_objects_end']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from gymnasium.envs.registration import registry

    import llm_repair_gym  # noqa: F401  (registers the ids)

    ids = sorted(k for k, spec in registry.items() if str(spec.entry_point).startswith("llm_repair_gym."))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", nargs="+", default=ids, choices=ids)
    parser.add_argument("--preset", default="micro", help="micro (default), tiny, small or base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--fuzz-steps", type=int, default=50_000)
    parser.add_argument("--poison-every", type=int, default=10,
                        help="vector steps between NaN-poisonings of one env's parameters (0: never)")
    parser.add_argument("--memory-envs", type=int, default=16)
    parser.add_argument("--memory-steps", type=int, default=20_000)
    parser.add_argument("--memory-resets", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cache-dir", default=None, help="zoo and bank cache (default: the user cache)")
    parser.add_argument("--out-dir", type=Path, default=Path("results/fuzz"))
    args = parser.parse_args(argv)
    import torch

    results = {}
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # every phase in a fresh process
        for env_id in args.env_id:
            kwargs = {**_kwargs(args.preset, args.cache_dir, env_id),
                      "num_threads": args.threads or torch.get_num_threads()}
            results[env_id] = {
                "fuzz": pool.apply(fuzz, (env_id, kwargs, args.num_envs, args.fuzz_steps, args.seed,
                                          args.poison_every)),
                "memory": pool.apply(memory, (env_id, kwargs, args.memory_envs, args.memory_steps,
                                              args.memory_resets, args.seed)),
                "memory_min_steps": args.memory_steps}
        for text in results[env_id]["fuzz"]["tracebacks"]:
            print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "fuzz.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                        "results": results}, indent=1))
    table = _markdown(results, args)
    (args.out_dir / "fuzz.md").write_text(table)
    _plot(results, args.out_dir / "memory.png")
    print(table)


if __name__ == "__main__":
    main()

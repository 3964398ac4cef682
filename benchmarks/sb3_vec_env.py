"""What SB3 gets from the native vector env: SB3VecEnv against DummyVecEnv over single envs, step for step.

    python -m benchmarks.sb3_vec_env                 # tiny preset, N = 4 and 16 (about 3 minutes on 2 cores)

For every N, both SB3 vec envs are seeded alike (env ``i`` gets ``seed + i``) and stepped with the same
seeded random actions: ``SB3VecEnv`` over ``gym.make_vec`` (one batched step) and SB3's ``DummyVecEnv`` over
N ``gym.make`` envs (N steps one after another), the way SB3 and RL Zoo run a Gymnasium env by default. The
benchmark times env-steps per second after ``--warmup`` untimed vector steps and checks on every step that
both give the same observations, rewards and dones (bit for bit). Random actions include ``stop``, so
autoresets happen. Writes ``sb3_vec_env.json`` and ``.md`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.integrations.sb3 import make_sb3_vec_env


def compare(env_id: str, n: int, steps: int, warmup: int, seed: int) -> dict:
    """Step both vec envs ``warmup + steps`` times; seconds per timed vector step and whether all matched."""
    ours = make_sb3_vec_env(env_id, n, seed=seed, progress=False)
    dummy = DummyVecEnv([lambda: gym.make(env_id, progress=False) for _ in range(n)])
    dummy.seed(seed)
    rng = np.random.default_rng(seed)
    actions = [rng.integers(ours.action_space.n, size=n) for _ in range(warmup + steps)]
    results = {}
    for name, venv in (("SB3VecEnv (native)", ours), ("DummyVecEnv (single envs)", dummy)):
        trace = [venv.reset()]
        for a in actions[:warmup]:
            trace.append(venv.step(a)[:3])
        start = time.perf_counter()
        for a in tqdm(actions[warmup:], desc=f"{name}, N={n}", leave=False):
            trace.append(venv.step(a)[:3])
        results[name] = ((time.perf_counter() - start) / steps, trace)
        venv.close()
    (t_ours, trace_ours), (t_dummy, trace_dummy) = results.values()
    same = all(np.array_equal(x, y) for a, b in zip(trace_ours[1:], trace_dummy[1:]) for x, y in zip(a, b))
    same &= np.array_equal(trace_ours[0], trace_dummy[0])
    ends = int(sum(step[2].sum() for step in trace_ours[1:]))
    return {"num_envs": n, "native_env_steps_per_s": n / t_ours, "dummy_env_steps_per_s": n / t_dummy,
            "speedup": t_dummy / t_ours, "identical": bool(same), "episode_ends": ends,
            "env_steps_compared": n * (warmup + steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="LLMRepair-v0")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--steps", type=int, default=32, help="timed vector steps per configuration")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("results/sb3_vec_env"))
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or min(args.num_envs) < 1:
        parser.error("--steps and every --num-envs must be >= 1, --warmup >= 0")

    rows = [compare(args.env_id, n, args.steps, args.warmup, args.seed) for n in args.num_envs]
    lines = [f"{args.env_id}, random actions, {args.steps} timed vector steps after {args.warmup} untimed; "
             f"seed {args.seed}.", "",
             "| N | SB3VecEnv env-steps/s | DummyVecEnv env-steps/s | speed-up | identical obs/rewards/dones | "
             "episode ends compared |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['num_envs']} | {r['native_env_steps_per_s']:.1f} | {r['dummy_env_steps_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {'yes' if r['identical'] else 'NO'} ({r['env_steps_compared']} env-steps) | "
              f"{r['episode_ends']} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "sb3_vec_env.md").write_text(text + "\n")
    (args.out_dir / "sb3_vec_env.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                                "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Same seed, same actions, different torch thread counts: are trajectories bit-for-bit the same?

    python -m benchmarks.thread_reproducibility                  # tiny preset, 1 vs 2 threads (about 3 min)
    python -m benchmarks.thread_reproducibility --threads 1 2 4 --steps 32

Each thread count runs in a fresh interpreter (``torch.set_num_threads`` there, before any torch work),
resets ``--num-envs`` envs with ``--seed`` and plays the same uniformly random actions for ``--steps``
steps. The runs are compared with the first: whether observations, rewards, episode ends and the info's
scores are identical, the largest absolute differences, and the first step at which anything differs.
Writes ``thread_reproducibility.json`` and ``.md`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_RUN = """
import sys
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
import gymnasium as gym
import llm_repair_gym
from benchmarks.fuzz import _kwargs
num_envs, steps, seed, preset, out = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
env = gym.make_vec("LLMRepair-v0", num_envs=num_envs, **_kwargs(preset, None))
obs, info = env.reset(seed=seed)
rows = {"obs": [obs], "reward": [], "done": [], "score": [info["score"]]}
rng = np.random.default_rng(seed)
for _ in range(steps):
    obs, reward, terminated, truncated, info = env.step(rng.integers(env.single_action_space.n, size=num_envs))
    rows["obs"].append(obs); rows["reward"].append(reward); rows["done"].append(terminated | truncated)
    rows["score"].append(info["score"])
np.savez(out, **{k: np.stack(v) for k, v in rows.items()}, threads=torch.get_num_threads())
"""


def compare(base: dict, other: dict) -> dict:
    """Identity, largest absolute difference and first differing step of every recorded quantity."""
    out = {}
    first = None
    for key in ("obs", "reward", "done", "score"):
        a, b = base[key].astype(np.float64), other[key].astype(np.float64)
        differs = (a != b).reshape(len(a), -1).any(1)
        if differs.any():
            step = int(np.argmax(differs)) + (key in ("reward", "done"))  # obs and score start at the reset
            first = step if first is None else min(first, step)
        out[key] = {"identical": not differs.any(), "max_abs_diff": float(np.abs(a - b).max())}
    out["first_differing_step"] = first  # 0: the reset, k: the k-th step; None: nothing differs
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="LLMRepair-v0", choices=["LLMRepair-v0"])
    parser.add_argument("--preset", default="tiny", help="tiny (default), small, base or micro")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("results/reproducibility"))
    args = parser.parse_args(argv)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            out = Path(tmp) / f"run{threads}.npz"
            print(f"running with {threads} torch thread(s) ...", flush=True)
            subprocess.run([sys.executable, "-c", _RUN, str(threads), str(args.num_envs), str(args.steps),
                            str(args.seed), args.preset, str(out)], check=True)
            runs[threads] = dict(np.load(out))
    base = args.threads[0]
    results = {f"{base} vs {t}": compare(runs[base], runs[t]) for t in args.threads[1:]}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "thread_reproducibility.json").write_text(json.dumps({"args": {k: str(v) for k, v in
                                                                                    vars(args).items()},
                                                                          "results": results}, indent=1))
    lines = [f"{args.env_id}, preset `{args.preset}`, N={args.num_envs}, {args.steps} random steps, seed {args.seed}, "
             "CPU.", "", "| threads | obs | reward | episode ends | score | first differing step |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = ["identical" if r[k]["identical"] else f"max diff {r[k]['max_abs_diff']:.3g}"
                 for k in ("obs", "reward", "done", "score")]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['first_differing_step']} |")
    table = "\n".join(lines) + "\n"
    (args.out_dir / "thread_reproducibility.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

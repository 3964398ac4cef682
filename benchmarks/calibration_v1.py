"""Calibration of LLMRepair-v1's faults: the damage each fault (and each pair) does at reset, and what repairs buy.

For every fault set (each fault alone; with ``--pairs``, every pair) it makes ``--num-envs`` live instances
(``reset(options={"faults": ...})``, the same seeds for every strategy) and plays, from the same starts:

* ``documented``: the documented repair of the set (``faults_v1.documented_repair``; cut by the episode's
  budget like any action sequence);
* ``train_only``: ``train_all`` six times, then ``stop`` (what a rule that ignores the cause does);
* ``stop``: nothing (the objective is 0 by construction; the row shows the damage).

It reports, per set: test-accuracy damage at reset (healthy zoo model minus the instance), the test gain
and the objective (test gain minus the episode's compute price) of each strategy, and whether every
instance's documented repair gained test accuracy. Results go to ``results/calibration_v1/calibration_v1.json``
and a Markdown table to stdout.

    python -m benchmarks.calibration_v1 --num-envs 8 --seed 0          # singles, ~2 min on 2 cores
    python -m benchmarks.calibration_v1 --num-envs 4 --pairs            # and all 55 pairs
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from llm_repair_gym.envs.repair_v1 import LLMRepairV1VectorEnv
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.faults_v1 import FAULT_NAMES_V1, documented_repair

STRATEGIES = ("documented", "train_only")


def _plans(env: LLMRepairV1VectorEnv, info: dict, strategy: str) -> list[list[str]]:
    plans = []
    for i in range(env.num_envs):
        if strategy == "train_only":
            plans.append(["train_all"] * 6 + ["stop"])
            continue
        faults = [bool(info["faults"][name][i]) for name in FAULT_NAMES_V1]
        targets = [int(info["fault_targets"][name][i]) for name in FAULT_NAMES_V1]
        severities = [float(info["fault_severities"][name][i]) for name in FAULT_NAMES_V1]
        plans.append(documented_repair(faults, targets, severities))
    return plans


def play(env: LLMRepairV1VectorEnv, names: list[str], seed: int, strategy: str) -> dict:
    """Reset ``env`` on fault set ``names`` and play ``strategy``; per-env reset and end figures."""
    _, info = env.reset(seed=seed, options={"faults": names})
    start = {"test": np.asarray(info["test_score"], dtype=float),
             "healthy": np.mean([info["healthy_accuracy"][f] for f in FAMILIES], axis=0)}
    plans = _plans(env, info, strategy)
    end_test = np.full(env.num_envs, np.nan)
    objective = np.full(env.num_envs, np.nan)
    steps = np.zeros(env.num_envs, dtype=int)
    t = 0
    while np.isnan(objective).any():
        actions = [env.action_names.index(p[min(t, len(p) - 1)]) if np.isnan(objective[i]) else
                   env.action_names.index("stop") for i, p in enumerate(plans)]
        _, _, terminated, truncated, info = env.step(actions)
        t += 1
        for i in np.flatnonzero((terminated | truncated) & np.isnan(objective)):
            end_test[i] = info["final_info"]["test_score"][i]
            objective[i] = info["final_info"]["objective"][i]
            steps[i] = t
    return {"damage": start["healthy"] - start["test"], "gain": end_test - start["test"], "objective": objective,
            "steps": steps}


def calibrate(sets: list[list[str]], num_envs: int, seed: int, cost_weight: float) -> list[dict]:
    env = LLMRepairV1VectorEnv(num_envs=num_envs, instances="live", cost_weight=cost_weight, progress=False)
    rows = []
    for names in tqdm(sets, desc="fault sets", unit="set"):
        row: dict = {"faults": "+".join(names) or "none"}
        for strategy in STRATEGIES:
            out = play(env, names, seed, strategy)
            row["damage"] = float(out["damage"].mean())
            row["min_damage"] = float(out["damage"].min())
            row[strategy] = {"gain": float(out["gain"].mean()), "min_gain": float(out["gain"].min()),
                             "objective": float(out["objective"].mean()), "steps": float(out["steps"].mean())}
        row["documented_always_gains"] = row["documented"]["min_gain"] > 0 or row["faults"] == "none"
        rows.append(row)
    env.close()
    return rows


def table(rows: list[dict]) -> str:
    head = ("| faults | damage at reset (min) | documented: test gain (min) | objective | train_only: gain | "
            "objective |\n|---|---|---|---|---|---|")
    lines = [f"| {r['faults']} | {r['damage']:.3f} ({r['min_damage']:.3f}) | {r['documented']['gain']:.3f} "
             f"({r['documented']['min_gain']:.3f}) | {r['documented']['objective']:.3f} | "
             f"{r['train_only']['gain']:.3f} | {r['train_only']['objective']:.3f} |" for r in rows]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=8, help="instances per fault set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost-weight", type=float, default=0.003, help="the env's price centre")
    parser.add_argument("--pairs", action="store_true", help="every pair of faults too")
    parser.add_argument("--faults", nargs="*", default=None, help="only these singles (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results/calibration_v1/calibration_v1.json"))
    args = parser.parse_args(argv)
    singles = [[name] for name in (args.faults or FAULT_NAMES_V1)]
    sets = [[], *singles] + ([list(p) for p in itertools.combinations(FAULT_NAMES_V1, 2)] if args.pairs else [])
    rows = calibrate(sets, args.num_envs, args.seed, args.cost_weight)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"num_envs": args.num_envs, "seed": args.seed, "cost_weight": args.cost_weight,
                                    "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

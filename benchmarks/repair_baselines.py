"""No-op, random and oracle policies on the same seeded LLMRepair episodes, reported per fault type.

Columns: ``drop@reset`` mean worst-family accuracy deficit right after the fault, ``drop>=.25`` the share
of episodes where it is at least 0.25, ``oracle gap`` the oracle's remaining worst-family deficit at the
end, ``gap<=.05`` the share of episodes it repairs to within 0.05, ``steps`` the oracle's episode length.

    python benchmarks/repair_baselines.py --episodes 100 --num-envs 25 --seed 1000

Episode ``k`` starts from instance ``k`` of the bank's test split (wrapping around it) with seed
``seed + k``; ``--instances live`` injects a fresh fault from the seed instead (slow resets).

Evidence that the problem is worth solving: the oracle (privileged: it reads ``info["fault"]``) should
earn far more than no-op and random, and bring each fault back near healthy accuracy. Also checks the
fault calibration: at default severity each fault (except ``none``) costs its worst-hit family at least
0.25 exact-match accuracy, and the oracle's repair ends within 0.05 of healthy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agents.baselines import NoOpPolicy, OraclePolicy, RandomPolicy
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.faults import FAULT_NAMES
from llm_repair_gym.repair.instances import INSTANCE_MODES
from llm_repair_gym.rl.episodes import EpisodeRecord, run_episodes
from llm_repair_gym.runtime.precision import PRECISIONS


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% normal-approximation confidence interval."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan")
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def worst_drop(record: EpisodeRecord, which: str) -> float:
    """Largest accuracy deficit against healthy over families, at reset or at the end."""
    acc = record.reset_accuracy if which == "reset" else record.final_accuracy
    return max(record.healthy_accuracy[f] - acc[f] for f in FAMILIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="LLMRepair-v0", help="only LLMRepair-v0 is measured here")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000, help="episode k uses seed + k")
    parser.add_argument("--instances", default="test", choices=INSTANCE_MODES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    env = LLMRepairVectorEnv(num_envs=args.num_envs, device=args.device, autoreset_mode="Disabled",
                             instances=args.instances, precision=args.precision)
    seeds = [args.seed + k for k in range(args.episodes)]
    instances = None if env.bank is None else [k % env.bank.size for k in range(args.episodes)]
    names = env.action_names
    policies = {"noop": NoOpPolicy(names), "random": RandomPolicy(names, seed=args.seed),
                "oracle": OraclePolicy(names, env.feature_names)}
    results = {name: run_episodes(env, policy, seeds, desc=name, instances=instances)
               for name, policy in policies.items()}

    print(f"\n{args.episodes} episodes, seeds {seeds[0]}..{seeds[-1]}; return = mean ± 95% CI half-width")
    print(f"{'fault':<15}{'n':>4}{'drop@reset':>11}{'drop>=.25':>10}{'oracle gap':>11}{'gap<=.05':>9}"
          f"{'steps':>6}" + "".join(f"{p + ' return':>20}" for p in policies))
    table = {}
    for fault in (*FAULT_NAMES, "all"):
        rows = {p: [r for r in recs if fault in ("all", r.fault)] for p, recs in results.items()}
        if not rows["oracle"]:
            continue
        drops = np.array([worst_drop(r, "reset") for r in rows["oracle"]])
        gaps = np.array([worst_drop(r, "final") for r in rows["oracle"]])
        steps = np.mean([r.steps for r in rows["oracle"]])
        returns = {p: mean_ci([r.episode_return for r in recs]) for p, recs in rows.items()}
        table[fault] = {"n": len(rows["oracle"]), "drop_at_reset": drops.mean(), "drop_at_least_0.25": (
            drops >= 0.25).mean(), "oracle_final_gap": gaps.mean(), "oracle_gap_at_most_0.05": (gaps <= 0.05).mean(),
            "oracle_steps": steps, "returns": returns}
        print(f"{fault:<15}{len(rows['oracle']):>4}{drops.mean():>11.3f}{(drops >= 0.25).mean():>10.2f}"
              f"{gaps.mean():>11.3f}{(gaps <= 0.05).mean():>9.2f}{steps:>6.1f}"
              + "".join(f"{m:>12.3f} ± {h:<5.3f}" for m, h in returns.values()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"table": table, "episodes": {
            p: [r.__dict__ for r in recs] for p, recs in results.items()}}, indent=1, default=str))


if __name__ == "__main__":
    main()

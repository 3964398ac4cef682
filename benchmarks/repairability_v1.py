"""How much of each LLMRepair-v1 fault's damage ``train_all`` alone repairs, step by step: the measure a redesign of
v1's faults needs (the headroom study found that training alone, stopped at the right time, reaches 0.73 of the
planner, and that one plan for every entry reaches 0.87).

    python -m benchmarks.repairability_v1                                   # every fault at its table severity
    python -m benchmarks.repairability_v1 --faults weight_noise dead_units --severity weight_noise=10,15

For each fault, ``--envs`` live instances holding that fault alone (seeds 100, 101, ...) play, from their reset
state: ``train_all`` only; the fault's documented fixes, then ``train_all``; and, for a block fault,
``reinit_block<target>``, then ``train_all``. After ``k`` training steps (``k`` in :data:`GRID`, counted from the end
of each instance's own prefix) each is scored on
the test split (the privileged :meth:`score_test`), as the share of the fault's damage repaired:
``(score - score at reset) / (healthy score - score at reset)``, averaged over the instances whose damage is at
least :data:`MIN_DAMAGE` (a milder one has no scale: its share would be training noise over almost nothing; the
JSON counts them as ``too_mild``).

On ``--envs`` healthy live instances it also measures what each repair a plan could apply blindly
(:data:`CHEAP_REPAIRS`) costs where nothing is wrong: a repair that is free and harmless there belongs in every
plan, whatever the fault set.

``--severity NAME=LOW,HIGH`` draws that fault's severity from another range (a what-if: the fault table is swapped
for this process only), to ask whether a harsher fault stays repairable by training.

Outputs ``repairability_v1.json`` and ``repairability_v1.png`` (repaired share by training steps, one panel per
fault) in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np
import torch
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the env ids)
from agents.planner import documented_prefix, play_prefixes
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair import faults_v1

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GRID = (0, 1, 2, 4, 8, 12, 16, 24)
"""Training steps after the prefix at which a variant is scored."""
SEED = 100
MAX_PREFIX = 8  # the longest documented fixes of one fault (hidden_lr: one lr_down per half-decade) fit
MIN_DAMAGE = 0.02  # test accuracy an instance must have lost for its repaired share to count (8 train_all steps
# move a healthy model's test score by about that much)

@contextlib.contextmanager
def severities(ranges: dict[str, tuple[float, float]]):
    """Draw the named faults' severities from ``ranges`` inside the block (the fault table is swapped back after)."""
    table = faults_v1.FAULTS_V1
    faults_v1.FAULTS_V1 = tuple(dataclasses.replace(row, severity_low=ranges[row.name][0],
                                                    severity_high=ranges[row.name][1])
                                if row.name in ranges else row for row in table)
    try:
        yield
    finally:
        faults_v1.FAULTS_V1 = table


def measure(fault: str, envs: int) -> dict:
    """The damage at reset and the repaired share after each ``k`` of :data:`GRID`, per variant, for ``envs`` live
    instances holding ``fault`` alone."""
    env = _live_env(envs)
    try:
        seeds = list(range(SEED, SEED + envs))
        _, info = env.reset(seed=seeds, options={"faults": [fault]})
        start_state = env.get_state()
        healthy = np.mean([np.asarray(info["healthy_accuracy"][f]) for f in FAMILIES], axis=0)
        start = env.score_test()
        column = faults_v1.FAULT_NAMES_V1.index(fault)
        prefixes = {"train_all only": [() for _ in seeds], "documented fixes first": [
            documented_prefix(info, i) for i in range(envs)]}
        if faults_v1.FAULTS_V1[column].target_kind == "block":
            targets = env.state.fault_targets[:, column].tolist()
            prefixes["reinit_block<target> first"] = [(f"reinit_block{t}",) for t in targets]
        scaled = healthy - start >= MIN_DAMAGE
        out = {"damage": float(np.mean(healthy - start)), "too_mild": int((~scaled).sum()), "variants": {}}
        for name, plans in prefixes.items():
            steps = max(len(p) for p in plans) + GRID[-1]
            scored = play_prefixes(env, start_state, plans, steps, GRID, progress=False)
            shares = np.array([[(test - start[j]) / max(healthy[j] - start[j], MIN_DAMAGE) for test in r["test"]]
                               for j, r in enumerate(scored)])  # every slot reaches every k of GRID
            repaired = shares[scaled].mean(0) if scaled.any() else np.full(len(GRID), np.nan)  # NaN: none counts
            out["variants"][name] = {"prefixes": sorted({" ".join(p) for p in plans}),
                                     "repaired": {k: float(v) for k, v in zip(GRID, repaired)}}
        return out
    finally:
        env.close()


CHEAP_REPAIRS = ("reset_norms", "reset_optimizer", "lr_down", "refresh_data", "filter_noisy", "prune", "reinit_block0")
"""Repairs a plan could apply without knowing the fault: what each costs a healthy model is :func:`harm`'s question."""


def harm(envs: int) -> dict[str, dict[str, float]]:
    """What each of :data:`CHEAP_REPAIRS` does to ``envs`` healthy live instances: the test score change right after
    it and after 8 ``train_all`` steps, beside 8 ``train_all`` steps alone."""
    env = _live_env(envs)
    try:
        env.reset(seed=list(range(SEED, SEED + envs)), options={"faults": []})
        start_state, start = env.get_state(), env.score_test()
        out = {}
        for repair in (None, *CHEAP_REPAIRS):
            prefix = () if repair is None else (repair,)
            scored = play_prefixes(env, start_state, [prefix] * envs, len(prefix) + 8, (0, 8), progress=False)
            change = {k: float(np.mean([r["test"][r["k"].index(k)] - s for r, s in zip(scored, start)]))
                      for k in (0, 8)}
            row = {"after": change[0]} if repair is not None else {}
            out[repair or "train_all only"] = {**row, "after 8 train_all": change[8]}
        return out
    finally:
        env.close()


def _live_env(envs: int):
    """A v1 vector env of ``envs`` live instances whose budgets fit every variant (:func:`play_prefixes` sets them
    one step above the longest)."""
    return gym.make_vec("LLMRepair-v1", num_envs=envs, instances="live", autoreset_mode="Disabled", progress=False,
                        max_episode_steps=GRID[-1] + MAX_PREFIX + 1).unwrapped


def plot(report: dict, path: Path) -> Path:
    faults = list(report["faults"])
    cols = min(4, len(faults))
    rows = -(-len(faults) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, fault in zip(axes.flat, faults):
        for name, v in report["faults"][fault]["variants"].items():
            ax.plot([int(k) for k in v["repaired"]], list(v["repaired"].values()), marker="o", markersize=3,
                    label=name)
        severity = report["severities"].get(fault)
        ax.set_title(fault + (f" (severity {severity[0]:g}-{severity[1]:g})" if severity and any(severity) else ""),
                     fontsize=9)
        ax.axhline(1, color="grey", linewidth=0.8, linestyle=":")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("train_all steps after the prefix", fontsize=8)
    for ax in axes.flat[len(faults):]:
        ax.axis("off")
    axes[0][0].set_ylabel("share of the damage repaired")
    handles = {line.get_label(): line for ax in axes.flat for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    fig.legend(list(handles.values()), list(handles), fontsize=8, loc="lower right")
    fig.suptitle("LLMRepair-v1: how much of each fault training repairs (test split, live instances)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _range(text: str) -> tuple[str, tuple[float, float]]:
    name, _, bounds = text.partition("=")
    low, _, high = bounds.partition(",")
    try:
        values = float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--severity takes NAME=LOW,HIGH, got {text!r}") from None
    if name not in faults_v1.FAULT_NAMES_V1:
        raise argparse.ArgumentTypeError(f"--severity: {name!r} is not one of {faults_v1.FAULT_NAMES_V1}")
    return name, values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", nargs="+", choices=faults_v1.FAULT_NAMES_V1, default=list(faults_v1.FAULT_NAMES_V1))
    parser.add_argument("--severity", type=_range, action="append", default=[], metavar="NAME=LOW,HIGH")
    parser.add_argument("--envs", type=int, default=6, help="live instances per fault")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ranges = dict(args.severity)
    report = {"envs": args.envs, "seeds": [SEED, SEED + args.envs - 1], "grid": list(GRID), "severities": {},
              "faults": {}}
    with severities(ranges):
        for fault in tqdm(args.faults, desc="faults"):
            row = faults_v1.FAULTS_V1[faults_v1.FAULT_NAMES_V1.index(fault)]
            report["severities"][fault] = [row.severity_low, row.severity_high]
            report["faults"][fault] = measure(fault, args.envs)
            shares = "  ".join(f"{name}: " + " ".join(f"{v:.2f}" for v in variant["repaired"].values())
                               for name, variant in report["faults"][fault]["variants"].items())
            mild = report["faults"][fault]["too_mild"]
            tqdm.write(f"{fault:18s} damage {report['faults'][fault]['damage']:.3f}"
                       + (f" ({mild} too mild to count)" if mild else "") + f"  {shares}")
    report["healthy"] = harm(args.envs)
    for repair, row in report["healthy"].items():
        print(f"healthy, {repair:16s} " + "  ".join(f"{k} {v:+.4f}" for k, v in row.items()))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if not ranges else "-" + "-".join(f"{n}{lo:g}-{hi:g}" for n, (lo, hi) in ranges.items())
    (out / f"repairability_v1{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, out / f"repairability_v1{suffix}.png")
    return report


if __name__ == "__main__":
    main()

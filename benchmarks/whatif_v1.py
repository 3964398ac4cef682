"""What-ifs for LLMRepair-v1's headroom: would a dearer price or a tighter step budget put the rules far below the
planner? Measured, before anyone changes the env for it.

    python -m benchmarks.whatif_v1 --runs 3 --threads 2 --out benchmarks/results/whatif_v1.json

The headroom issue's bar (``benchmarks/headroom.py``) asks for the best observation-only rule policy at most
0.6 of the privileged planner. Two of v1's settings look as if they could get there without new faults:

* the **price** of compute (the env's ``cost_weight``; an episode's price is log-uniform around it): a dearer
  step makes every probe and every blind repair cost more, and the planner needs neither;
* the **step budget** (uniform in ``[MIN_BUDGET, max_episode_steps]``, 12 to 32 by default): a probe takes a
  step that a tight budget would rather spend on a repair, and the planner takes none.

Each cell of the grid (a price multiplier and a budget range) plays, on every entry of ``LLMRepair-Suite-v1``'s test
split and on the runner's episode seeds (runs ``1..--runs``): the no-op, the planner (the carried plan table: its
candidates were searched at the default price, and it chooses among them at each price and budget; a search at
another price could find better ones, so its "1" there is a floor of what search reaches), ``rules_v1``,
:class:`BlindRules` (``rules_v1`` with no diagnosis at all), the troubleshooter (its carried fit), and two of the
planner's restrictions (:func:`benchmarks.headroom.variants`): ``train_all`` alone and the one plan for every entry,
each with the planner's privileged stopping. Scores are normalized per entry as on the board (no-op 0, planner 1; an
entry where the planner gains less than :data:`~llm_repair_gym.bench.scores.MIN_GAP` is left out) with a whole-run
interval. The rules were tuned at the default settings: at others they are what they are, neither re-tuned nor told.

A budget floor below 12 is outside what the env accepts (``MIN_BUDGET``); this script lowers that module
constant inside its own process for the cells that ask for it, and nowhere else.

Writes ``--out`` (JSON), and beside it a PNG (each policy's normalized mean per cell, over every entry and over
those with more at stake) and a Markdown file (one row per cell; each policy's mean return as a share of the
planner's; and each cell split by the entries' stakes, the planner's gain over the no-op), which it also prints.
``--from-json`` writes the plot and tables of an earlier report.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np
import torch
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the env ids)
import llm_repair_gym.envs.repair_v1 as repair_v1
from agents.baselines import NoOpPolicy
from agents.loading import load_policy
from agents.planner import CARRIED, PlannerPolicy
from agents.rules_v1 import RulesV1Policy
from agents.troubleshooter import CARRIED as TROUBLESHOOTER
from benchmarks.headroom import BAR, ONE_PLAN, SUITE, TRAIN_ONLY, variants
from llm_repair_gym.bench.scores import MIN_GAP, run_mean_interval
from llm_repair_gym.envs.repair_v1 import LLMRepairV1VectorEnv
from llm_repair_gym.envs.suites import load_suite
from llm_repair_gym.rl.episodes import run_episodes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CELLS = ((1.0, 12, 32), (4.0, 12, 32), (1.0, 4, 10), (4.0, 4, 10), (8.0, 4, 10))
"""``(price multiplier, budget floor, max_episode_steps)``: the default first."""
STAKES = ((0.0, 0.2), (0.2, np.inf))
"""Bins of an entry's stakes: the planner's mean gain over the no-op (return). Below 0.2 the gain is a few times
the training noise (8 ``train_all`` steps move a healthy model's test score by about 0.02), and a small denominator
turns a small loss into a large negative normalized score."""
POLICIES = ("noop", "planner", "rules_v1", "blind_rules", "troubleshooter", TRAIN_ONLY, ONE_PLAN)


class BlindRules(RulesV1Policy):
    """``rules_v1`` without its diagnosis: ``stop`` where every family is fine, else ``reset_norms`` (free and
    harmless on nano), then ``rules_v1``'s training phase, which stops by the episode's price. The observation-only
    twin of the one-plan restriction: no probe, no privileged stopping."""

    def _script(self):
        row = yield ""
        if (self._accuracy(row) >= self.FINE).all():
            yield "stop"
            return
        row = yield "reset_norms"
        yield from self._train(row)


@contextlib.contextmanager
def budget_floor(steps: int):
    """``MIN_BUDGET`` set to ``steps`` for the block (see the module docstring)."""
    kept = repair_v1.MIN_BUDGET
    repair_v1.MIN_BUDGET = steps
    try:
        yield
    finally:
        repair_v1.MIN_BUDGET = kept


def policies(env, table: dict) -> dict:
    """Fresh policies for one run, by name (the table's restrictions played as the headroom study plays them)."""
    actions, features = list(env.action_names), list(env.feature_names)
    restricted = variants(table)
    return {"noop": NoOpPolicy(actions), "planner": PlannerPolicy(table),
            "rules_v1": RulesV1Policy(actions, features), "blind_rules": BlindRules(actions, features),
            "troubleshooter": load_policy(TROUBLESHOOTER),
            **{name: PlannerPolicy(*restricted[name]) for name in (TRAIN_ONLY, ONE_PLAN)}}


def play_cell(table: dict, multiplier: float, floor: int, top: int, runs: list[int]) -> dict[str, np.ndarray]:
    """``{policy: returns [runs, entries]}`` in one cell of the grid."""
    suite = load_suite(SUITE)
    entries = suite.entries("test")
    kwargs = suite.make_kwargs("test")
    default = inspect.signature(LLMRepairV1VectorEnv).parameters["cost_weight"].default
    kwargs["cost_weight"] = multiplier * kwargs.get("cost_weight", default)
    out = {name: np.zeros((len(runs), len(entries))) for name in POLICIES}
    with budget_floor(floor):
        env = gym.make_vec(suite.env_id, num_envs=len(entries), autoreset_mode="Disabled", progress=False,
                           max_episode_steps=top, **kwargs)
        try:
            for r, run in enumerate(runs):
                seeds = suite.episode_seeds("test", run)[:len(entries)]
                for name, policy in policies(env.unwrapped, table).items():
                    records = run_episodes(env, policy, seeds, progress=False, instances=[e.instance for e in entries],
                                           option=suite.reset_option)
                    by_seed = {rec.seed: rec.episode_return for rec in records}
                    out[name][r] = [by_seed[s] for s in seeds]
        finally:
            env.close()
    return out


def summarize(returns: dict[str, np.ndarray], faults: list[str]) -> dict:
    """One cell's normalized means (whole-run intervals) and by fault type (the entries holding it), the mean
    returns, and each entry's mean return per policy."""
    low, high = returns["noop"].mean(0), returns["planner"].mean(0)
    scaled = high - low >= MIN_GAP
    kept = [f.split("+") for f, s in zip(faults, scaled) if s]
    out = {"normalized_entries": int(scaled.sum()), "policies": {}, "entries": []}
    for name, x in returns.items():
        normalized = (x[:, scaled] - low[scaled]) / (high[scaled] - low[scaled])
        per_entry = normalized.mean(0)
        by_fault = {t: float(np.mean([v for v, names in zip(per_entry, kept) if t in names]))
                    for t in sorted({t for names in kept for t in names})}
        out["policies"][name] = {"normalized": run_mean_interval(normalized), "mean_return": float(x.mean()),
                                 "by_fault": by_fault}
    for k, fault in enumerate(faults):
        out["entries"].append({"fault": fault, "scaled": bool(scaled[k]),
                               **{name: float(x[:, k].mean()) for name, x in returns.items()}})
    return out


def _stakes_means(cell: dict, policy: str) -> dict[tuple[float, float], float]:
    """A cell's normalized mean of ``policy`` per stakes bin (:data:`STAKES`), from each entry's mean returns."""
    entries = [e for e in cell["entries"] if e["scaled"]]
    gain = np.array([e["planner"] - e["noop"] for e in entries])
    score = np.array([e[policy] - e["noop"] for e in entries]) / gain  # a scaled entry gains at least MIN_GAP
    return {(lo, hi): float(score[(gain >= lo) & (gain < hi)].mean()) for lo, hi in STAKES
            if ((gain >= lo) & (gain < hi)).any()}


def plot(report: dict, path: Path) -> Path:
    """Each policy's normalized mean (whole-run interval) per cell, and as a marker its mean over the entries where
    the planner gains at least 0.2 (:data:`STAKES`)."""
    cells = report["cells"]
    shown = [p for p in POLICIES if p not in ("noop", "planner")]
    fig, ax = plt.subplots(figsize=(11, 4.4))
    width = 0.8 / len(shown)
    for k, name in enumerate(shown):
        points = [c["policies"][name]["normalized"] for c in cells]
        x = np.arange(len(cells)) + (k - len(shown) / 2 + 0.5) * width
        y = [p["point"] for p in points]
        err = np.array([[p["point"] - p["ci95"][0], p["ci95"][1] - p["point"]] for p in points]).T
        ax.bar(x, y, width, yerr=err, capsize=2, label=name)
        ax.plot(x, [_stakes_means(c, name)[STAKES[-1]] for c in cells], "kD", markersize=4,
                label=f"the same, entries where the planner gains {STAKES[-1][0]:g} or more" if k == 0 else None)
    ax.axhline(report["bar"], color="red", linestyle="--", linewidth=1, label=f"the bar ({report['bar']})")
    ax.axhline(1, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(np.arange(len(cells)), [f"price x{c['price_multiplier']:g}\nbudget {c['budget'][0]}-{c['budget'][1]}"
                                          for c in cells])
    ax.set_ylabel("mean normalized score (no-op 0, planner 1)")
    ax.set_title(f"{SUITE} test: the rules against the planner as the price and the budget change")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown_table(report: dict) -> str:
    """One row per cell: each observation-only policy's and restriction's normalized mean with its whole-run
    interval, and the planner's mean return."""
    shown = POLICIES[2:]
    lines = ["| price | budget (steps) | " + " | ".join(_label(p) for p in shown)
             + " | planner's mean return |", "|---" * (len(shown) + 3) + "|"]
    for c in report["cells"]:
        cells = []
        for name in shown:
            n = c["policies"][name]["normalized"]
            cells.append(f"{n['point']:.2f} [{n['ci95'][0]:.2f}, {n['ci95'][1]:.2f}]")
        lines.append(f"| x{c['price_multiplier']:g} | {c['budget'][0]}-{c['budget'][1]} | " + " | ".join(cells)
                     + f" | {c['policies']['planner']['mean_return']:.3f} |")
    return "\n".join(lines) + "\n"


def returns_table(report: dict) -> str:
    """One row per cell: each policy's mean return as a share of the planner's (the entries weighted by their
    stakes, where the normalized mean weighs every entry alike)."""
    shown = POLICIES[2:]
    lines = ["| price | budget (steps) | " + " | ".join(_label(p) for p in shown) + " |",
             "|---" * (len(shown) + 2) + "|"]
    for c in report["cells"]:
        planner = c["policies"]["planner"]["mean_return"]
        lines.append(f"| x{c['price_multiplier']:g} | {c['budget'][0]}-{c['budget'][1]} | "
                     + " | ".join(f"{c['policies'][p]['mean_return'] / planner:.2f}" for p in shown) + " |")
    return "\n".join(lines) + "\n"


def tables(report: dict) -> str:
    """The Markdown file: the normalized means, the return shares and every cell by stakes."""
    return "\n".join((
        "**Normalized mean** (no-op 0, planner 1 per entry; whole-run interval):\n", markdown_table(report),
        "**Mean return as a share of the planner's** (entries weighed by their stakes):\n", returns_table(report),
        "**By the entry's stakes** (the planner's gain over the no-op; normalized mean):\n", stakes_table(report)))


def stakes_table(report: dict) -> str:
    """Per cell and stakes bin (:data:`STAKES`): the number of entries and each policy's normalized mean there."""
    shown = POLICIES[2:]
    lines = ["| price | budget (steps) | planner's gain over the no-op | entries | "
             + " | ".join(_label(p) for p in shown) + " |", "|---" * (len(shown) + 4) + "|"]
    for c in report["cells"]:
        gains = [e["planner"] - e["noop"] for e in c["entries"] if e["scaled"]]
        means = {p: _stakes_means(c, p) for p in shown}
        for lo, hi in means[shown[0]]:
            name = f"{lo:g} to {hi:g}" if np.isfinite(hi) else f"{lo:g} or more"
            lines.append(f"| x{c['price_multiplier']:g} | {c['budget'][0]}-{c['budget'][1]} | {name} | "
                         f"{sum(lo <= g < hi for g in gains)} | "
                         + " | ".join(f"{means[p][lo, hi]:.2f}" for p in shown) + " |")
    return "\n".join(lines) + "\n"


def _label(policy: str) -> str:
    return f"`{policy}`" if " " not in policy else policy


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="the runner's runs 1..RUNS (episode seeds)")
    parser.add_argument("--table", default=str(CARRIED), help="the planner's plan table folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/whatif_v1.json")
    parser.add_argument("--from-json", metavar="JSON", help="write the tables and the plot of a report this script "
                        "wrote before (beside --out), playing nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        return write(report, out)
    if args.runs < 2:
        parser.error(f"--runs must be >= 2 (an interval over runs needs two), got {args.runs}")
    torch.set_num_threads(args.threads)
    table = json.loads((Path(args.table) / "plans.json").read_text())
    runs = list(range(1, args.runs + 1))
    faults = [e.fault for e in load_suite(SUITE).entries("test")]
    started = time.perf_counter()
    cells = []
    for multiplier, floor, top in tqdm(CELLS, desc="what-if cells"):
        cell = summarize(play_cell(table, multiplier, floor, top, runs), faults)
        cells.append({"price_multiplier": multiplier, "budget": [floor, top], **cell})
    report = {"suite": SUITE, "split": "test", "runs": runs, "threads": args.threads,
              "seconds": round(time.perf_counter() - started, 1),
              "command": "python -m benchmarks.whatif_v1 " + " ".join(sys.argv[1:] if argv is None else argv),
              "bar": BAR["best_rules_mean_at_most"], "cells": cells}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return write(report, out)


def write(report: dict, out: Path) -> dict:
    """The report's plot and tables beside ``out`` (``.png``, ``.md``); the tables printed too."""
    plot(report, out.with_suffix(".png"))
    text = tables(report)
    out.with_suffix(".md").write_text(text)
    print(text, end="")
    return report


if __name__ == "__main__":
    main()

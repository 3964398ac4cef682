"""Headroom on LLMRepair-v1: where the rules, the troubleshooter and the learners stand between the no-op and the
privileged planner, entry by entry, and whether the planner's search has converged.

    llm-repair-gym run --agents noop random rules_v1 troubleshooter documented planner \\
        --suite LLMRepair-Suite-v1 --split test --seeds 10 --out-dir benchmarks/leaderboard-v1
    python -m benchmarks.headroom benchmarks/leaderboard-v1/episodes --out-dir benchmarks/leaderboard-v1

It reads the runner's results on ``LLMRepair-Suite-v1``'s test split and normalizes them as the board does
(:mod:`llm_repair_gym.bench.scores`: per entry, the no-op's mean return is 0 and the planner's is 1). It also
plays, on the same episodes as the runner's runs, the planner at every lower search effort
(:class:`agents.planner.PlannerPolicy` with ``effort=e``: only the candidates of the first ``e`` levels), so
the reader sees how the ceiling grows with search and what it costs (rollout steps per entry), and three
restrictions that split the planner's value, each trained for as long as the rollouts say pays (the planner's
privileged stopping): ``train_all`` alone; the documented repair's fixes; and **one plan for every entry**, the
prefix whose estimated objective summed over the entries is best (at the reference price), played whatever the
fault set. What ``train_all`` alone reaches, any rule that trains while it pays can reach too; the one-plan
variant bounds from below what a policy that reads nothing but when to stop can get, so the planner's lead
over it is the most that knowing the fault set is worth on this suite.

The analytic cap of an entry and run is what restoring the healthy model would score at the cheapest compute a
known repair needs: (healthy test score - test score at reset) - price x the compute of the documented repair's
non-training actions. It ignores the training most repairs need, so it bounds every policy from above up to the
test score's noise.

Outputs: ``headroom.json`` (per agent: the normalized mean with a whole-run interval, the mean return, by
fault type and by fault-set size; the planner's variants, with the search cost by effort; per entry the references,
the cap and every agent's mean return; the issue's bar on the best observation-only rule policy) and
``headroom.png`` (mean normalized score per fault type: every agent, ``train_all`` alone, the cap).
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections import defaultdict
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np
import torch
from tqdm.auto import tqdm

import llm_repair_gym  # noqa: F401  (registers the env ids)
from agents.planner import CARRIED, ROLLOUT_STEPS, TAIL_GRID, PlannerPolicy, estimates
from llm_repair_gym.bench.plots import agent_colors
from llm_repair_gym.bench.results import read_many
from llm_repair_gym.bench.scores import entry_bounds, run_mean_interval, score_matrices
from llm_repair_gym.envs.repair_v1 import LLMRepairV1VectorEnv
from llm_repair_gym.envs.suites import load_suite
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.rl.episodes import run_episodes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SUITE = "LLMRepair-Suite-v1"
RULES = ("rules_v1", "troubleshooter", "heuristic")
"""Observation-only rule policies: the bar is on the best of them."""
TRAIN_ONLY = "train_all only, privileged stop"
ONE_PLAN = "one plan for every entry, privileged stop"
BAR = {"best_rules_mean_at_most": 0.6, "best_rules_upper_below": 0.7, "planner_lead_at_least": 0.3}


def one_plan(table: dict) -> list[str]:
    """The prefix, among those every entry's search tried, whose best estimated objective (over training lengths, at
    the reference price with the longest budget) summed over the entries is highest."""
    default = inspect.signature(LLMRepairV1VectorEnv).parameters["cost_weight"].default
    price, penalty = load_suite(SUITE).make_kwargs("test").get("cost_weight", default), table["crash_penalty"]
    totals: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for e in table["entries"]:
        for c in e["candidates"]:
            value = estimates(c, len(c["prefix"]), e["test_start"], price, penalty, ROLLOUT_STEPS)
            totals[tuple(c["prefix"])].append(float(value.max()))
    tried = {p: v for p, v in totals.items() if len(v) == len(table["entries"])}
    return list(max(tried, key=lambda p: sum(tried[p])))


def variants(table: dict) -> dict[str, tuple[dict, int]]:
    """The planner's restrictions played beside it: ``{name: (plan table, effort)}``. Each lower effort; and three
    that split its value: ``train_all`` alone, the documented repair's fixes and :func:`one_plan`, each then
    trained for as long as the rollouts say pays (the planner's privileged stopping)."""
    def only(keep) -> dict:
        return {**table, "entries": [{**e, "candidates": [c for c in e["candidates"] if keep(e, c)]}
                                     for e in table["entries"]]}

    out = {f"planner, effort {e}": (table, e) for e in range(1, table["levels"])}
    out[TRAIN_ONLY] = (only(lambda e, c: c["prefix"] == []), 1)
    out["documented fixes, privileged stop"] = (only(lambda e, c: c["prefix"] == e["documented_prefix"]), 1)
    blind = one_plan(table)
    out[ONE_PLAN] = (only(lambda e, c: c["prefix"] == blind), table["levels"])
    return out


def play(table: dict, effort: int, runs: list[int]) -> dict[int, dict[int, float]]:
    """``{run: {entry index: return}}``: the planner of ``table`` at ``effort`` on every entry of every run, on the
    runner's episodes (the suite's episode seeds, one env per entry)."""
    suite = load_suite(SUITE)
    entries = suite.entries("test")
    env = gym.make_vec(suite.env_id, num_envs=len(entries), autoreset_mode="Disabled", progress=False,
                       **suite.make_kwargs("test"))
    out = {}
    try:
        for run in runs:
            seeds = suite.episode_seeds("test", run)[:len(entries)]
            records = run_episodes(env, PlannerPolicy(table, effort), seeds, progress=False,
                                   instances=[e.instance for e in entries], option=suite.reset_option)
            by_seed = {r.seed: r.episode_return for r in records}
            out[run] = {e.index: by_seed[s] for e, s in zip(entries, seeds)}
    finally:
        env.close()
    return out


def caps(table: dict, runs: list[int]) -> dict[int, dict[int, float]]:
    """``{run: {entry index: analytic cap}}`` (see the module docstring)."""
    suite = load_suite(SUITE)
    entries = suite.entries("test")
    env = gym.make_vec(suite.env_id, num_envs=len(entries), autoreset_mode="Disabled", progress=False,
                       **suite.make_kwargs("test")).unwrapped
    units = {a.name: a.flops / env.flops_ref for a in env.actions}
    prefix = {e["index"]: e["documented_prefix"] for e in table["entries"]}
    out = {}
    try:
        for run in runs:
            seeds = suite.episode_seeds("test", run)[:len(entries)]
            _, info = env.reset(seed=seeds, options={"instance": np.array([e.instance for e in entries])})
            out[run] = {}
            for k, e in enumerate(entries):
                healthy = np.mean([info["healthy_accuracy"][f][k] for f in FAMILIES])
                compute = sum(units[a] for a in prefix[e.index])
                out[run][e.index] = float(healthy - info["test_score"][k] - info["price"][k] * compute)
    finally:
        env.close()
    return out


def summarize(records: list[dict], table: dict, played: dict, cap: dict) -> dict:
    """Every figure of ``headroom.json`` (see the module docstring)."""
    scores, facts = score_matrices(records)
    bounds = entry_bounds(records)
    kept = sorted(bounds)
    low, high = (np.array([bounds[i][k] for i in kept]) for k in (0, 1))
    raw = defaultdict(lambda: defaultdict(dict))
    for r in records:
        raw[r["agent"]][r["seed"]][r["index"]] = r["return"]
    faults = {e["index"]: e["fault"] for e in table["entries"]}

    def normalize(returns: dict[int, dict[int, float]]) -> np.ndarray:
        """Returns ``{run: {entry: return}}`` as normalized scores ``[runs, scaled entries]``."""
        x = np.array([[returns[s][i] for i in kept] for s in sorted(returns)])
        return (x - low) / (high - low)

    def breakdown(x: np.ndarray) -> dict:
        by_type, by_size = defaultdict(list), defaultdict(list)
        for j, i in enumerate(kept):
            names = faults[i].split("+")
            for name in names:
                by_type[name].append(x[:, j].mean())
            by_size[len(names)].append(x[:, j].mean())
        return {"by_fault": {k: float(np.mean(v)) for k, v in sorted(by_type.items())},
                "by_set_size": {str(k): float(np.mean(v)) for k, v in sorted(by_size.items())}}

    agents = {}
    for agent, x in scores.items():
        agents[agent] = {"normalized": run_mean_interval(x), "mean_return": facts["agents"][agent]["mean_return"],
                         "mean_steps": facts["agents"][agent]["mean_steps"], **breakdown(x)}
    cap_x = normalize(cap)
    agents["analytic cap"] = {"normalized": run_mean_interval(cap_x),
                              "mean_return": float(np.mean([v for run in cap.values() for v in run.values()])),
                              **breakdown(cap_x)}
    planner_runs = {s: {i: raw["planner"][s][i] for i in raw["planner"][s]} for s in raw["planner"]}
    levels = {}
    for name, returns in [*played.items(), (f"planner, effort {table['levels']}", planner_runs)]:
        x = normalize(returns)
        levels[name] = {"normalized": run_mean_interval(x),
                        "mean_return": float(np.mean([v for run in returns.values() for v in run.values()])),
                        **breakdown(x)}
        if name.startswith("planner, effort"):
            effort = int(name.rsplit(" ", 1)[1])
            candidates = float(np.mean([sum(c["level"] <= effort for c in e["candidates"]) for e in table["entries"]]))
            levels[name] |= {"candidates_per_entry": candidates, "rollout_steps_per_entry": candidates * ROLLOUT_STEPS,
                             "test_scorings_per_entry": candidates * len(TAIL_GRID)}
    rules = [a for a in RULES if a in agents]
    best = max(rules, key=lambda a: agents[a]["normalized"]["point"]) if rules else None
    bar = None
    if best is not None:
        point, (_, upper) = agents[best]["normalized"]["point"], agents[best]["normalized"]["ci95"]
        bar = {"best_rules": best, "mean": point, "upper": upper, "planner_lead": 1.0 - point, **BAR,
               "met": bool(point <= BAR["best_rules_mean_at_most"] and upper < BAR["best_rules_upper_below"]
                           and 1.0 - point >= BAR["planner_lead_at_least"])}
    entries = [{"index": i, "fault": faults[i], "scaled": i in bounds, "cap": float(np.mean([cap[s][i] for s in cap])),
                **{a: float(np.mean([raw[a][s][i] for s in raw[a]])) for a in raw}} for i in sorted(faults)]
    return {"suite": SUITE, "split": "test", "runs": {a: len(raw[a]) for a in raw}, "normalized_entries": len(kept),
            "entries_total": len(entries), "agents": agents, "planner_variants": levels, "one_plan": one_plan(table),
            "bar": bar, "entries": entries}


def plot(report: dict, path: Path) -> Path:
    """Mean normalized score per fault type, one bar per agent (ranked by mean), the cap as a line."""
    agents = sorted((a for a in report["agents"] if a != "analytic cap"),
                    key=lambda a: -report["agents"][a]["normalized"]["point"])
    colors = agent_colors(agents)
    faults = list(report["agents"]["planner"]["by_fault"])
    width = 0.8 / len(agents)
    fig, ax = plt.subplots(figsize=(max(10, 1.1 * len(faults)) + 3, 4.8))
    for k, agent in enumerate(agents):
        values = [report["agents"][agent]["by_fault"].get(f, np.nan) for f in faults]
        ax.bar(np.arange(len(faults)) + (k - len(agents) / 2 + 0.5) * width, values, width, color=colors[agent],
               label=f"{agent} ({report['agents'][agent]['normalized']['point']:.2f})")
    restrictions = {TRAIN_ONLY: ("train_all only", "o"),
                    ONE_PLAN: (f"one plan for every entry ({' + '.join(report['one_plan'])})", "D")}
    for name, (label, marker) in restrictions.items():
        variant = report["planner_variants"][name]
        ax.plot(np.arange(len(faults)), [variant["by_fault"].get(f, np.nan) for f in faults], marker, color="grey",
                label=f"{label}, privileged stop ({variant['normalized']['point']:.2f})")
    cap = [report["agents"]["analytic cap"]["by_fault"].get(f, np.nan) for f in faults]
    ax.plot(np.arange(len(faults)), cap, "k_", markersize=22, markeredgewidth=2, label="analytic cap")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(np.arange(len(faults)), faults, rotation=30, ha="right")
    ax.set_ylabel("mean normalized score (no-op 0, planner 1)")
    ax.set_ylim(max(-1.0, ax.get_ylim()[0]), ax.get_ylim()[1])
    ax.set_title(f"{SUITE} test: headroom per fault type (entries holding it; mean over runs)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="runner results (files or folders) on the v1 test split")
    parser.add_argument("--table", default=str(CARRIED), help="the planner's plan table folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", default="benchmarks/leaderboard-v1")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = read_many(args.results)
    if {r["suite"] for r in records} != {SUITE} or {r["split"] for r in records} != {"test"}:
        raise SystemExit(f"headroom reads results of {SUITE}'s test split only")
    table = json.loads((Path(args.table) / "plans.json").read_text())
    runs = sorted({r["seed"] for r in records if r["agent"] == "planner"})
    played = {name: play(t, effort, runs) for name, (t, effort) in
              tqdm(variants(table).items(), desc="planner variants")}
    report = summarize(records, table, played, caps(table, runs))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "headroom.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, out / "headroom.png")
    for agent, a in sorted(report["agents"].items(), key=lambda item: -item[1]["normalized"]["point"]):
        n = a["normalized"]
        print(f"{agent:16s} normalized {n['point']:+.3f} [{n['ci95'][0]:+.3f}, {n['ci95'][1]:+.3f}]  "
              f"return {a['mean_return']:+.3f}")
    for name, level in report["planner_variants"].items():
        print(f"{name:36s} normalized {level['normalized']['point']:+.3f}, return {level['mean_return']:+.3f}")
    print("bar:", json.dumps(report["bar"]))
    return report


if __name__ == "__main__":
    main()

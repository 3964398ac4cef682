"""Leaderboard scores: per-entry normalized scores and rliable aggregates with intervals.

Scores. For suite entry ``i``, an episode's normalized score is ``(R - low_i) / (high_i - low_i)``, where
``low_i`` and ``high_i`` are the mean returns on that entry, over the results' runs, of the suite's two
references: the no-op and the privileged oracle (on ``LLMMetaRepair-Suite-v0``, whose start models are not
healthy ones an oracle could return to, the no-op and the observation-only heuristic). So no-op = 0 and
oracle = 1, entry by entry. An entry where the upper reference gains less than :data:`MIN_GAP` over the
no-op (every ``none`` fault: the best repair of a healthy model is to stop) has no scale; it is left out of
the normalized aggregates, listed in the output, and the table's ``unscaled`` column shows the raw mean
return there (0 is best).

Aggregates over runs x entries, with rliable (Agarwal et al., 2021): the interquartile mean (IQM), the
mean and the optimality gap (1 - score, clipped at 1, averaged), each with a 95% stratified-bootstrap
interval over runs; the probability that an agent improves on the one ranked below it; performance profiles
(the fraction of runs x entries scoring above each threshold). Agents are ranked by IQM. Each agent's
bootstraps start from the same seed, so its figures depend on its own runs alone: adding an agent to the
results leaves every other row's intervals as they were (only the probability of improvement, which pairs
neighbours in the ranking, changes where the neighbours do).

rliable's stratified bootstrap draws a run for each entry on its own, as if one run's entries were
independent of each other. A trained agent's runs are not: a seed that trained badly is bad on every entry.
So the mean also gets a second interval, :data:`RUN_MEAN`, from resampling whole runs (each run's mean over
the entries), which is wider where training seeds differ and is the one to read when comparing learners.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.envs.suites import load_suite

MIN_GAP = 0.02  # an entry whose upper reference gains less than this over the no-op is not normalized
REPS = 2000  # bootstrap resamples
METRICS = ("IQM", "mean", "optimality gap")  # rliable's, with stratified-bootstrap intervals
RUN_MEAN = "mean, runs resampled"  # the mean with an interval from resampling whole runs
COLUMNS = ("IQM", "mean", RUN_MEAN, "optimality gap")  # as the table and the interval plot show them


def score_matrices(records: list[dict]) -> tuple[dict[str, np.ndarray], dict]:
    """``({agent: scores [runs, entries]}, facts)``: normalized scores over the entries the references scale.

    ``facts`` holds the suite, split, entries used and left out, and the per-agent raw figures. Every agent
    must cover the same entries in each of its runs; records of several suites or splits are refused.
    """
    keys, by_agent, entries, raw = _returns(records)
    suite, _, split = next(iter(keys))
    low_ref, high_ref = load_suite(suite).references
    low, high, scaled = _reference_bounds(raw, suite)
    scores = {agent: (x[:, scaled] - low[scaled]) / (high[scaled] - low[scaled]) for agent, x in raw.items()}
    faults = [sorted({run[i]["fault"] for run in by_agent[high_ref].values()}) for i in entries]
    facts = {"suite": suite, "suite_hash": next(iter(keys))[1], "split": split, "references": [low_ref, high_ref],
             "entries": len(entries),
             "normalized_entries": int(scaled.sum()),
             "unscaled_entries": [{"index": i, "faults": f} for i, f, s in zip(entries, faults, scaled) if not s],
             "agents": {}}
    known = registered_agents()
    for agent, runs in by_agent.items():
        flat = [r for run in runs.values() for r in run.values()]
        fault_of = np.array([[runs[s][i]["fault"] for i in entries] for s in sorted(runs)])[:, scaled]
        per_fault = {f: float(scores[agent][fault_of == f].mean()) for f in sorted(set(fault_of.ravel()))}
        unscaled = [k for k, s in enumerate(scaled) if not s]
        facts["agents"][agent] = {
            "runs": len(runs), "episodes": len(flat), "mean_return": float(raw[agent].mean()),
            "unscaled_mean_return": float(raw[agent][:, unscaled].mean()) if unscaled else None,
            "mean_steps": float(np.mean([r["steps"] for r in flat])),
            "mean_flops": float(np.mean([r["flops"] for r in flat])),
            "mean_safety_cost": float(np.mean([r["safety_cost"] for r in flat])),
            "crash_rate": float(np.mean([r["crashed"] for r in flat])),
            "stop_rate": float(np.mean([r["actions"][-1] == "stop" for r in flat])),
            "normalized_by_fault": per_fault, "config_hash": flat[0]["config_hash"],
            "package_version": flat[0]["package_version"],
            "git_commits": list(dict.fromkeys(r["git_commit"] for r in flat)),  # in run order
            "description": known[agent].description if agent in known else flat[0]["agent_config"].get(
                "description", ""),
        }
    return scores, facts


def entry_bounds(records: list[dict]) -> dict[int, tuple[float, float]]:
    """``{entry index: (low, high)}`` on every entry the references scale: the mean returns of the suite's two
    references there, which :func:`score_matrices` normalizes by (for episodes played outside the runner, as
    ``benchmarks/headroom.py`` and ``benchmarks/lookahead_v0.py`` do)."""
    keys, _, entries, raw = _returns(records)
    low, high, scaled = _reference_bounds(raw, next(iter(keys))[0])
    return {i: (float(a), float(b)) for i, a, b, s in zip(entries, low, high, scaled) if s}


def _returns(records: list[dict]) -> tuple[set, dict, list[int], dict[str, np.ndarray]]:
    """The records' (suite, hash, split), ``{agent: {seed: {entry: record}}}``, the entries, and each agent's
    returns ``[runs, entries]``; refuses records of several suites or splits and runs of other entries."""
    keys = {(r["suite"], r["suite_hash"], r["split"]) for r in records}
    if len(keys) != 1:
        raise ValueError(f"results mix suites or splits: {sorted(k[0::2] for k in keys)}; rank one at a time")
    by_agent: dict[str, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        by_agent[r["agent"]][r["seed"]][r["index"]] = r
    entries = sorted({i for runs in by_agent.values() for run in runs.values() for i in run})
    for agent, runs in by_agent.items():
        for seed, run in runs.items():
            if sorted(run) != entries:
                raise ValueError(f"{agent} seed {seed} covers {len(run)} of the {len(entries)} entries the results "
                                 "hold; every run must play the same entries")
    raw = {agent: np.array([[runs[s][i]["return"] for i in entries] for s in sorted(runs)]) for agent, runs in
           by_agent.items()}
    return keys, by_agent, entries, raw


def _reference_bounds(raw: dict[str, np.ndarray], suite: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entry: the mean returns of the suite's lower and upper references, and whether they scale it (the
    upper gains at least :data:`MIN_GAP`)."""
    low_ref, high_ref = load_suite(suite).references
    missing = [name for name in (low_ref, high_ref) if name not in raw]
    if missing:
        raise ValueError(f"no results for {missing}: the normalization needs runs of {[low_ref, high_ref]}")
    low, high = raw[low_ref].mean(0), raw[high_ref].mean(0)
    return low, high, high - low >= MIN_GAP


def aggregate(scores: dict[str, np.ndarray], seed: int = 0) -> dict:
    """IQM, mean and optimality gap with 95% stratified-bootstrap intervals, the mean with a whole-run
    interval (:func:`run_mean_interval`), ranked by IQM, and the probability of improvement of each agent over
    the next one down."""
    from rliable import library as rly
    from rliable import metrics

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])

    points, intervals = {}, {}
    for agent, x in scores.items():  # each agent's bootstrap starts from the seed: other rows never move its figures
        np.random.seed(seed)  # rliable's bootstraps draw (part of) their indices from numpy's global generator
        p, ci = rly.get_interval_estimates({agent: x}, func, reps=REPS, random_state=np.random.RandomState(seed))
        points[agent], intervals[agent] = p[agent], ci[agent]
    ranked = sorted(scores, key=lambda a: -points[a][0])
    board = {a: {m: {"point": float(points[a][k]), "ci95": [float(intervals[a][0, k]), float(intervals[a][1, k])]}
                 for k, m in enumerate(METRICS)} for a in ranked}
    for agent in ranked:
        board[agent][RUN_MEAN] = run_mean_interval(scores[agent], seed)
    improvement = []
    for upper, lower in zip(ranked, ranked[1:]):
        if scores[upper].shape[1] != scores[lower].shape[1]:
            continue
        np.random.seed(seed)
        p, ci = rly.get_interval_estimates({"pair": (scores[upper], scores[lower])},
                                           metrics.probability_of_improvement, reps=REPS // 4,
                                           random_state=np.random.RandomState(seed))
        low, high = np.ravel(ci["pair"])
        improvement.append({"agent": upper, "over": lower, "probability": float(np.ravel(p["pair"])[0]),
                            "ci95": [float(low), float(high)]})
    return {"ranking": ranked, "metrics": board, "probability_of_improvement": improvement}


def run_mean_interval(scores: np.ndarray, seed: int = 0) -> dict:
    """The mean of ``scores [runs, entries]`` with a 95% percentile interval from resampling whole runs
    (:data:`REPS` times): the spread a new set of training seeds would show."""
    per_run = scores.mean(1)
    draws = np.random.default_rng(seed).integers(0, len(per_run), (REPS, len(per_run)))
    low, high = np.percentile(per_run[draws].mean(1), [2.5, 97.5])
    return {"point": float(scores.mean()), "ci95": [float(low), float(high)]}

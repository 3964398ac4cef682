"""benchmarks/headroom.py: normalization against the planner, the breakdowns, the planner's variants and the bar,
on hand-made results of LLMRepair-Suite-v1's test split."""

import numpy as np
import pytest

from benchmarks.headroom import BAR, ONE_PLAN, TRAIN_ONLY, one_plan, plot, summarize, variants
from llm_repair_gym.envs.suites import load_suite

SUITE = "LLMRepair-Suite-v1"


def _records(returns: dict[str, np.ndarray]) -> list[dict]:
    """Results lines of ``{agent: returns [runs, entries]}`` on the suite's test split."""
    suite = load_suite(SUITE)
    entries = suite.entries("test")
    out = []
    for agent, x in returns.items():
        for run, row in enumerate(x, start=1):
            for e, value in zip(entries, row):
                out.append({"suite": SUITE, "suite_hash": suite.content_hash, "split": "test", "agent": agent,
                            "seed": run, "index": e.index, "fault": e.fault, "return": float(value), "steps": 3,
                            "flops": 1.0, "safety_cost": 0.0, "crashed": False, "actions": ["train_all", "stop"],
                            "config_hash": agent, "package_version": "x", "git_commit": None,
                            "agent_config": {"description": agent}})
    return out


def _table(n: int) -> dict:
    suite = load_suite(SUITE)
    candidate = {"prefix": [], "level": 1, "k": [0], "test": [0.5], "units": [0.0], "crashes": [0]}
    return {"levels": 3, "crash_penalty": 1.0,
            "entries": [{"index": e.index, "fault": e.fault, "documented_prefix": [], "test_start": 0.0,
                                      "candidates": [candidate, {**candidate, "prefix": ["reset_norms"], "level": 2}]}
                                     for e in suite.entries("test")[:n]]}


def test_headroom_normalizes_to_the_planner_and_judges_the_bar(tmp_path):
    n = len(load_suite(SUITE).entries("test"))
    rng = np.random.default_rng(0)
    planner = 0.5 + 0.1 * rng.random((3, n))
    returns = {"noop": np.zeros((3, n)), "planner": planner, "rules_v1": 0.5 * planner.mean(0) + np.zeros((3, n)),
               "troubleshooter": 0.9 * planner.mean(0) + np.zeros((3, n))}
    table = _table(n)
    half = {run: {i: 0.25 * planner[:, i].mean() for i in range(n)} for run in (1, 2, 3)}
    played = {"planner, effort 1": half, TRAIN_ONLY: half, ONE_PLAN: half}
    cap = {run: {i: 1.0 for i in range(n)} for run in (1, 2, 3)}
    report = summarize(_records(returns), table, played, cap)
    agents = report["agents"]
    assert agents["planner"]["normalized"]["point"] == pytest.approx(1.0)
    assert agents["rules_v1"]["normalized"]["point"] == pytest.approx(0.5)
    assert agents["troubleshooter"]["normalized"]["point"] == pytest.approx(0.9)
    assert report["planner_variants"][TRAIN_ONLY]["normalized"]["point"] == pytest.approx(0.25)
    assert report["planner_variants"]["planner, effort 1"]["candidates_per_entry"] == 1
    assert report["planner_variants"]["planner, effort 3"]["candidates_per_entry"] == 2
    assert set(agents["rules_v1"]["by_fault"]) == {f for e in table["entries"] for f in e["fault"].split("+")}
    # the bar is on the best rule policy: here the troubleshooter, at 0.9 of the planner
    assert report["bar"]["best_rules"] == "troubleshooter" and not report["bar"]["met"]
    met = summarize(_records({**returns, "troubleshooter": returns["rules_v1"]}), table, played, cap)["bar"]
    assert met["best_rules"] in ("rules_v1", "troubleshooter") and met["met"]
    assert met["mean"] <= BAR["best_rules_mean_at_most"]
    assert plot(report, tmp_path / "headroom.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_variants_split_the_planners_candidates():
    table = _table(3)
    table["entries"][0]["documented_prefix"] = ["reset_norms"]
    out = variants(table)
    assert set(out) == {"planner, effort 1", "planner, effort 2", TRAIN_ONLY, "documented fixes, privileged stop",
                        ONE_PLAN}
    train_only, _ = out[TRAIN_ONLY]
    assert all([c["prefix"] for c in e["candidates"]] == [[]] for e in train_only["entries"])
    documented, _ = out["documented fixes, privileged stop"]
    assert [c["prefix"] for c in documented["entries"][0]["candidates"]] == [["reset_norms"]]
    assert table["entries"][0]["candidates"][1]["prefix"] == ["reset_norms"]  # the table itself is untouched


def test_one_plan_is_the_prefix_best_summed_over_the_entries_not_any_entrys_best():
    table = _table(3)
    best_alone = [0.9, 0.0, 0.0]  # "reset_norms" wins entry 0 by far, loses the other two
    for e, value in zip(table["entries"], best_alone):
        e["candidates"][0]["test"] = [0.5]
        e["candidates"][1]["test"] = [value]
        e["candidates"].append({**e["candidates"][0], "prefix": ["lr_down"], "test": [0.3]})
    del table["entries"][2]["candidates"][2]  # a prefix not every entry tried is no candidate
    assert one_plan(table) == []
    table["entries"][0]["candidates"][1]["test"] = [2.0]
    assert one_plan(table) == ["reset_norms"]
    blind, effort = variants(table)[ONE_PLAN]
    assert all([c["prefix"] for c in e["candidates"]] == [["reset_norms"]] for e in blind["entries"])

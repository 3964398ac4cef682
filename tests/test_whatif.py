"""benchmarks/whatif_v1.py: the budget floor is lowered inside its block only, and a cell's scores are normalized
as the board normalizes them (no-op 0, planner 1, entries without a scale left out)."""

import gymnasium as gym
import numpy as np
import pytest

import llm_repair_gym.envs.repair_v1 as repair_v1
from benchmarks import whatif_v1 as whatif


def test_budget_floor_is_lowered_inside_its_block_only():
    with pytest.raises(RuntimeError), whatif.budget_floor(4):
        assert repair_v1.MIN_BUDGET == 4
        raise RuntimeError("leaving the block by an error restores the floor too")
    assert repair_v1.MIN_BUDGET == 12
    with pytest.raises(ValueError, match="max_episode_steps >= 12"):
        gym.make_vec("LLMRepair-v1", num_envs=1, max_episode_steps=10)


def test_a_cell_is_normalized_per_entry_between_the_noop_and_the_planner():
    noop = np.array([[0.0, 0.1, 0.5], [0.0, 0.1, 0.5]])
    planner = np.array([[1.0, 0.5, 0.505], [0.6, 0.3, 0.505]])  # the third entry gains < MIN_GAP: no scale
    rules = np.array([[0.4, 0.3, -1.0], [0.4, 0.1, -1.0]])
    out = whatif.summarize({"noop": noop, "planner": planner, "rules_v1": rules}, ["a", "a+b", "b"])
    assert out["normalized_entries"] == 2
    assert out["policies"]["planner"]["normalized"]["point"] == pytest.approx(1.0)
    assert out["policies"]["noop"]["normalized"]["point"] == pytest.approx(0.0)
    # entry 0: 0.4 / 0.8; entry 1: (0.2 - 0.1) / (0.4 - 0.1)
    assert out["policies"]["rules_v1"]["normalized"]["point"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert out["policies"]["rules_v1"]["mean_return"] == pytest.approx(rules.mean())
    assert out["policies"]["rules_v1"]["by_fault"] == pytest.approx({"a": (0.5 + 1 / 3) / 2, "b": 1 / 3})
    assert [e["scaled"] for e in out["entries"]] == [True, True, False]


def test_the_tables_show_every_cell_and_each_stakes_bin_with_its_entries():
    noop, planner = np.zeros((2, 3)), np.array([[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]])
    returns = {name: planner * share for name, share in zip(whatif.POLICIES, (0.0, 1.0, 0.5, 0.6, 0.7, 0.8, 0.9))}
    returns["noop"] = noop
    cell = whatif.summarize(returns, ["a", "b", "a+b"])
    report = {"cells": [{"price_multiplier": 1.0, "budget": [12, 32], **cell},
                        {"price_multiplier": 4.0, "budget": [4, 10], **cell}]}
    rows = whatif.markdown_table(report).splitlines()
    assert len(rows) == 4 and rows[2].startswith("| x1 | 12-32 | 0.50 [0.50, 0.50] | 0.60")
    assert rows[3].startswith("| x4 | 4-10 |")
    stakes = whatif.stakes_table(report).splitlines()
    assert [r.split(" | ")[:4] for r in stakes[2:]] == [["| x1", "12-32", "0 to 0.2", "1"],
                                                        ["| x1", "12-32", "0.2 or more", "2"],
                                                        ["| x4", "4-10", "0 to 0.2", "1"],
                                                        ["| x4", "4-10", "0.2 or more", "2"]]
    shares = whatif.returns_table(report).splitlines()
    assert shares[2] == "| x1 | 12-32 | 0.50 | 0.60 | 0.70 | 0.80 | 0.90 |"


def test_blind_rules_stop_a_healthy_model_and_otherwise_reset_the_norms_then_train_while_it_pays():
    features = [f"val_acc/{f}" for f in ("syntax", "logic", "fact")] + ["log10_price"]
    actions = ["train_all", "reset_norms", "stop"]
    policy = whatif.BlindRules(actions, features)
    healthy, broken = np.array([[0.99, 0.98, 0.97, -3.0]]), np.array([[0.5, 0.4, 0.3, -3.0]])
    policy.reset(np.array([True]))
    assert actions[policy.act(healthy, {})[0]] == "stop"
    policy.reset(np.array([True]))
    assert [actions[policy.act(broken, {})[0]] for _ in range(3)] == ["reset_norms", "train_all", "train_all"]
    improving = broken.copy()
    improving[0, :3] = 0.99  # every family fine: the training phase stops
    assert actions[policy.act(improving, {})[0]] == "stop"

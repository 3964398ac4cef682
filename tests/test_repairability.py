"""benchmarks/repairability_v1.py: the what-if severities swap the fault table only inside their block, bad input
is refused, and the measurement sees what a documented fix does that training does not."""

import argparse

import pytest

from benchmarks import repairability_v1 as rep
from llm_repair_gym.repair import faults_v1


def test_severities_swap_the_table_inside_the_block_only():
    before = faults_v1.FAULTS_V1
    with rep.severities({"weight_noise": (10.0, 15.0)}):
        row = faults_v1.FAULTS_V1[faults_v1.FAULT_NAMES_V1.index("weight_noise")]
        assert (row.severity_low, row.severity_high) == (10.0, 15.0)
    assert faults_v1.FAULTS_V1 is before


def test_bad_severity_arguments_are_refused():
    assert rep._range("token_embed=4,6") == ("token_embed", (4.0, 6.0))
    for bad in ("no_such_fault=1,2", "weight_noise=a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            rep._range(bad)


def test_reset_norms_repairs_norm_gain_before_any_training():
    out = rep.measure("norm_gain", envs=2)
    assert out["damage"] > 0.1
    train_only, documented = out["variants"]["train_all only"], out["variants"]["documented fixes first"]
    assert train_only["repaired"][0] == pytest.approx(0.0, abs=1e-6)
    assert documented["prefixes"] == ["reset_norms"] and documented["repaired"][0] > 0.5
    assert "reinit_block<target> first" in out["variants"]


def test_harm_measures_what_a_blind_repair_costs_a_healthy_model(monkeypatch):
    monkeypatch.setattr(rep, "CHEAP_REPAIRS", ("reset_norms", "reinit_block0"))
    out = rep.harm(envs=2)
    assert set(out) == {"train_all only", "reset_norms", "reinit_block0"}
    assert "after" not in out["train_all only"] and abs(out["train_all only"]["after 8 train_all"]) < 0.05
    assert out["reinit_block0"]["after"] < -0.1  # re-initialising a working block costs what it knew

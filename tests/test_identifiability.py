"""benchmarks/identifiability.py: the detectors score what they should, and the linear comparison shows only what a
non-linear reading adds."""

import numpy as np
import pytest

from benchmarks import identifiability


def split(rng: np.random.Generator, n: int) -> dict:
    """Two fault types over 4 features: ``linear`` is the sign of feature 0; ``xor`` is feature 1's sign times
    feature 2's, which no linear detector reads."""
    x = rng.normal(size=(n, 4))
    labels = {"linear": x[:, 0] > 0, "xor": x[:, 1] * x[:, 2] > 0}
    return {"obs": {"free": x}, "labels": labels, "fault_names": list(labels),
            "feature_names": ["a", "b", "c", "d"]}


def test_boosting_reads_a_non_linear_cause_that_the_linear_detector_cannot():
    rng = np.random.default_rng(0)
    train, test = split(rng, 800), split(rng, 400)
    boost = identifiability.detect(train, test, "free", seed=0, explain=True)
    line = identifiability.detect(train, test, "free", seed=0, explain=False, kind="linear")
    assert boost["per_type"]["linear"]["balanced_accuracy"] > 0.9
    assert line["per_type"]["linear"]["balanced_accuracy"] > 0.95
    assert boost["per_type"]["xor"]["balanced_accuracy"] > 0.85
    assert line["per_type"]["xor"]["balanced_accuracy"] < 0.6
    assert boost["per_type"]["xor"]["top_features"][0]["feature"] in {"b", "c"}
    results = {"env": {"fault_types": ["linear", "xor"], "conditions": {"free": boost}, "linear": {"free": line}}}
    table = identifiability.linear_table(results)
    xor_row = next(r for r in table.splitlines() if r.startswith("| xor |")).split("|")
    assert float(xor_row[4]) == pytest.approx(boost["per_type"]["xor"]["balanced_accuracy"]
                                              - line["per_type"]["xor"]["balanced_accuracy"], abs=1e-3)


def test_a_type_without_both_classes_is_skipped_not_scored():
    rng = np.random.default_rng(1)
    train, test = split(rng, 200), split(rng, 100)
    train["labels"]["linear"][:] = False
    out = identifiability.detect(train, test, "free", seed=0, explain=False, kind="linear")
    assert out["skipped"] == ["linear"] and out["types_scored"] == 1
    assert out["mean"] == out["per_type"]["xor"]["balanced_accuracy"]


def test_a_split_is_observed_at_reset_after_each_probe_and_beside_its_answer_to_one_train_all(tmp_path, monkeypatch):
    from llm_repair_gym.repair import faults_v1
    from llm_repair_gym.repair.instances import BankConfig
    from llm_repair_gym.testing import micro_env_kwargs

    monkeypatch.setattr(faults_v1, "DROP", -1.0)  # one round of fine-tuning per injection: a bank in seconds
    kwargs = micro_env_kwargs(tmp_path, env_id="LLMRepair-v1")
    del kwargs["bank"]
    bank = BankConfig(train_size=6, test_size=2, min_drop=0.0, build_batch=6)
    out = identifiability.observe_split("LLMRepair-v1", "train", 4, 0, bank, kwargs.pop("cache_dir"), True, **kwargs)
    free, response = out["obs"]["free"], out["obs"][identifiability.RESPONSE]
    n, width = free.shape
    assert n == bank.train_size and width == len(out["feature_names"])  # a short last batch's repeats dropped
    assert response.shape == (n, 2 * width)
    np.testing.assert_array_equal(response[:, :width], free)  # the reset observation, then the answer
    assert not np.array_equal(response[:, width:], free)
    assert set(out["probe_cost"]) | {"free", "all_probes", identifiability.RESPONSE} == set(out["obs"])
    assert all(v.shape == (n, width) for k, v in out["obs"].items() if k != identifiability.RESPONSE)
    assert set(out["labels"]) == set(out["fault_names"]) and all(v.shape == (n,) for v in out["labels"].values())

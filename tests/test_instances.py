"""Instance banks: what a bank instance is, splits, caching, drawing and choosing instances at reset."""

import gc
import json

import numpy as np
import pytest
import torch

from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.faults import FAULT_NAMES
from llm_repair_gym.repair.instances import BankConfig, blank_state, build_instances, instance_seed, start_live
from llm_repair_gym.runtime.cache import MANIFEST_FILE, WEIGHTS_FILE


@pytest.fixture(scope="module")
def micro(micro_env_kwargs, tmp_path_factory):
    """Micro env kwargs with a cache private to this module and a bank built one instance at a time (built
    once, by the first test that asks; the cache test damages and rebuilds it)."""
    return {**micro_env_kwargs, "cache_dir": str(tmp_path_factory.mktemp("instances")),
            "bank": BankConfig(train_size=6, test_size=6, min_drop=0.0, build_batch=1)}


def test_a_bank_instance_is_the_live_instance_of_its_seed(micro):
    env = LLMRepairVectorEnv(num_envs=1, **micro)
    bank, ctx = env.bank, env.ctx
    one = torch.tensor([0])
    for k in range(bank.size):
        state = blank_state(ctx, 1)
        state.rng.reseed(one, torch.tensor([instance_seed(micro["bank"], "train", k)]))
        start_live(ctx, state, one, env.fault_ids, kinds=torch.tensor([k % len(FAULT_NAMES)]))
        assert torch.equal(state.params[0], bank.tensors["params"][k]), k
        for name in ("fault_type", "fault_target", "fault_severity", "zoo_model", "lr_level"):
            assert torch.equal(getattr(state, name)[0], bank.tensors[name][k]), (k, name)
        for f in FAMILIES:
            assert torch.equal(state.pool_ids[f][0], bank.tensors[f"pool_ids.{f}"][k])
            assert torch.equal(state.corrupt[f][0], bank.tensors[f"corrupt.{f}"][k])


def test_splits_are_disjoint_balanced_and_cached(micro, recwarn):
    train = LLMRepairVectorEnv(num_envs=2, **micro).bank
    test = LLMRepairVectorEnv(num_envs=2, instances="test", **micro).bank
    assert set(train.tensors["seed"].tolist()).isdisjoint(test.tensors["seed"].tolist())
    assert train.counts.tolist() == test.counts.tolist() == [1] * len(FAULT_NAMES)
    assert train.path != test.path and json.loads((train.path / MANIFEST_FILE).read_text())["split"] == "train"
    assert LLMRepairVectorEnv(num_envs=1, **micro).bank is train  # one copy per process
    path, tensors = train.path, {k: v.clone() for k, v in train.tensors.items()}
    mtime = (path / WEIGHTS_FILE).stat().st_mtime_ns
    del train, test
    gc.collect()  # no env holds the bank any more: the next env loads it from disk
    again = LLMRepairVectorEnv(num_envs=1, **micro).bank
    assert (path / WEIGHTS_FILE).stat().st_mtime_ns == mtime  # served from the cache, not rebuilt
    assert not [w for w in recwarn.list if "invalid" in str(w.message)]
    del again
    gc.collect()
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="instance bank cache .* invalid"):
        repaired = LLMRepairVectorEnv(num_envs=1, **micro).bank
    assert all(torch.equal(repaired.tensors[k], tensors[k]) for k in tensors)  # the module's bank, rebuilt


def test_weak_draws_are_drawn_again(micro):
    """With min_drop above what a fault can do to the untrained micro models, the build gives up loudly;
    at 0, every instance keeps its first draw."""
    env = LLMRepairVectorEnv(num_envs=1, **micro)
    assert (env.bank.tensors["attempt"] == 0).all()
    with pytest.raises(RuntimeError, match="did not reach a drop"):
        build_instances(env.ctx, BankConfig(train_size=2, test_size=1, min_drop=0.9), "train", progress=False)


def test_reset_copies_the_chosen_instances(micro):
    env = LLMRepairVectorEnv(num_envs=3, **micro)
    bank = env.bank
    _, info = env.reset(seed=4, options={"instance": [3, 0, 5]})
    assert info["instance"].tolist() == [3, 0, 5]
    assert list(info["fault"]["type"]) == [FAULT_NAMES[k] for k in bank.tensors["fault_type"][[3, 0, 5]]]
    assert torch.equal(env.state.params, bank.tensors["params"][[3, 0, 5]])
    _, info = env.reset(seed=9, options={"instance": 2, "reset_mask": np.array([False, True, False])})
    assert info["instance"][1] == 2 and info["_instance"].tolist() == [False, True, False]
    with pytest.raises(ValueError, match=r"instances must lie in \[0, 6\)"):
        env.reset(options={"instance": [0, 1, 6]})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"level": 1})
    live = LLMRepairVectorEnv(num_envs=1, instances="live", **micro)
    with pytest.raises(ValueError, match="needs an instance bank"):
        live.reset(options={"instance": 0})
    assert live.reset(seed=0)[1]["instance"].tolist() == [-1]


def test_faults_restrict_the_instances_drawn(micro):
    env = LLMRepairVectorEnv(num_envs=4, faults=["label_noise", "forgetting"], **micro)
    seen = set()
    for seed in range(5):
        seen |= set(env.reset(seed=seed * 10)[1]["fault"]["type"])
    assert seen == {"label_noise", "forgetting"}
    small = {**micro, "bank": BankConfig(train_size=3, test_size=3, min_drop=0.0)}
    with pytest.raises(ValueError, match="holds no .*bad_hparams"):
        LLMRepairVectorEnv(num_envs=1, faults=["bad_hparams"], **small)


def test_every_real_test_instance_has_something_to_repair(tiny_zoo):
    env = LLMRepairVectorEnv(num_envs=1, instances="test", progress=False)
    drops = env.bank.manifest["drop"]
    assert set(drops) == set(FAULT_NAMES)
    for fault, row in drops.items():
        if fault == "none":
            assert row["mean_drop"] == 0.0
        else:
            assert row["min_drop"] >= env.bank.manifest["bank"]["min_drop"] == 0.25, fault

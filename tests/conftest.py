"""Shared fixtures: a micro zoo preset that builds in seconds, and an isolated cache folder."""

import pytest

from llm_repair_gym.presets import get_preset


@pytest.fixture
def micro_preset():
    """The tiny architecture trained for a handful of steps: for cache and determinism tests, not accuracy."""
    return get_preset("tiny").replace(name="micro", num_models=2, steps=3, warmup_steps=1, batch_per_family=4)


@pytest.fixture(scope="session")
def micro_env_kwargs(tmp_path_factory):
    """LLMRepair kwargs for mechanics tests: a micro zoo, small pools and batches and a 12-instance bank
    (not for accuracy)."""
    from llm_repair_gym.dynamics import DynamicsConfig
    from llm_repair_gym.instances import BankConfig

    preset = get_preset("tiny").replace(name="micro", num_models=2, steps=3, warmup_steps=1, batch_per_family=4)
    dynamics = DynamicsConfig(pool_size=40, batch_size=12, train_steps=2, eval_size=16, spread_size=16)
    return {"preset": preset, "cache_dir": str(tmp_path_factory.mktemp("cache")), "progress": False,
            "dynamics": dynamics, "bank": BankConfig(train_size=12, test_size=6, min_drop=0.0, build_batch=12)}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private zoo cache, also exported as $LLM_REPAIR_GYM_CACHE."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LLM_REPAIR_GYM_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_zoo():
    """The real tiny zoo (built once, about 1.5 minutes on 2 cores, then cached)."""
    from llm_repair_gym.zoo import load_zoo

    return load_zoo("tiny", progress=False)

"""Shared fixtures: a micro zoo preset that builds in seconds, and an isolated cache folder."""

import pytest
import torch

from llm_repair_gym.presets import get_preset

torch.set_num_threads(2)


@pytest.fixture
def micro_preset():
    """The tiny architecture trained for a handful of steps: for cache and determinism tests, not accuracy."""
    return get_preset("tiny").replace(name="micro", num_models=2, steps=3, warmup_steps=1, batch_per_family=4)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private zoo cache, also exported as $LLM_REPAIR_GYM_CACHE."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LLM_REPAIR_GYM_CACHE", str(path))
    return path

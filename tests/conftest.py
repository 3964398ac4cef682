"""Shared fixtures: a micro zoo preset that builds in seconds, an isolated cache folder, one torch thread."""

import pytest
import torch

from llm_repair_gym import testing as micro


@pytest.fixture
def micro_preset():
    """The tiny architecture trained for a handful of steps: for cache and determinism tests, not accuracy."""
    return micro.micro_preset()


@pytest.fixture(scope="session")
def micro_env_kwargs(tmp_path_factory):
    """LLMRepair kwargs for mechanics tests: a micro zoo, small pools and batches and a 12-instance bank
    (not for accuracy)."""
    return micro.micro_env_kwargs(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private zoo cache, also exported as $LLM_REPAIR_GYM_CACHE."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LLM_REPAIR_GYM_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_zoo():
    """The real tiny zoo (built once, about 1.5 minutes on 2 cores, then cached)."""
    from llm_repair_gym.lm.zoo import load_zoo

    return load_zoo("tiny", progress=False)


@pytest.fixture
def single_torch_thread():
    """Tiny networks run fastest, and steadiest on a shared machine, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

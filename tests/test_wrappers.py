"""DiscretizeObservation: LLMRepair's Box observation as a Discrete state."""

import numpy as np
import pytest
from gymnasium import spaces

from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv
from llm_repair_gym.envs.wrappers import DiscretizeObservation, Discretizer, VectorDiscretizeObservation


def test_discretizer_is_a_mixed_radix_number():
    d = Discretizer(["a", "b", "c"], {"b": [0.5], "a": [0.0, 1.0]})
    assert d.n_states == 2 * 3
    obs = np.array([[-1.0, 0.2, 9.0], [0.5, 0.7, 9.0], [2.0, 0.7, 9.0]])
    # b is the most significant digit (first named), a the least
    assert d(obs).tolist() == [0 * 3 + 0, 1 * 3 + 1, 1 * 3 + 2]


@pytest.mark.parametrize("bins, message", [({}, "at least one"), ({"nope": [0.1]}, "unknown features"),
                                           ({"a": [0.5, 0.1]}, "increasing"), ({"a": []}, "non-empty")])
def test_bad_bins_are_rejected(bins, message):
    with pytest.raises(ValueError, match=message):
        Discretizer(["a"], bins)


def test_single_and_vector_wrappers_agree(micro_env_kwargs):
    single = DiscretizeObservation(LLMRepairEnv(**micro_env_kwargs))
    vector = VectorDiscretizeObservation(LLMRepairVectorEnv(num_envs=1, **micro_env_kwargs))
    assert isinstance(single.observation_space, spaces.Discrete)
    assert vector.single_observation_space == single.observation_space
    s, _ = single.reset(seed=4)
    v, _ = vector.reset(seed=4)
    assert single.observation_space.contains(s) and v.tolist() == [s]
    lr_up = single.unwrapped.action_names.index("lr_up")
    s, *_ = single.step(lr_up)
    v, *_ = vector.step(np.array([lr_up]))
    assert v.tolist() == [s]

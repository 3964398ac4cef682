"""A checker for native vector envs (Gymnasium ships one for single envs only).

``check_vector_env(env_id, ...)`` asserts what users of ``gym.make_vec`` rely on: observations lie in the
batched and single spaces and are finite; terminated/truncated are bool arrays; the same seed and the
same actions give identical trajectories; different seeds give different episodes; and env 0 of a vector
env with N = 1 steps exactly like ``gym.make(env_id)``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def _rollout(env, seed: int, actions: list[np.ndarray]) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    out = [(obs, None, None, None)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated))
    return out


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return all(all(np.array_equal(x, y) for x, y in zip(s, t) if x is not None) for s, t in zip(a, b))


def check_vector_env(env_id: str, num_envs: int = 3, seed: int = 0, n_steps: int = 6, **kwargs) -> None:
    """Raise ``AssertionError`` naming the first property ``env_id``'s vector env breaks."""
    make = lambda n: gym.make_vec(env_id, num_envs=n, **kwargs)  # noqa: E731
    env = make(num_envs)
    rng = np.random.default_rng(seed)
    actions = [rng.integers(env.single_action_space.n, size=num_envs) for _ in range(n_steps)]
    first = _rollout(env, seed, actions)
    for obs, reward, terminated, truncated in first:
        assert obs.shape == (num_envs, *env.single_observation_space.shape), "observation batch shape"
        assert env.observation_space.contains(obs), "observation outside the batched space"
        assert all(env.single_observation_space.contains(row) for row in obs), "row outside the single space"
        assert np.isfinite(obs).all(), "non-finite observation"
        if reward is not None:
            assert reward.shape == (num_envs,) and np.isfinite(reward).all(), "reward batch"
            assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_, "terminated/truncated not bool"
    env.close()
    again = make(num_envs)
    assert _same(first, _rollout(again, seed, actions)), "same seed and actions gave a different trajectory"
    other_obs, _ = again.reset(seed=seed + 10_000)
    assert not np.array_equal(other_obs, first[0][0]), "different seeds gave the same episodes"
    again.close()

    single = gym.make(env_id, **kwargs)
    vector = make(1)
    single_obs, _ = single.reset(seed=seed)
    vector_obs, _ = vector.reset(seed=seed)
    assert np.array_equal(single_obs, vector_obs[0]), "N=1 vector env and single env differ at reset"
    for a in actions:
        s_obs, s_rew, s_term, s_trunc, _ = single.step(int(a[0]))
        v_obs, v_rew, v_term, v_trunc, _ = vector.step(a[:1])
        assert s_rew == v_rew[0] and s_term == v_term[0] and s_trunc == v_trunc[0], "N=1 step differs"
        if s_term or s_trunc:
            break
        assert np.array_equal(s_obs, v_obs[0]), "N=1 vector env and single env observations differ"
    single.close()
    vector.close()

"""LLMRepair-v1 through what surrounds an env: SB3's VecEnv adapter, the render modes and explain_episode.

Micro settings with live instances and one-round injections, as in ``test_repair_v1.py``.
"""

import json

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym import testing as micro_settings
from llm_repair_gym.bench.explain import explain_episode
from llm_repair_gym.integrations.sb3 import make_sb3_vec_env
from llm_repair_gym.repair import faults_v1

ENV_ID = "LLMRepair-v1"


@pytest.fixture(scope="module", autouse=True)
def one_round_injections():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(faults_v1, "DROP", -1.0)
        yield


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return {**micro_settings.micro_env_kwargs(tmp_path_factory.mktemp("cache-v1i"), env_id=ENV_ID),
            "instances": "live"}  # (gym.make takes max_episode_steps for its TimeLimit, not for the env)


def test_sb3_vec_env_steps_like_dummy_vec_env_over_single_envs_across_budget_ends(micro):
    ours = make_sb3_vec_env(ENV_ID, n_envs=2, seed=5, **micro)
    theirs = DummyVecEnv([lambda: gym.make(ENV_ID, **micro) for _ in range(2)])
    theirs.seed(5)
    assert np.array_equal(ours.reset(), theirs.reset())
    rng, stop = np.random.default_rng(0), ours.get_attr("action_names")[0].index("stop")
    ends = 0
    for _ in range(34):
        actions = rng.integers(stop, size=2)  # never stop: episodes end at their budgets (12-32 steps)
        obs_a, rew_a, done_a, infos_a = ours.step(actions)
        obs_b, rew_b, done_b, infos_b = theirs.step(actions)
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
        for i in np.flatnonzero(done_a):
            ends += 1
            assert np.array_equal(infos_a[i]["terminal_observation"], infos_b[i]["terminal_observation"])
            assert infos_a[i]["objective"] == infos_b[i]["objective"] != 0
            assert not infos_a[i]["TimeLimit.truncated"]  # the budget ends the episode: a termination
    assert ends >= 2
    ours.close()
    theirs.close()


def test_ansi_and_rgb_array_render_a_v1_episode(micro):
    env = gym.make(ENV_ID, render_mode="ansi", **micro)
    env.reset(seed=0)
    names = env.unwrapped.action_names
    for name in ("probe_tokens", "checkpoint", "train_all"):
        env.step(names.index(name))
    text = env.render()
    assert text.count("\n") >= 3 and "probe_tokens" in text and "checkpoint" in text
    frames = gym.make(ENV_ID, render_mode="rgb_array", **micro)
    frames.reset(seed=0)
    first = frames.render()
    frames.step(names.index("train_all"))
    assert first.shape == frames.render().shape and first.dtype == np.uint8 and first.ndim == 3


def test_explain_episode_replays_a_v1_episode(micro, tmp_path):
    kwargs = {k: v for k, v in micro.items()}
    out = explain_episode(ENV_ID, kwargs, seed=3, instance=-1, actions=["probe_optimizer", "train_all", "stop"],
                          out_dir=tmp_path)
    saved = json.loads((tmp_path / "trace.json").read_text())
    assert saved["env_id"] == ENV_ID and len(saved["steps"]) == 4 and out["terminated"]
    assert (tmp_path / "trace.png").stat().st_size > 0
    env = gym.make_vec(ENV_ID, num_envs=1, autoreset_mode="Disabled", **micro)
    env.reset(seed=[3])
    total = 0.0
    for name in ("probe_optimizer", "train_all", "stop"):
        total += float(env.step(np.array([env.unwrapped.action_names.index(name)]))[1][0])
    assert out["return"] == pytest.approx(total, abs=1e-6)

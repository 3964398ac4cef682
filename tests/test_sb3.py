"""SB3VecEnv: the native vector env as Stable-Baselines3's VecEnv, step for step what DummyVecEnv gives."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecMonitor, VecNormalize

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.integrations.sb3 import SB3VecEnv, make_sb3_vec_env


@pytest.fixture
def micro(micro_env_kwargs):
    return micro_env_kwargs


def _dummy(micro, n, seed):
    venv = DummyVecEnv([lambda: gym.make("LLMRepair-v0", **micro) for _ in range(n)])
    venv.seed(seed)
    return venv


def _compare(ours, theirs, steps, rng):
    """Step both with the same random actions (env 0 never stops, so it reaches the time limit); assert every
    SB3-visible output is identical. Returns the (terminations, truncations) seen."""
    assert np.array_equal(ours.reset(), theirs.reset())
    assert ours.reset_infos == theirs.reset_infos
    stop = ours.get_attr("action_names")[0].index("stop")
    ends = np.zeros(2, dtype=int)
    for _ in range(steps):
        actions = rng.integers(ours.action_space.n, size=ours.num_envs)
        actions[0] = rng.choice([a for a in range(ours.action_space.n) if a != stop])
        obs_a, rew_a, done_a, infos_a = ours.step(actions)
        obs_b, rew_b, done_b, infos_b = theirs.step(actions)
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
        assert rew_a.dtype == np.float32 and done_a.dtype == np.bool_
        for i, (a, b) in enumerate(zip(infos_a, infos_b)):
            assert ("terminal_observation" in a) == ("terminal_observation" in b) == bool(done_a[i])
            if done_a[i]:
                ends[int(a["TimeLimit.truncated"])] += 1
                assert np.array_equal(a.pop("terminal_observation"), b.pop("terminal_observation"))
                assert ours.reset_infos[i] == theirs.reset_infos[i]
            assert a == b  # the whole info: accuracies, fault, costs, TimeLimit.truncated
    return ends


def test_matches_dummy_vec_env_over_single_envs_across_autoresets(micro):
    ours = make_sb3_vec_env("LLMRepair-v0", n_envs=3, seed=11, **micro)
    theirs = _dummy(micro, 3, 11)
    terminations, truncations = _compare(ours, theirs, 36, np.random.default_rng(0))
    assert terminations >= 2 and truncations >= 1  # autoresets after stops and after the 32-step limit
    ours.seed(40)  # seeds apply at the next reset, once
    theirs.seed(40)
    _compare(ours, theirs, 3, np.random.default_rng(1))
    ours.close()
    theirs.close()


def test_generic_same_step_gymnasium_vector_env_matches_dummy_vec_env():
    vector = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync",
                          vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    ours = SB3VecEnv(vector)
    ours.seed(3)
    theirs = DummyVecEnv([lambda: gym.make("CartPole-v1") for _ in range(4)])
    theirs.seed(3)
    assert np.array_equal(ours.reset(), theirs.reset())
    for _ in range(120):
        obs_a, rew_a, done_a, infos_a = ours.step(np.zeros(4, dtype=np.int64))  # always left: short episodes
        obs_b, rew_b, done_b, infos_b = theirs.step(np.zeros(4, dtype=np.int64))
        assert np.array_equal(obs_a, obs_b) and np.array_equal(done_a, done_b) and np.allclose(rew_a, rew_b)
        for i in np.flatnonzero(done_a):
            assert np.array_equal(infos_a[i]["terminal_observation"], infos_b[i]["terminal_observation"])


def test_refuses_what_it_cannot_present(micro):
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(gym.make_vec("LLMRepair-v0", num_envs=2, autoreset_mode="Disabled", **micro))
    with pytest.raises(ValueError, match="numpy"):
        SB3VecEnv(gym.make_vec("LLMRepair-v0", num_envs=2, output="torch", **micro))
    with pytest.raises(TypeError, match="VectorEnv"):
        SB3VecEnv(gym.make("LLMRepair-v0", **micro))
    venv = make_sb3_vec_env("LLMRepair-v0", n_envs=2, **micro)
    with pytest.raises(ValueError, match="indices=None"):
        venv.set_attr("cost_weight", 0.1, indices=[0])
    with pytest.raises(ValueError, match="indices=None"):
        venv.env_method("get_state", indices=1)
    venv._seeds = [1, None]
    with pytest.raises(ValueError, match="every env or none"):
        venv.reset()
    with pytest.raises(RuntimeError, match="step_async"):
        venv.step_wait()


def test_attributes_methods_options_and_wrapper_queries(micro):
    venv = make_sb3_vec_env("LLMRepair-v0", n_envs=2, seed=0, **micro)
    assert venv.get_attr("action_names") == [venv.vector_env.unwrapped.action_names] * 2
    assert venv.get_attr("num_envs", indices=[1]) == [2]
    venv.set_attr("cost_weight", 0.01)
    assert venv.vector_env.unwrapped.cost_weight == 0.01
    state = venv.env_method("get_state")[0]
    assert state.identity["num_envs"] == 2
    assert venv.env_is_wrapped(gym.vector.VectorWrapper) == [False, False]
    wrapped = SB3VecEnv(gym.wrappers.vector.RecordEpisodeStatistics(gym.make_vec("LLMRepair-v0", num_envs=2,
                                                                                 **micro)))
    assert wrapped.env_is_wrapped(gym.wrappers.vector.RecordEpisodeStatistics) == [True, True]
    venv.set_options([{"instance": 3}, {"instance": 5}])  # per-env options become one array
    venv.reset()
    assert [info["instance"] for info in venv.reset_infos] == [3, 5]
    assert venv.render_mode is None and venv.get_images() == [None, None]


def test_sb3_wrappers_wrap_it_unchanged(micro):
    venv = VecFrameStack(VecNormalize(VecMonitor(make_sb3_vec_env("LLMRepair-v0", n_envs=2, seed=0, **micro,
                                                                  max_episode_steps=3)), norm_reward=False), 2)
    obs = venv.reset()
    assert obs.shape == (2, 2 * venv.unwrapped.observation_space.shape[0])
    episodes = []
    for _ in range(7):
        obs, _, dones, infos = venv.step(np.array([1, 2]))
        episodes += [info["episode"] for info in infos if "episode" in info]
        assert np.isfinite(obs).all()
    assert len(episodes) == 4 and all(e["l"] == 3 for e in episodes)  # VecMonitor saw every truncation


@pytest.mark.parametrize("algo", [PPO, DQN])
def test_sb3_learns_a_few_hundred_steps_and_evaluates(micro, algo):
    """An easy setting that a few hundred steps must learn: no fault and compute priced at 1 per train_all, so
    every step that trains or filters costs 0.56-4.7 and gains far less on the micro zoo, and the best return
    is 0 (stop, or only free actions). Measured over 8 episodes of 8 steps: uniform random play -3.0, both
    learners 0.0; with their updates skipped (``train`` a no-op) PPO's greedy policy trains every step (-7.97)
    and DQN's untrained Q-network gets -1.9 over these 4 evaluation episodes."""
    venv = VecMonitor(make_sb3_vec_env("LLMRepair-v0", n_envs=4, seed=0, **micro, max_episode_steps=8,
                                       faults=["none"], cost_weight=1.0))
    kwargs = {"n_steps": 32, "batch_size": 64, "n_epochs": 2} if algo is PPO else \
        {"learning_starts": 64, "buffer_size": 1_000, "batch_size": 32, "train_freq": 1, "gradient_steps": 1}
    model = algo("MlpPolicy", venv, seed=0, device="cpu", **kwargs).learn(256)
    assert model.num_timesteps >= 256
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=4)
    assert mean > -0.1  # under a fifth of the cheapest costed step (train_fact, 0.56)
    venv.close()


def test_importing_the_package_leaves_sb3_out():
    code = "import sys, llm_repair_gym; print('stable_baselines3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

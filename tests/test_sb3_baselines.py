"""The SB3 baselines: RL Zoo hyperparameter files, safe policy_kwargs, and saved policies that replay."""

import json

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import llm_repair_gym  # noqa: F401  (registers the ids)
from agents import load_policy
from agents.sb3_baselines import (
    ALGOS,
    build_model,
    load_hyperparams,
    normalize_kwargs,
    parse_policy_kwargs,
    save_policy,
)
from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.integrations.sb3 import make_sb3_vec_env

AGENTS = registered_agents()
SB3_AGENTS = [(name, env_id) for name, spec in AGENTS.items() if spec.script[:1] == ("scripts/train_sb3.py",)
              for env_id in spec.env_ids]


@pytest.mark.parametrize("algo", ALGOS)
def test_every_hyperparameter_file_reads_and_builds(micro_env_kwargs, algo):
    params = load_hyperparams(algo)
    assert params["n_envs"] == 16 and params["n_timesteps"] == 4000 and params["policy"] == "MlpPolicy"
    assert normalize_kwargs(params) == {"norm_obs": True, "norm_reward": False}
    venv = make_sb3_vec_env("LLMRepair-v0", n_envs=2, seed=0, **micro_env_kwargs)
    model = build_model(algo, venv, {**params, "batch_size": 32} if algo == "ppo" else params, seed=0)
    rate = params["learning_rate"]
    assert model.gamma == params["gamma"]
    assert model.lr_schedule(1.0) == (float(rate[4:]) if isinstance(rate, str) else rate)
    venv.close()


@pytest.mark.parametrize("agent,env_id", SB3_AGENTS)
def test_every_sb3_agent_of_the_runner_has_settings_for_every_env_it_plays(agent, env_id):
    """The runner offers each SB3 agent on its ``env_ids``; training one there needs that env's entry."""
    algo = AGENTS[agent].script[AGENTS[agent].script.index("--algo") + 1]
    assert load_hyperparams(algo, env_id)["n_timesteps"] >= 4000  # RL Zoo's run length; the runner passes its own


def test_policy_kwargs_are_parsed_not_evaluated():
    assert parse_policy_kwargs("dict(net_arch=[64, 64], n_quantiles=25)") == {"net_arch": [64, 64], "n_quantiles": 25}
    import torch

    assert parse_policy_kwargs("dict(activation_fn=nn.Tanh)") == {"activation_fn": torch.nn.Tanh}
    for bad, message in [("__import__('os').system('true')", "dict"), ("dict(x=open('f'))", "literal"),
                         ("dict(activation_fn=nn.Module)", "not one of"), ("dict(", "not a dict")]:
        with pytest.raises(ValueError, match=message):
            parse_policy_kwargs(bad)


def test_bad_algorithms_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        load_hyperparams("sac")
    path = tmp_path / "ppo.yml"
    path.write_text("CartPole-v1:\n  n_envs: 8\n")
    with pytest.raises(ValueError, match="no hyperparameters for LLMRepair-v0"):
        load_hyperparams("ppo", path=path)
    path.write_text("LLMRepair-v0:\n  policy: CnnPolicy\n")
    with pytest.raises(ValueError, match="MlpPolicy"):
        load_hyperparams("ppo", path=path)


@pytest.mark.parametrize("algo", ["ppo", "qrdqn"])
def test_saved_policy_replays_the_models_greedy_actions(micro_env_kwargs, tmp_path, algo):
    quick = {"learning_starts": 16, "batch_size": 16} if algo == "qrdqn" else {"batch_size": 16}
    params = {**load_hyperparams(algo), **quick}
    venv = VecNormalize(VecMonitor(make_sb3_vec_env("LLMRepair-v0", n_envs=4, seed=0, **micro_env_kwargs)),
                        norm_reward=False)
    model = build_model(algo, venv, params, seed=0).learn(64)
    feature_names = venv.get_attr("feature_names")[0]
    save_policy(model, tmp_path, algo, params, feature_names, "LLMRepair-v0", vec_normalize=venv, seed=0)
    policy = load_policy(tmp_path)
    obs = venv.get_original_obs()
    venv.training = False
    expected, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    assert np.array_equal(policy.act(obs, {}), expected)
    random_obs = np.random.default_rng(0).normal(size=(32, len(feature_names))).astype(np.float32)
    expected, _ = model.predict(venv.normalize_obs(random_obs), deterministic=True)
    assert np.array_equal(policy.act(random_obs, {}), expected)
    assert json.loads((tmp_path / "policy.json").read_text())["algo"] == algo
    with pytest.raises(ValueError, match="features"):
        policy.act(random_obs[:, :5], {})
    venv.close()

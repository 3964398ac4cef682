"""The observation-only heuristic (the bar learners must clear) and saved policies (load_policy)."""

import json

import numpy as np
import pytest

from agents import load_policy, save_checkpoint
from agents.dqn import DQNAgent, DQNConfig
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.evaluation import run_episodes


class NoInfo:
    """Hands a policy the observation only: any read of ``info`` fails."""

    def __init__(self, policy):
        self.policy = policy

    def reset(self, env_mask):
        self.policy.reset(env_mask)

    def act(self, obs, info):
        return self.policy.act(obs, None)


def test_heuristic_reads_only_observations_and_follows_its_rules():
    env = LLMRepairVectorEnv(num_envs=6, instances="test", autoreset_mode="Disabled", progress=False)
    heuristic = HeuristicPolicy(env.action_names, env.feature_names)
    kinds = env.bank.tensors["fault_type"].tolist()
    first = {env.fault_names[k]: i for i, k in reversed(list(enumerate(kinds)))}  # one instance per fault
    instances = [first[f] for f in env.fault_names]
    records = run_episodes(env, NoInfo(heuristic), list(range(6)), progress=False, instances=instances)
    by_fault = {r.fault: r for r in records}
    assert by_fault["none"].actions == ["stop"]  # nothing wrong: stop at once
    assert by_fault["bad_hparams"].actions[0] == "lr_down"  # the lr first
    assert all(r.actions[-1] in ("stop", "rollback") or r.steps == 32 for r in records)
    assert np.mean([r.episode_return for r in records]) > 0.1  # it repairs


def test_saved_policy_replays_the_agent(micro_env_kwargs, tmp_path):
    env = LLMRepairVectorEnv(num_envs=2, autoreset_mode="Disabled", **micro_env_kwargs)
    agent = DQNAgent.for_env(env, DQNConfig(hidden_sizes=(8,), scale_obs=True, seed=4))
    folder = save_checkpoint(agent, tmp_path / "dqn", env_id="LLMRepair-v0", feature_names=env.feature_names,
                             hide_features=["since_best"], normalized_return=0.5)
    policy = load_policy(folder)
    obs, _ = env.reset(seed=3)
    blind = obs.copy()
    blind[:, env.feature_names.index("since_best")] = 0.0
    assert np.array_equal(policy.act(obs, None), agent.act(blind))
    assert policy.meta["normalized_return"] == 0.5
    assert [r.seed for r in run_episodes(env, policy, [1, 2], progress=False)] == [1, 2]
    with pytest.raises(ValueError, match="reads 35 features"):
        policy.act(obs[:, :10], None)
    (folder / "policy.json").write_text(json.dumps({"kind": "pickle"}))
    with pytest.raises(ValueError, match="not a policy description"):
        load_policy(folder)
    with pytest.raises(ValueError, match="no readable"):
        load_policy(tmp_path / "missing")

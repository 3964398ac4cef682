"""The observation-only heuristic (the bar learners must clear) and saved policies (load_policy)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agents import load_policy, save_checkpoint
from agents.dqn import DQNAgent, DQNConfig
from agents.heuristic import HeuristicPolicy
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.rl.episodes import evaluate_on_held_out, run_episodes


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


CARRIED = Path(__file__).resolve().parent.parent / "agents" / "checkpoints" / "LLMRepair-v0" / "dqfd"


def test_carried_checkpoint_replays_its_recorded_returns(tmp_path, capsys):
    from benchmarks.replay_policy import main as replay

    policy = load_policy(CARRIED)
    meta = policy.meta
    assert meta["env_id"] == "LLMRepair-v0" and len(meta["eval_episode_returns"]) == meta["eval_episodes"]
    assert np.mean(meta["eval_episode_returns"]) == pytest.approx(meta["eval_return"])
    records = evaluate_on_held_out("LLMRepair-v0", policy, meta["eval_set"], 2, progress=False)
    assert all(r.actions[-1] == "stop" or r.steps == 32 for r in records)
    copy = tmp_path / "dqfd"
    shutil.copytree(CARRIED, copy)
    for returns, verdict in (([r.episode_return for r in records], 0), ([0.5, records[1].episode_return], 1)):
        (copy / "policy.json").write_text(json.dumps({**meta, "eval_episodes": 2, "eval_episode_returns": returns}))
        assert replay([str(copy)]) == verdict
    assert "episode 0 (seed" in capsys.readouterr().out  # the mismatching episode is named


def test_lookahead_over_the_heuristic_is_exact_and_never_worse(micro_env_kwargs):
    """benchmarks/headroom.py: the branch of the heuristic's own choice is its episode, bit for bit, and the
    lookahead's actions replayed on a fresh env give the lookahead's return, which is at least the heuristic's."""
    from benchmarks.headroom import play_entry
    from llm_repair_gym.bench.verify import ReplayPolicy

    def make(n):
        return LLMRepairVectorEnv(num_envs=n, instances="test", autoreset_mode="Disabled", max_episode_steps=4,
                                  **micro_env_kwargs)

    single = make(1)
    names, features = single.action_names, single.feature_names
    env = make(len(names))  # one slot per action
    instance, seed = 3, 12
    result = play_entry(env, single, seed, instance, names, features)
    played = run_episodes(single, HeuristicPolicy(names, features), [seed], progress=False, instances=[instance])[0]
    assert result["heuristic_return"] == played.episode_return
    assert result["return"] >= played.episode_return - 1e-9
    replayed = run_episodes(single, ReplayPolicy([[names.index(a) for a in result["actions"]]], names.index("stop")),
                            [seed], progress=False, instances=[instance])[0]
    assert replayed.episode_return == pytest.approx(result["return"], abs=1e-12)
    # the final models are scored again: on the reward's validation examples as the env reports them, and on the
    # test split
    assert result["heuristic_accuracy"]["val"] == pytest.approx([played.final_accuracy[f] for f in FAMILIES])
    assert result["accuracy"]["val"] == pytest.approx([replayed.final_accuracy[f] for f in FAMILIES])
    assert all(0 <= a <= 1 for a in result["accuracy"]["test"] + result["heuristic_accuracy"]["test"])

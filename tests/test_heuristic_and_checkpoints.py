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
from llm_repair_gym.envs.suites import held_out_seeds
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.rl.episodes import run_episodes


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
    # every episode ends because the heuristic stops, never at the 32-step limit (an episode ends on `stop` or at
    # the limit by construction, so "stop or 32 steps" holds for any policy): the episodes' exact lengths,
    # measured, on test-split instances 0-5 with seeds 0-5
    assert [r.fault for r in records if r.actions[-1] != "stop"] == []
    assert {r.fault: r.steps for r in records} == HEURISTIC_STEPS
    assert by_fault["forgetting"].actions[-2:] == ["rollback", "stop"]  # rule 6: no progress, roll back and stop
    assert np.mean([r.episode_return for r in records]) > 0.1  # it repairs


HEURISTIC_STEPS = {"none": 1, "weight_noise": 7, "label_noise": 9, "fact_overwrite": 17, "forgetting": 26,
                   "bad_hparams": 12}


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
# The carried policy's recorded evaluation is 32 episodes, about 40 s to replay on 2 cores (the slow test below
# replays them all); the default run replays 6 of them through the same command, one per fault type, the
# shortest of each (episodes 1, 3, 4, 17, 18 and 26 of the 32: 1-11 steps, one wave of 6 envs, about 5 s),
# each against the return the file records. Their lengths, from the full replay: every one of them stops.
CARRIED_SUBSET = {1: 7, 3: 7, 4: 1, 17: 10, 18: 10, 26: 11}  # episode of the recorded set (seed order) -> steps


def replay_subset(monkeypatch, meta, episodes):
    """Make ``benchmarks.replay_policy`` play ``episodes`` (indices into the recorded evaluation set: its seeds,
    its test-split instances) instead of the set's first ones; return the list its records will land in."""
    from llm_repair_gym.envs import suites
    from llm_repair_gym.rl import episodes as module

    full = meta["eval_set"], meta["eval_episodes"]
    monkeypatch.setattr(module, "held_out_seeds", lambda s, n: [suites.held_out_seeds(*full)[k] for k in episodes])
    monkeypatch.setattr(module, "held_out_instances",
                        lambda s, n, size: [suites.held_out_instances(*full, size)[k] for k in episodes])
    played = []
    monkeypatch.setattr(module, "run_episodes", lambda *a, **k: played.extend(run_episodes(*a, **k)) or played)
    return played


def test_carried_checkpoint_replays_its_recorded_returns(tmp_path, capsys, monkeypatch):
    from benchmarks.replay_policy import main as replay

    meta = load_policy(CARRIED).meta
    assert meta["env_id"] == "LLMRepair-v0" and len(meta["eval_episode_returns"]) == meta["eval_episodes"] == 32
    assert np.mean(meta["eval_episode_returns"]) == pytest.approx(meta["eval_return"])
    recorded = np.array(meta["eval_episode_returns"])
    copy = tmp_path / "dqfd"
    shutil.copytree(CARRIED, copy)

    def record(episodes, returns):
        (copy / "policy.json").write_text(json.dumps({**meta, "eval_episodes": len(episodes),
                                                      "eval_episode_returns": list(returns),
                                                      "eval_return": float(np.mean(returns))}))

    subset = list(CARRIED_SUBSET)
    played = replay_subset(monkeypatch, meta, subset)
    record(subset, recorded[subset])  # the carried file's own numbers for these episodes
    assert replay([str(copy)]) == 0, capsys.readouterr().out
    assert "OK: all 6 episode returns match" in capsys.readouterr().out
    assert sorted(r.fault for r in played) == sorted(["none", "weight_noise", "label_noise", "fact_overwrite",
                                                      "forgetting", "bad_hparams"])
    steps = {r.seed: r.steps for r in played}
    seeds = held_out_seeds(meta["eval_set"], meta["eval_episodes"])
    assert {k: steps[seeds[k]] for k in subset} == CARRIED_SUBSET
    assert [r.fault for r in played if r.actions[-1] != "stop"] == []
    # a return off by more than the tolerance fails the command, which names the episode (the 1-step 'none' one)
    replay_subset(monkeypatch, meta, [4])
    record([4], [recorded[4] + 2e-6])
    assert replay([str(copy)]) == 1
    assert f"episode 0 (seed {seeds[4]})" in capsys.readouterr().out


@pytest.mark.slow
def test_carried_checkpoint_replays_all_its_recorded_returns():
    """The full recorded evaluation (32 episodes, about 40 s on 2 cores), as the README's command runs it."""
    from benchmarks.replay_policy import main as replay

    assert replay([str(CARRIED)]) == 0


def test_lookahead_over_the_heuristic_is_exact_and_never_worse(micro_env_kwargs):
    """benchmarks/lookahead_v0.py: the branch of the heuristic's own choice is its episode, bit for bit, and the
    lookahead's actions replayed on a fresh env give the lookahead's return, which is at least the heuristic's."""
    from benchmarks.lookahead_v0 import play_entry
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

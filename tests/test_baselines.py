"""Reference policies and the seeded episode runner."""

import numpy as np
import pytest

from agents.baselines import NoOpPolicy, OraclePolicy, RandomPolicy
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.rl.episodes import run_episodes


@pytest.fixture
def env(micro_env_kwargs):
    return LLMRepairVectorEnv(num_envs=3, **micro_env_kwargs, autoreset_mode="Disabled", max_episode_steps=4)


def test_policies_face_the_same_seeded_faults(env):
    seeds = [11, 12, 13, 14, 15]
    noop = run_episodes(env, NoOpPolicy(env.action_names), seeds, progress=False)
    rand = run_episodes(env, RandomPolicy(env.action_names, seed=0), seeds, progress=False)
    assert [r.seed for r in noop] == seeds == [r.seed for r in rand]
    assert [r.fault for r in noop] == [r.fault for r in rand]
    assert [r.reset_accuracy for r in noop] == [r.reset_accuracy for r in rand]
    assert all(r.steps == 1 and r.actions == ["stop"] for r in noop)
    for r in rand:  # an episode ends at its first stop, or at the limit of 4 steps
        assert len(r.actions) == r.steps
        assert r.steps == (r.actions.index("stop") + 1 if "stop" in r.actions else 4), r.actions
    assert any(r.steps == 4 and "stop" not in r.actions for r in rand)  # the limit, not a stop, ended some


def test_runner_needs_disabled_autoreset(micro_env_kwargs):
    same_step = LLMRepairVectorEnv(num_envs=1, **micro_env_kwargs)
    with pytest.raises(ValueError, match="DISABLED"):
        run_episodes(same_step, NoOpPolicy(same_step.action_names), [0], progress=False)


def test_oracle_follows_the_fault_table(env):
    oracle = OraclePolicy(env.action_names, env.feature_names, n_filters=2, refilter_after=3)
    names = env.action_names
    oracle.reset(np.ones(3, dtype=bool))
    obs = np.zeros((3, len(env.feature_names)), dtype=np.float32)
    obs[:, env.feature_names.index("log10_lr")] = [-3.0, -1.5, -3.0]
    info = {
        "fault": {"type": np.array(["none", "bad_hparams", "label_noise"], dtype=object),
                  "target": np.array([None, None, "logic"], dtype=object)},
        "score": np.array([0.5, 0.5, 0.8]),
        "healthy_accuracy": {f: np.ones(3) for f in ("syntax", "logic", "fact")},
        "accuracy": {"syntax": np.array([0.5, 0.5, 1.0]), "logic": np.array([0.5, 0.5, 0.4]),
                     "fact": np.array([0.5, 0.5, 1.0])},
    }

    def step(score):
        return [names[i] for i in oracle.act(obs, {**info, "score": np.array(score)})]

    assert step([0.5, 0.5, 0.8]) == ["stop", "lr_down", "filter_noisy"]
    obs[1, env.feature_names.index("log10_lr")] = -3.0
    # several families broken: train all; noisy labels: filter, then retrain at a gentler lr
    assert step([0.5, 0.5, 0.8])[1:] == ["train_all", "lr_down"]
    obs[2, env.feature_names.index("log10_lr")] = -3.5
    # one family broken: train it alone; the second filter comes after refilter_after trainings
    assert [step([0.5, 0.6, 0.8])[2] for _ in range(4)] == ["train_logic"] * 3 + ["filter_noisy"]
    assert step([0.5, 0.6, 0.8])[2] == "train_logic"
    for _ in range(oracle.patience + 1):  # training that no longer raises the score: patience runs out
        last = step([0.5, 0.6, 0.8])
    assert last[1] == "stop"
    assert step([0.5, 0.55, 0.8])[1] == "rollback"  # worse than the best seen: go back to it first


def test_oracle_settles_at_a_gentler_lr_near_healthy(env):
    oracle = OraclePolicy(env.action_names, env.feature_names, settle_gap=0.1)
    oracle.reset(np.ones(2, dtype=bool))
    lr = env.feature_names.index("log10_lr")
    obs = np.zeros((2, len(env.feature_names)), dtype=np.float32)
    obs[:, lr] = -3.0
    info = {"fault": {"type": np.array(["weight_noise"] * 2, dtype=object)}, "score": np.array([0.9, 0.7]),
            "healthy_accuracy": {f: np.ones(2) for f in ("syntax", "logic", "fact")},
            "accuracy": {"syntax": np.array([0.92, 0.4]), "logic": np.ones(2), "fact": np.ones(2)}}
    names = [env.action_names[i] for i in oracle.act(obs, info)]
    assert names == ["lr_down", "train_syntax"]  # close to healthy: finish at a gentler lr; far: train at once
    obs[0, lr] = -3.5
    assert env.action_names[oracle.act(obs, info)[0]] == "train_syntax"

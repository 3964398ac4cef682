"""Env state: get_state / set_state / fork on the single and vector env, saved files, refusals, closing."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.envs.repair import LLMRepairEnv, LLMRepairVectorEnv
from llm_repair_gym.envs.snapshot import EnvState


@pytest.fixture
def micro(micro_env_kwargs):
    return micro_env_kwargs


def _play(env, actions) -> list:
    """Every step's observation, reward, ends and (flattened) info, for comparison."""
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info["score"], info["episode_flops"], info["instance"],
                    info["action_name"]))
    return out


def _same(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for step_a, step_b in zip(a, b)
               for x, y in zip(step_a, step_b)) and len(a) == len(b)


def _actions(env, steps, seed=0):
    return list(np.random.default_rng(seed).integers(env.single_action_space.n, size=(steps, env.num_envs)))


def test_vector_fork_replays_its_parent_and_is_independent(micro):
    env = LLMRepairVectorEnv(num_envs=3, **micro)
    env.reset(seed=5)
    _play(env, _actions(env, 3, seed=1))
    child = env.fork()
    actions = _actions(env, 40, seed=2)  # long enough for same-step autoresets inside the window
    parent_run = _play(env, actions)
    assert _same(parent_run, _play(child, actions))
    child.reset(seed=99)  # the child's resets and steps leave the parent alone
    before = {k: v.clone() for k, v in env.state.tensors().items()}
    _play(child, _actions(child, 2))
    assert all(torch.equal(before[k], v) for k, v in env.state.tensors().items())


def test_the_rows_of_a_state_continue_those_envs_in_a_vector_env_of_their_number(micro):
    source = LLMRepairVectorEnv(num_envs=3, **micro)
    source.reset(seed=11)
    _play(source, _actions(source, 2, seed=3))
    rows = [2, 0, 2, 1]
    branch = LLMRepairVectorEnv(num_envs=len(rows), **micro)
    branch.set_state(source.get_state().rows(rows))
    actions = _actions(source, 6, seed=4)
    # each branch slot steps like the source env it copies, given the same actions (repeats are independent)
    source_run = _play(source, actions)
    branch_run = _play(branch, [a[rows] for a in actions])
    for (obs, reward, *_), (b_obs, b_reward, *_) in zip(source_run, branch_run):
        assert np.array_equal(obs[rows], b_obs) and np.array_equal(reward[rows], b_reward)
    with pytest.raises(ValueError, match=r"env indices in \[0, 3\)"):
        source.get_state().rows([0, 3])
    with pytest.raises(ValueError, match="num_envs"):  # a state of 4 rows is not one of 3 envs
        source.set_state(source.get_state().rows(rows))


def test_single_env_fork_and_state_through_gym_make(micro):
    env = gym.make("LLMRepair-v0", **micro)
    env.reset(seed=3)
    env.step(0)
    state = env.unwrapped.get_state()
    child = env.unwrapped.fork()
    allowed = [i for i, name in enumerate(env.unwrapped.action_names) if name != "stop"]  # one episode
    actions = list(np.random.default_rng(4).choice(allowed, size=10))
    first = [env.unwrapped.step(int(a))[:4] for a in actions]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for f, c in
               zip(first, [child.step(int(a))[:4] for a in actions]) for x, y in zip(f, c))
    env.unwrapped.set_state(state)
    again = [env.unwrapped.step(int(a))[:4] for a in actions]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for f, g in zip(first, again) for x, y in zip(f, g))
    # an unseeded reset after a restore draws what it drew before (the generators are part of the state)
    env.unwrapped.set_state(state)
    obs_a = env.unwrapped.reset()[0]
    env.unwrapped.set_state(state)
    assert np.array_equal(obs_a, env.unwrapped.reset()[0])


_RESTORE = """
import sys, hashlib, numpy as np
from llm_repair_gym.envs.snapshot import EnvState
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.testing import micro_env_kwargs
env = LLMRepairVectorEnv(num_envs=3, **micro_env_kwargs(sys.argv[1]))
env.set_state(EnvState.load(sys.argv[2]))
digest = hashlib.sha256()
for a in np.random.default_rng(7).integers(env.single_action_space.n, size=(12, 3)):
    obs, reward, terminated, truncated, info = env.step(a)
    digest.update(obs.tobytes() + reward.tobytes() + terminated.tobytes() + info["score"].tobytes())
print(digest.hexdigest())
"""


def test_saved_state_restores_in_a_new_process(micro, tmp_path):
    import hashlib

    env = LLMRepairVectorEnv(num_envs=3, **micro)
    env.reset(seed=11)
    _play(env, _actions(env, 4, seed=3))
    path = env.get_state().save(tmp_path / "state.safetensors")
    digest = hashlib.sha256()
    for a in np.random.default_rng(7).integers(env.single_action_space.n, size=(12, 3)):
        obs, reward, terminated, truncated, info = env.step(a)
        digest.update(obs.tobytes() + reward.tobytes() + terminated.tobytes() + info["score"].tobytes())
    run = subprocess.run([sys.executable, "-c", _RESTORE, micro["cache_dir"], str(path)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == digest.hexdigest()


@pytest.mark.parametrize("change, message", [
    ({"num_envs": 3}, "num_envs"), ({"cost_weight": 0.01}, "cost_weight"), ({"faults": ["none"]}, "faults"),
    ({"max_episode_steps": 8}, "max_episode_steps"), ({"instances": "test"}, "instances"),
])
def test_a_state_from_another_env_is_refused_and_nothing_changes(micro, change, message):
    source = LLMRepairVectorEnv(num_envs=change.get("num_envs", 2), **micro)
    source.reset(seed=1)
    state = source.get_state()
    target = LLMRepairVectorEnv(num_envs=2, **{**micro, **{k: v for k, v in change.items() if k != "num_envs"}})
    target.reset(seed=2)
    before = {k: v.clone() for k, v in target.state.tensors().items()}
    with pytest.raises(ValueError, match=message):
        target.set_state(state)
    assert all(torch.equal(before[k], v) for k, v in target.state.tensors().items())


@pytest.mark.parametrize("field, value", [("env_id", "LLMRepair-v9"), ("version", "0.0.1"), ("format", 0)])
def test_a_state_of_another_id_version_or_format_is_refused(micro, field, value):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    env.reset(seed=1)
    state = env.get_state()
    state.identity[field] = value
    with pytest.raises(ValueError, match=field):
        env.set_state(state)


def test_a_state_of_another_preset_is_refused(micro):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    env.reset(seed=1)
    state = env.get_state()
    state.identity["config"]["preset"]["name"] = "tiny"
    with pytest.raises(ValueError, match="config preset"):
        env.set_state(state)


def test_damaged_state_files_are_refused(micro, tmp_path):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    env.reset(seed=1)
    path = env.get_state().save(tmp_path / "state.safetensors")
    data = path.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF  # a byte inside the last tensor's data
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    (tmp_path / "foreign").write_bytes(b"not a state at all")
    with pytest.raises(ValueError, match="truncated"):
        EnvState.load(tmp_path / "truncated")
    with pytest.raises(ValueError, match="checksum"):
        EnvState.load(tmp_path / "flipped")
    with pytest.raises(ValueError, match="not an llm-repair-gym env state"):
        EnvState.load(tmp_path / "foreign")
    with pytest.raises(ValueError, match="cannot read"):
        EnvState.load(tmp_path / "missing")
    assert EnvState.load(path).identity == env.get_state().identity


def test_closed_envs_refuse_every_call(micro):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    env.reset(seed=0)
    env.close()
    for call in (lambda: env.step(np.zeros(2, dtype=np.int64)), lambda: env.reset(seed=0), env.get_state, env.fork):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    env.close()  # closing twice is fine
    single = LLMRepairEnv(**micro)
    single.close()
    with pytest.raises(RuntimeError, match="closed"):
        single.reset(seed=0)


def test_step_before_reset_and_bad_seeds_are_refused(micro):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    with pytest.raises(ValueError, match="reset"):
        env.step(np.zeros(2, dtype=np.int64))
    for seed in (-1, 2**63, [1], [1.5, 2.0], "7", True):
        with pytest.raises(ValueError, match="seed must be"):
            env.reset(seed=seed)
    assert not env._started
    single = LLMRepairEnv(**micro)
    with pytest.raises(ValueError, match="seed must be"):
        single.reset(seed=-3)


def test_malformed_host_values_are_refused_before_anything_changes(micro):
    env = LLMRepairVectorEnv(num_envs=2, **micro)
    env.reset(seed=1)
    state = env.get_state()
    env.step(np.zeros(2, dtype=np.int64))
    before = {k: v.clone() for k, v in env.state.tensors().items()}
    for key, value in (("steps", [1]), ("needs_reset", "no"), ("np_random", {"bit_generator": "Nope"})):
        broken = EnvState(identity=state.identity, host={**state.host, key: value}, tensors=state.tensors)
        with pytest.raises(ValueError, match="malformed"):
            env.set_state(broken)
        assert all(torch.equal(before[k], v) for k, v in env.state.tensors().items())


def test_a_single_env_refuses_a_malformed_generator_before_anything_changes(micro):
    env = LLMRepairEnv(**micro)
    env.reset(seed=1)
    state = env.get_state()
    env.step(0)
    before = {k: v.clone() for k, v in env.vector.state.tensors().items()}
    broken = EnvState(identity=state.identity, host={**state.host, "single_np_random": {"bit_generator": "Nope"}},
                      tensors=state.tensors)
    with pytest.raises(ValueError, match="malformed"):
        env.set_state(broken)
    assert all(torch.equal(before[k], v) for k, v in env.vector.state.tensors().items())

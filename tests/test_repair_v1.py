"""LLMRepair-v1: registration and checkers, N=1 and determinism, state and fork, the telescoping return, probes,
checkpoint and rollback, forced fault sets and refused input, prices and budgets, hidden_lr, the documented
repairs, and v0 left as it was.

Every env here is micro (``llm_repair_gym.testing``) with live instances, so a reset injects its faults in a
fraction of a second: the data faults' fine-tuning runs one round instead of rounds until a 0.3 accuracy drop
(``faults_v1.DROP`` patched; the micro zoo's accuracy is near 0, so the drop would never come and every
label_noise or data_shift injection would run its full 200 steps). These are mechanics tests, not calibration.
"""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym import testing as micro_settings
from llm_repair_gym.envs.checker import check_vector_env
from llm_repair_gym.envs.repair import LLMRepairVectorEnv
from llm_repair_gym.envs.repair_v1 import MIN_BUDGET, LLMRepairV1Env, LLMRepairV1VectorEnv
from llm_repair_gym.envs.snapshot import EnvState
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair import faults_v1
from llm_repair_gym.repair.faults_v1 import FAULT_NAMES_V1, FAULTS_V1, documented_repair
from llm_repair_gym.repair.instances import BankConfig

HEALTHY = {"faults": []}  # reset options for a healthy start: the cheapest reset
V0_ACTIONS = ["train_all", "train_syntax", "train_logic", "train_fact", "filter_noisy", "restore_data",
              "reinit_block0", "reinit_block1", "rollback", "prune", "lr_up", "lr_down", "switch_optimizer", "stop"]
# what a probe step may change: the streams, the step's bookkeeping and measurement, the probe slots
PROBE_MAY_CHANGE = {"rng.counters", "steps", "flops", "episode_cost", "accuracy", "crashed", "probe_values",
                    "probe_step"}


@pytest.fixture(scope="module", autouse=True)
def one_round_injections():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(faults_v1, "DROP", -1.0)  # no round reaches it: one round of fine-tuning, then stop
        yield


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """Micro v1 kwargs with live instances, in this module's own cache (its zoo builds in about a second)."""
    return {**micro_settings.micro_env_kwargs(tmp_path_factory.mktemp("cache-v1"), env_id="LLMRepair-v1"),
            "instances": "live"}


@pytest.fixture(scope="module")
def pair(micro):
    """Two envs with the default settings, shared by the tests that reset them before use (building one costs
    about a second, mostly the task suite)."""
    return vector(micro)


def vector(micro, n=2, **kwargs) -> LLMRepairV1VectorEnv:
    return LLMRepairV1VectorEnv(num_envs=n, **{**micro, **kwargs})


def ids(env, *names) -> list[int]:
    return [env.action_names.index(name) for name in names]


def col(env, name: str) -> int:
    return env.feature_names.index(name)


def key_numbers(info: dict) -> dict:
    """The info entries that must agree between two runs of the same episode."""
    out = {k: np.asarray(info[k]) for k in ("score", "price", "budget", "test_score", "objective", "episode_flops",
                                            "crashed", "zoo_model")
           if k in info}
    out["fault"] = np.asarray(info["fault"]["type"])
    out |= {f"faults/{name}": np.asarray(info["faults"][name]) for name in FAULT_NAMES_V1}
    if "flops" in info:
        out["flops"] = np.asarray(info["flops"])
    return out


def row(numbers: dict, i: int) -> dict:
    return {k: v[i] for k, v in numbers.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def state_tensors(env) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in env.state.tensors().items()}


def changed(before: dict[str, torch.Tensor], env) -> set[str]:
    return {k for k, v in env.state.tensors().items() if not torch.equal(before[k], v)}


# --- 1. registration and checkers -----------------------------------------------------------------------------

def test_registered_and_passes_gymnasium_and_vector_checkers(micro):
    env = gym.make("LLMRepair-v1", **micro)
    assert isinstance(env.unwrapped, LLMRepairV1Env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [str(w.message) for w in caught if "gymnasium" in w.filename]
    sb3_check_env(env.unwrapped, warn=True)
    check_vector_env("LLMRepair-v1", num_envs=2, seed=3, n_steps=4, **micro)
    vec = gym.make_vec("LLMRepair-v1", num_envs=2, **micro)
    assert isinstance(vec, LLMRepairV1VectorEnv)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert vec.single_action_space.n == len(vec.action_names) == len(set(vec.action_names))
    assert vec.single_observation_space.shape == (len(vec.feature_names),)
    assert vec.fault_names == list(FAULT_NAMES_V1)
    doc = LLMRepairV1VectorEnv.__doc__  # the manual names every action, feature and fault
    assert not [name for name in [*vec.action_names, *vec.feature_names, *FAULT_NAMES_V1] if name not in doc]


# --- 2. N=1 vector env == single env --------------------------------------------------------------------------

def test_vector_env_with_one_env_steps_like_the_single_env(micro):
    single = LLMRepairV1Env(**micro)
    vec = vector(micro, n=1)
    s_obs, s_info = single.reset(seed=5)
    v_obs, v_info = vec.reset(seed=5)
    assert np.array_equal(s_obs, v_obs[0])
    assert_same(key_numbers(s_info), row(key_numbers(v_info), 0))
    plan = ["probe_activations", "train_all", "checkpoint", "reinit_block0", "rollback", "probe_optimizer",
            "lr_down", "probe_data", "stop"]
    for action in ids(vec, *plan):
        s_obs, s_rew, s_term, s_trunc, s_info = single.step(action)
        v_obs, v_rew, v_term, v_trunc, v_info = vec.step(np.array([action]))
        assert (s_rew, s_term, s_trunc) == (v_rew[0], v_term[0], v_trunc[0])
        if v_term[0]:  # SAME_STEP: the vector env already started its next episode; final_* hold the ended one
            assert np.array_equal(s_obs, v_info["final_obs"][0])
            assert_same(key_numbers(s_info), row(key_numbers(v_info["final_info"]), 0))
            break
        assert np.array_equal(s_obs, v_obs[0])
        assert_same(key_numbers(s_info), row(key_numbers(v_info), 0))
    assert s_term and s_info["action_name"] == "stop"
    s_obs, s_info = single.reset()  # unseeded: the episode the vector env's autoreset started
    assert np.array_equal(s_obs, v_obs[0])
    assert_same(key_numbers(s_info), {k: v for k, v in row(key_numbers(v_info), 0).items() if k != "flops"})
    for action in ids(vec, "probe_tokens", "train_fact"):
        s_obs, s_rew, *_ = single.step(action)
        v_obs, v_rew, *_ = vec.step(np.array([action]))
        assert np.array_equal(s_obs, v_obs[0]) and s_rew == v_rew[0]


# --- 3. determinism, fork, get_state / set_state --------------------------------------------------------------

MIXED_PLAN = ["probe_activations", "checkpoint", "train_all", "probe_optimizer", "reinit_block1", "rollback",
              "probe_data", "lr_up", "reset_norms", "probe_heldout", "refresh_data", "filter_noisy", "stop"]


def run(env, seed, actions):
    obs, info = env.reset(seed=seed)
    out = [(obs, None, None, None, key_numbers(info))]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, key_numbers(info)))
    return out


def assert_same_trajectory(a, b) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        for u, v in zip(x[:4], y[:4]):
            assert (u is None and v is None) or np.array_equal(u, v), t
        assert_same(x[4], y[4])


def test_same_seed_and_actions_give_bitwise_identical_episodes(micro, pair):
    first, second = vector(micro), pair  # a fresh env and one with a history: a seeded reset forgets it
    plan = ids(first, *MIXED_PLAN)
    actions = [np.array([a, b]) for a, b in zip(plan, plan[3:] + plan[:3])]  # both envs stop, at other steps
    one, two = run(first, 11, actions), run(second, 11, actions)
    assert_same_trajectory(one, two)
    assert any(t[2].any() for t in one[1:])  # an episode ended (and autoreset) in the compared span
    other, _ = second.reset(seed=12)
    assert not np.array_equal(other, one[0][0])  # the seed matters: the comparison is not vacuous


def test_fork_and_set_state_continue_identically(micro, tmp_path):
    env = vector(micro, max_episode_steps=14)
    env.reset(seed=3)
    for a in ids(env, "probe_gradients", "checkpoint", "train_all"):
        env.step(np.array([a, a]))
    fork, decoy = env.fork(), env.fork()
    env.get_state().save(tmp_path / "state.safetensors")
    *_, info = decoy.step(np.array(ids(env, "stop", "stop")))  # new episodes in the decoy only
    assert not np.array_equal(info["budget"], env.state.budget.numpy())  # so a shared budget would show
    restored = vector(micro, max_episode_steps=14)
    _, info = restored.reset(seed=4, options=HEALTHY)
    assert not np.array_equal(info["budget"], env.state.budget.numpy())  # set_state must bring the budgets back
    restored.set_state(EnvState.load(tmp_path / "state.safetensors"))
    rng = np.random.default_rng(0)
    cheap = ids(env, "lr_up", "lr_down", "reset_optimizer", "probe_tokens", "checkpoint", "rollback", "train_fact")
    ended = np.zeros(2, dtype=bool)
    for t in range(12):  # every budget (at most 14, 3 steps spent) runs out: the episodes end on the restored budgets
        a = rng.choice(cheap, size=2)
        results = [e.step(a) for e in (env, fork, restored)]
        for other in results[1:]:
            for x, y in zip(results[0][:4], other[:4]):
                assert np.array_equal(x, y), t
            assert_same(key_numbers(results[0][4]), key_numbers(other[4]))
        ended |= results[0][2]
    assert ended.all()

    single = LLMRepairV1Env(**micro)
    single.reset(seed=7)
    single.step(ids(env, "probe_optimizer")[0])
    saved = single.get_state()
    twin = single.unwrapped.fork()
    again = LLMRepairV1Env(**micro)
    again.reset(seed=8, options=HEALTHY)
    again.set_state(saved)
    for a in ids(env, "train_all", "checkpoint", "probe_heldout", "rollback"):
        outs = [e.step(a) for e in (single, twin, again)]
        assert all(np.array_equal(outs[0][0], o[0]) and outs[0][1:4] == o[1:4] for o in outs[1:])


# --- 4. the return telescopes to the objective ----------------------------------------------------------------

def test_return_telescopes_to_the_objective(micro):
    env = vector(micro, n=3, max_episode_steps=12, cost_weight=0.05, crash_penalty=0.7)
    rng = np.random.default_rng(1)
    _, info = env.reset(seed=2)
    start = {"test": info["test_score"].copy(), "price": info["price"].copy(), "crashed": info["crashed"].copy()}
    returns, crashes = np.zeros(3), np.zeros(3)
    checked, penalised = 0, 0
    for t in range(26):
        a = rng.integers(env.single_action_space.n, size=3)
        if t == 4:  # env 1 diverges: its return pays a crash penalty
            env.ctx.layout.views(env.state.params)["h.0.mlp.c_fc.weight"][1, 0, 0] = float("nan")
        _, reward, terminated, truncated, info = env.step(a)
        assert not truncated.any()
        returns += reward
        done = terminated
        now = np.where(done, info["final_info"]["crashed"], info["crashed"]) if done.any() else info["crashed"]
        crashes += now & ~start["crashed"]
        start["crashed"] = now
        for i in np.flatnonzero(done):
            final = info["final_info"]
            objective = final["objective"][i]
            assert returns[i] == pytest.approx(objective, abs=1e-5)
            assert final["price"][i] == start["price"][i]
            expected = (final["test_score"][i] - start["test"][i]) - start["price"][i] * final["episode_flops"][i] \
                / env.flops_ref - env.crash_penalty * crashes[i]
            assert objective == pytest.approx(expected, abs=1e-5)
            checked, penalised = checked + 1, penalised + crashes[i]
            returns[i], crashes[i] = 0.0, 0
            start["test"][i], start["price"][i] = info["test_score"][i], info["price"][i]
            start["crashed"][i] = info["crashed"][i]
    assert checked >= 4 and penalised >= 1

    single = LLMRepairV1Env(**{**micro, "max_episode_steps": 12})  # autoreset disabled: info["objective"] at the end
    assert single.action_names[-1] == "stop"  # left out of the random actions below
    single.reset(seed=9, options={"faults": ["norm_gain", "adam_poison"]})
    total, terminated = 0.0, False
    while not terminated:
        _, reward, terminated, truncated, info = single.step(int(rng.integers(single.action_space.n - 1)))
        total += reward
    assert not truncated and total == pytest.approx(info["objective"], abs=1e-5) and info["objective"] != 0


def test_crash_counts_in_the_objective(micro):
    env = vector(micro, n=2, max_episode_steps=12, autoreset_mode="Disabled", crash_penalty=0.7)
    _, info0 = env.reset(seed=0, options=HEALTHY)
    env.ctx.layout.views(env.state.params)["h.0.mlp.c_fc.weight"][0, 0, 0] = float("nan")
    stop, train_all = ids(env, "stop", "train_all")
    _, reward, *_ , info = env.step(np.array([train_all, train_all]))
    assert info["crashed"].tolist() == [True, False] and reward[0] <= -0.7
    _, reward2, terminated, _, info = env.step(np.array([stop, stop]))
    assert terminated.all()
    flops = info["episode_flops"] / env.flops_ref
    expected = info["test_score"] - info0["test_score"] - info0["price"] * flops - 0.7 * np.array([1, 0])
    np.testing.assert_allclose(info["objective"], expected, atol=1e-5)
    np.testing.assert_allclose(reward + reward2, info["objective"], atol=1e-5)


# --- 5. probes ------------------------------------------------------------------------------------------------

def test_probes_fill_their_slots_cost_compute_and_leave_the_model_alone(micro):
    env = vector(micro, n=1, max_episode_steps=16)
    obs, info = env.reset(seed=0, options={"faults": ["adam_poison"]})  # moments a trial step could disturb
    slots = {p.name: [col(env, f.name) for f in p.features] for p in env.probes}
    for p in env.probes:
        assert obs[0, col(env, f"measured/{p.name}")] == 0 and obs[0, col(env, f"age/{p.name}")] == 1
        assert not obs[0, slots[p.name]].any()
    assert len(env.probes) == 6 and all(p.name in env.action_names for p in env.probes)
    max_steps = env.max_episode_steps
    for t, p in enumerate(env.probes, start=1):
        before = state_tensors(env)
        score, price = info["score"][0], info["price"][0]
        obs_before = obs
        obs, reward, terminated, _, info = env.step(np.array(ids(env, p.name)))
        assert not terminated[0]
        assert changed(before, env) <= PROBE_MAY_CHANGE, p.name  # parameters, optimizer, data: untouched
        assert obs[0, col(env, f"measured/{p.name}")] == 1
        assert obs[0, col(env, f"age/{p.name}")] == 0  # measured by the step that produced this observation
        assert (obs[0, slots[p.name]] != 0).any(), p.name
        for q in env.probes[:t - 1]:  # earlier probes: same values, one step older
            assert np.array_equal(obs[0, slots[q.name]], obs_before[0, slots[q.name]])
            age = obs[0, col(env, f"age/{q.name}")] - obs_before[0, col(env, f"age/{q.name}")]
            assert age == pytest.approx(1 / max_steps)
        flops = env.actions[env.action_names.index(p.name)].flops
        assert flops > 0 and info["flops"][0] == flops
        assert reward[0] == pytest.approx(info["score"][0] - score - price * flops / env.flops_ref, abs=1e-6)
    obs, _, _, _, info = env.step(np.array(ids(env, "stop")))
    new_episode = obs[0]
    assert all(new_episode[col(env, f"measured/{p.name}")] == 0 for p in env.probes)
    assert not any(new_episode[slots[p.name]].any() for p in env.probes)


def test_an_inert_action_keeps_the_last_measurement_and_a_model_change_measures_afresh(pair):
    pair.reset(seed=3, options=HEALTHY)
    first, _, _, _, info = pair.step(np.array(ids(pair, "train_all", "train_all")))
    measured = [col(pair, f"val_acc/{f}") for f in FAMILIES] + [col(pair, f"train_loss/{f}") for f in FAMILIES]
    score = info["score"].copy()
    counters = pair.state.rng.counters.clone()
    obs, reward, _, _, info = pair.step(np.array(ids(pair, "lr_up", "train_all")))
    assert np.array_equal(obs[0, measured], first[0, measured]) and info["score"][0] == score[0]
    assert reward[0] == 0.0  # no compute, no redrawn sample: nothing to reward
    assert torch.equal(pair.state.rng.counters[0], counters[0])  # no fresh validation draw for env 0
    assert not torch.equal(pair.state.rng.counters[1], counters[1])
    counters = pair.state.rng.counters.clone()
    obs, reward, _, _, info = pair.step(np.array(ids(pair, "probe_tokens", "reinit_block0")))
    flops = pair.actions[ids(pair, "probe_tokens")[0]].flops
    assert np.array_equal(obs[0, measured], first[0, measured])
    assert reward[0] == pytest.approx(-info["price"][0] * flops / pair.flops_ref, rel=1e-6)
    assert not torch.equal(pair.state.rng.counters[1], counters[1])  # the re-initialised model measured afresh


def test_a_probe_is_zero_steps_old_in_the_observation_it_produced(pair):
    pair.reset(seed=0, options=HEALTHY)
    obs, *_ = pair.step(np.array(ids(pair, "probe_tokens", "probe_tokens")))
    assert (obs[:, col(pair, "age/probe_tokens")] == 0).all()


# --- 6. checkpoint and rollback -------------------------------------------------------------------------------

def test_rollback_returns_to_the_checkpoint_and_does_nothing_without_one(pair):
    env = pair
    env.reset(seed=1, options=HEALTHY)
    train_all, checkpoint, reinit, rollback = ([a, a] for a in ids(env, "train_all", "checkpoint", "reinit_block0",
                                                                    "rollback"))
    env.step(np.array(train_all))
    before = state_tensors(env)
    obs, *_ = env.step(np.array(rollback))
    assert (obs[:, col(env, "has_checkpoint")] == 0).all()
    assert not changed(before, env) & {"params", "opt.exp_avg", "opt.exp_avg_sq", "opt.step"}
    assert before["opt.exp_avg"].abs().sum() > 0  # the moments a rollback would have zeroed were there

    obs, *_ = env.step(np.array(checkpoint))
    kept = env.state.params.clone()
    assert (obs[:, col(env, "has_checkpoint")] == 1).all()
    for a in (train_all, reinit, train_all):
        env.step(np.array(a))
    assert not torch.equal(env.state.params, kept)
    obs, *_ = env.step(np.array(rollback))
    assert torch.equal(env.state.params, kept)
    assert not env.state.opt.exp_avg.any() and not env.state.opt.exp_avg_sq.any()
    assert (obs[:, col(env, "has_checkpoint")] == 1).all()  # the checkpoint stays: rollback returns there again
    env.step(np.array(reinit))
    env.step(np.array(rollback))
    assert torch.equal(env.state.params, kept)


# --- 7. forced fault sets and refused input -------------------------------------------------------------------

def test_reset_options_force_the_fault_set(pair):
    env = pair
    _, info = env.reset(seed=0, options={"faults": ["hidden_lr", "norm_gain"]})  # any order: table order in type
    assert info["fault"]["type"].tolist() == ["norm_gain+hidden_lr"] * 2
    for name in FAULT_NAMES_V1:
        assert info["faults"][name].tolist() == [name in ("norm_gain", "hidden_lr")] * 2, name
    gain = FAULTS_V1[FAULT_NAMES_V1.index("norm_gain")]
    assert ((gain.severity_low <= info["fault_severities"]["norm_gain"])
            & (info["fault_severities"]["norm_gain"] <= gain.severity_high)).all()
    assert set(info["fault_targets"]["norm_gain"].tolist()) <= {0, 1}
    assert info["fault"]["target"].tolist() == [f"block{t}" for t in info["fault_targets"]["norm_gain"]]
    _, info = env.reset(seed=0, options={"faults": []})
    assert info["fault"]["type"].tolist() == ["none", "none"] and info["fault"]["target"].tolist() == [None, None]
    _, info = env.reset(seed=0, options={"faults": [["label_noise"], []]})
    assert info["fault"]["type"].tolist() == ["label_noise", "none"]
    assert info["fault"]["target"][0] in FAMILIES
    _, info = env.reset(options={"faults": ["dead_units"], "reset_mask": np.array([False, True])})
    assert info["_fault"].tolist() == [False, True] and info["fault"]["type"][1] == "dead_units"
    assert env.state.faults[0].tolist() == [n == "label_noise" for n in FAULT_NAMES_V1]  # env 0 kept its episode


BAD_FAULTS = {"unknown": ["gremlins"], "repeated": ["norm_gain", "norm_gain"], "too few lists": [["norm_gain"]],
              "too many lists": [["norm_gain"], ["hidden_lr"], []], "a string": "norm_gain",
              "unknown in a list": [["norm_gain"], ["bogus"]], "not a list": {"norm_gain": 1}}


def test_bad_fault_options_are_refused_before_anything_changes(pair):
    env = pair
    env.reset(seed=0, options=HEALTHY)
    env.step(np.array(ids(env, "train_all", "lr_up")))
    before, obs = state_tensors(env), env._obs.clone()
    for what, faults in BAD_FAULTS.items():
        with pytest.raises(ValueError, match="fault"):
            env.reset(seed=1, options={"faults": faults})
        assert not changed(before, env), what
        assert torch.equal(env._obs, obs), what
    env.step(np.array(ids(env, "lr_up", "lr_up")))  # the env goes on where it was
    assert env.state.steps.tolist() == [2, 2]


def test_bad_settings_and_actions_are_refused(micro, pair):
    with pytest.raises(ValueError, match="max_episode_steps"):
        vector(micro, max_episode_steps=MIN_BUDGET - 1)
    with pytest.raises(ValueError, match="faults"):
        vector(micro, faults=["norm_gain"])  # faults= limits bank draws; live resets draw every fault
    env = pair
    env.reset(seed=0, options=HEALTHY)
    before = state_tensors(env)
    for bad in (np.array([0, env.single_action_space.n]), np.array([-1, 0]), np.array([0])):
        with pytest.raises(ValueError, match="actions must"):
            env.step(bad)
    assert not changed(before, env)
    single = LLMRepairV1Env(**micro)
    single.reset(seed=0, options=HEALTHY)
    with pytest.raises(ValueError, match="action must"):
        single.step(single.action_space.n)

    bank = vector(micro, n=1, instances="train", bank=BankConfig(train_size=2, test_size=1, min_drop=0.0,
                                                                  build_batch=2))
    bank.reset(seed=0)
    before = state_tensors(bank)
    with pytest.raises(ValueError, match="instances='live'"):
        bank.reset(seed=1, options={"faults": ["norm_gain"]})
    assert not changed(before, bank)


# --- 8. per-episode price and budget --------------------------------------------------------------------------

def test_price_and_budget_vary_lie_in_range_and_are_observed(micro):
    for cost_weight in (0.01, 0.2):
        env = vector(micro, n=4, max_episode_steps=20, cost_weight=cost_weight)
        prices, budgets = [], []
        for seed in (0, 10):
            obs, info = env.reset(seed=seed, options=HEALTHY)
            prices += info["price"].tolist()
            budgets += info["budget"].tolist()
            np.testing.assert_allclose(obs[:, col(env, "log10_price")], np.log10(info["price"]), atol=1e-6)
            np.testing.assert_allclose(obs[:, col(env, "budget")], info["budget"] / 20, atol=1e-7)
            assert (obs[:, col(env, "steps_used")] == 0).all()
        prices, budgets = np.array(prices), np.array(budgets)
        span = math.sqrt(10)
        assert ((cost_weight / span <= prices) & (prices <= cost_weight * span)).all()
        assert ((budgets >= MIN_BUDGET) & (budgets <= 20)).all()
        assert len(set(prices.tolist())) == len(prices) and len(set(budgets.tolist())) >= 3


def test_an_episode_without_stop_terminates_when_its_budget_is_spent(micro):
    env = LLMRepairV1Env(**{**micro, "max_episode_steps": 15})
    lr_up, lr_down = ids(env.unwrapped.vector, "lr_up", "lr_down")
    budgets = set()
    for seed in range(4):
        obs, info = env.reset(seed=seed, options=HEALTHY)
        budget = info["budget"]
        budgets.add(budget)
        for t in range(1, budget + 1):
            obs, _, terminated, truncated, info = env.step(lr_up if t % 2 else lr_down)
            assert not truncated and terminated == (t == budget), (seed, t, budget)
            assert obs[col(env.unwrapped.vector, "steps_used")] == pytest.approx(t / budget)
    assert len(budgets) >= 2  # budgets differ across seeds: the end is the episode's own


# --- 9. hidden_lr ---------------------------------------------------------------------------------------------

def test_hidden_lr_hides_from_the_configured_lr_and_survives_lr_down(pair):
    env = pair
    obs, info = env.reset(seed=0, options={"faults": [["hidden_lr"], []]})
    assert obs[:, col(env, "log10_lr")] == pytest.approx([-3.0, -3.0], abs=1e-6)  # both look the same
    severity = info["fault_severities"]["hidden_lr"][0]
    assert severity in (1.0, 2.0)
    scale = env.state.lr_scale.clone()
    assert scale.tolist() == pytest.approx([10 ** (severity / 2), 1.0])
    lr = env.state.opt.lr.clone()
    assert lr.tolist() == pytest.approx([1e-3 * scale[0].item(), 1e-3])
    lr_down, lr_up = ids(env, "lr_down", "lr_up")
    obs, *_ = env.step(np.array([lr_down, lr_down]))
    assert (env.state.opt.lr / lr).tolist() == pytest.approx([10 ** -0.5] * 2, rel=1e-5)
    assert torch.equal(env.state.lr_scale, scale)  # the hidden factor stays
    assert obs[:, col(env, "log10_lr")] == pytest.approx([-3.5, -3.5], abs=1e-6)
    env.step(np.array([lr_up, lr_up]))
    assert env.state.opt.lr.tolist() == pytest.approx(lr.tolist(), rel=1e-5)


# --- 10. documented repairs -----------------------------------------------------------------------------------

def one_set(*entries) -> tuple[list[bool], list[int], list[float]]:
    faults, targets, severities = [False] * len(FAULTS_V1), [-1] * len(FAULTS_V1), [0.0] * len(FAULTS_V1)
    for name, target, severity in entries:
        k = FAULT_NAMES_V1.index(name)
        faults[k], targets[k], severities[k] = True, target, severity
    return faults, targets, severities


def test_documented_repairs_are_sensible_and_use_env_actions(pair):
    logic = FAMILIES.index("logic")
    assert documented_repair(*one_set()) == ["stop"]
    two = documented_repair(*one_set(("hidden_lr", -1, 2.0)))
    assert two[:2] == ["lr_down", "lr_down"] and two.count("lr_down") == 2 and two[-1] == "stop"
    assert documented_repair(*one_set(("hidden_lr", -1, 1.0))).count("lr_down") == 1
    noisy = documented_repair(*one_set(("label_noise", logic, 0.4)))
    assert "filter_noisy" in noisy and noisy.index("filter_noisy") < noisy.index("train_all")
    assert documented_repair(*one_set(("norm_gain", 1, 6.0))) == ["reset_norms", "train_all", "stop"]
    both = documented_repair(*one_set(("label_noise", logic, 0.4), ("hidden_lr", -1, 2.0)))
    assert both.count("lr_down") == 3 and both[:3] == ["lr_down"] * 3  # optimizer first, one more for gentleness
    poisoned = documented_repair(*one_set(("adam_poison", -1, 1.2), ("norm_gain", 0, 5.0), ("data_shift", 2, 0.0)))
    assert poisoned.index("reset_optimizer") < poisoned.index("reset_norms") < poisoned.index("refresh_data")

    names = set(pair.action_names)
    n_targets = {"block": 2, "family": len(FAMILIES), "none": 1}
    produced = set()
    for j, fault in enumerate(FAULTS_V1):
        for target in range(n_targets[fault.target_kind]):
            for severity in (fault.severity_low, fault.severity_high):
                t = target if fault.target_kind != "none" else -1
                produced |= set(documented_repair(*one_set((fault.name, t, severity))))
                for other in FAULTS_V1[j + 1:]:
                    u = 0 if other.target_kind != "none" else -1
                    produced |= set(documented_repair(*one_set((fault.name, t, severity),
                                                               (other.name, u, other.severity_high))))
    assert produced <= names, produced - names
    assert {"filter_noisy", "refresh_data", "reset_norms", "reset_optimizer", "lr_down", "train_fact"} <= produced


# --- 11. v0 unchanged -----------------------------------------------------------------------------------------

def test_v0_keeps_its_actions_features_and_ends(micro):
    v0 = micro_settings.micro_env_kwargs(micro["cache_dir"])  # the same micro zoo
    env = LLMRepairVectorEnv(num_envs=2, max_episode_steps=2, instances="live", faults=["none"], **v0)
    assert env.action_names == V0_ACTIONS and env.single_action_space.n == 14
    assert len(env.feature_names) == 35 and env.single_observation_space.shape == (35,)
    assert not any(n.startswith(("measured/", "age/", "probe")) or n in ("budget", "log10_price")
                   for n in env.feature_names)
    _, info = env.reset(seed=0)
    assert "price" not in info and "objective" not in info
    lr_up = env.action_names.index("lr_up")
    *_, info = env.step(np.array([lr_up, lr_up]))
    _, reward, terminated, truncated, final = env.step(np.array([lr_up, lr_up]))
    assert truncated.all() and not terminated.any()  # v0 truncates at max_episode_steps...
    np.testing.assert_allclose(reward, final["final_info"]["score"] - info["score"], atol=1e-6)  # ...no end term
    assert gym.spec("LLMRepair-v0").entry_point == "llm_repair_gym.envs.repair:LLMRepairEnv"

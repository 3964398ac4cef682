"""LLMRepair-Suite-v1: cut from v1's fault-set banks (a held-out zoo model and held-out fault pairs), checked against
the bank an env loads, and played by the runner (no-op, random, the v1 rules, the documented repair) and verified.

The suite is frozen here from small banks (24 train, 12 test instances, no minimum drop) of the tiny preset (whose
zoo the other tests share; v1's own nano zoo would be built here) in a private cache beside a copy of the real tiny
zoo; the policies are checked on hand-made observations."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.baselines import DocumentedRepairPolicy
from agents.rules_v1 import RulesV1Policy
from llm_repair_gym.bench.registry import agents_for, registered_agents
from llm_repair_gym.bench.results import read_results, write_results
from llm_repair_gym.bench.runner import plan_jobs, run_jobs
from llm_repair_gym.bench.verify import verify_results
from llm_repair_gym.envs import repair_v1, suites
from llm_repair_gym.lm.model import group_names
from llm_repair_gym.lm.presets import get_preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.lm.zoo import zoo_path
from llm_repair_gym.repair import measure_v1
from llm_repair_gym.repair.actions_v1 import build_actions_v1
from llm_repair_gym.repair.dynamics import DynamicsConfig
from llm_repair_gym.repair.faults_v1 import FAULT_NAMES_V1, HELD_OUT_PAIRS, documented_repair
from llm_repair_gym.repair.features_v1 import build_features_v1
from llm_repair_gym.repair.instances import BankConfig
from llm_repair_gym.repair.probes import build_probes
from llm_repair_gym.rl.episodes import held_out_kwargs

SUITE = "LLMRepair-Suite-v1"
TINY_BANK = BankConfig(train_size=24, test_size=12, min_drop=0.0, build_batch=12)
CARRIED_SUITES = Path(suites.__file__).resolve().parents[1] / "data" / "suites"


# --- cutting a suite from a bank of fault sets (a hand-made bank) -------------------------------------------------

def _fake_env(sets: list[tuple[int, list[str], dict[str, float]]]):
    """An env stand-in whose v1 bank holds ``(zoo_model, faults, severities)`` instances (targets: 1 where due)."""
    k = len(FAULT_NAMES_V1)
    faults = torch.zeros(len(sets), k, dtype=torch.bool)
    targets = torch.full((len(sets), k), -1, dtype=torch.long)
    severities = torch.zeros(len(sets), k)
    for i, (_, names, severity) in enumerate(sets):
        for name in names:
            j = FAULT_NAMES_V1.index(name)
            faults[i, j], severities[i, j] = True, severity.get(name, 0.5)
            if repair_v1.FAULTS_V1[j].target_kind != "none":
                targets[i, j] = 1
    tensors = {"zoo_model": torch.tensor([m for m, _, _ in sets]), "faults": faults, "fault_targets": targets,
               "fault_severities": severities}
    return SimpleNamespace(bank=SimpleNamespace(size=len(sets), tensors=tensors))


SETS = [(0, [], {}), (7, ["weight_noise"], {"weight_noise": 1.25}),
        (3, ["label_noise", "hidden_lr"], {"hidden_lr": 2.0}), (2, ["label_noise", "norm_gain"], {"norm_gain": 6.0}),
        (7, ["data_shift", "norm_gain", "token_embed"], {}), (5, ["forgetting", "adam_poison", "dead_units"], {})]


def test_v1_entries_name_the_set_its_targets_and_its_largest_severity():
    env = _fake_env(SETS)
    held_out = suites.SUITE_SPECS[SUITE]["held_out"]
    test = suites.bank_entries(env, "test", held_out)
    train = suites.bank_entries(env, "train", held_out)
    # test: zoo model 7, and every instance holding a held-out pair, whatever its zoo model; train: the rest
    assert [e.instance for e in test] == [1, 2, 4, 5] and [e.instance for e in train] == [0, 3]
    assert [e.index for e in test] == [0, 1, 2, 3]
    assert (train[0].fault, train[0].target, train[0].severity) == ("none", None, 0.0)
    assert (train[1].fault, train[1].target, train[1].severity) == ("label_noise+norm_gain", "logic+block1", 6.0)
    assert (test[1].fault, test[1].target, test[1].severity) == ("label_noise+hidden_lr", "logic", 2.0)
    assert test[2].fault == "data_shift+norm_gain+token_embed" and test[2].zoo_model == 7


def test_the_v1_spec_holds_out_zoo_model_7_and_the_fault_pairs_v1s_train_bank_never_holds():
    spec = suites.SUITE_SPECS[SUITE]
    assert spec["env_id"] == "LLMRepair-v1" and spec["references"] == ["noop", "planner"]
    assert spec["held_out"] == {"zoo_model": [7], "fault_pairs": [list(p) for p in HELD_OUT_PAIRS]}
    assert held_out_kwargs("LLMRepair-v1") == {"instances": "test"}


def test_the_carried_v1_suite_is_hashed_and_holds_out_zoo_model_7_and_the_pairs():
    payload = json.loads((CARRIED_SUITES / f"{SUITE}.json").read_text())
    assert payload["content_hash"] == suites.content_hash(payload)
    assert {k: payload[k] for k in suites.SUITE_SPECS[SUITE]} == suites.SUITE_SPECS[SUITE]
    train, test = payload["splits"]["train"], payload["splits"]["test"]
    pairs = [set(p) for p in HELD_OUT_PAIRS]
    holds = [any(p <= set(e["fault"].split("+")) for p in pairs) for e in test]
    assert all(e["zoo_model"] != 7 and not any(p <= set(e["fault"].split("+")) for p in pairs) for e in train)
    assert all(e["zoo_model"] == 7 or h for e, h in zip(test, holds)) and any(holds)
    assert any(h and e["zoo_model"] != 7 for e, h in zip(test, holds))  # pairs held out from seen models too
    assert [e["index"] for e in test] == list(range(len(test)))
    assert len({e["instance"] for e in train}) == len(train) and len(train) > 400 and len(test) > 40


def test_check_bank_refuses_a_v1_bank_whose_fault_sets_differ_from_the_suite():
    env = _fake_env(SETS)
    entries = suites.bank_entries(env, "train", suites.SUITE_SPECS[SUITE]["held_out"])
    suite = suites.Suite(SUITE, 1, "LLMRepair-v1", {"preset": "tiny"}, {}, "", {"train": tuple(entries)}, "hash")
    suites.check_bank(suite, "train", env)  # the bank it was cut from
    model, faults, severities = SETS[3]  # the train split's second entry, changed one field at a time
    for changed in ((4, faults, severities), (model, faults, {"norm_gain": 6.5}),
                    (model, ["label_noise", "dead_units"], severities)):
        with pytest.raises(ValueError, match="differs from the one"):
            suites.check_bank(suite, "train", _fake_env([*SETS[:3], changed, *SETS[4:]]))


# --- v0's suites are untouched ---------------------------------------------------------------------------------

def test_v0_suites_load_with_their_hashes_and_freezing_v0_again_cuts_the_same_entries(tiny_zoo, tmp_path,
                                                                                      monkeypatch):
    for name in ("LLMRepair-Suite-v0", "LLMMetaRepair-Suite-v0"):
        payload = json.loads((CARRIED_SUITES / f"{name}.json").read_text())
        assert payload["content_hash"] == suites.content_hash(payload)
        assert suites.load_suite(name).content_hash == payload["content_hash"]
    monkeypatch.setattr(suites, "SUITE_DIR", tmp_path)
    monkeypatch.setattr(suites, "_LOADED", {})
    name = "LLMRepair-Suite-v0"
    carried = json.loads((CARRIED_SUITES / f"{name}.json").read_text())
    again = json.loads(suites.freeze_suite(name).read_text())
    for payload in (carried, again):  # the carried file predates SuiteEntry's task field (null on instance suites)
        payload.pop("content_hash")
        for entries in payload["splits"].values():
            for e in entries:
                assert e.pop("task", None) is None
    assert again == carried


# --- the policies ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def names():
    preset = get_preset("tiny")
    probes = build_probes(preset, group_names(preset.model))
    actions = [a.name for a in build_actions_v1(preset, DynamicsConfig(), probes)]
    features = [f.name for f in build_features_v1(["block0", "block1"], probes)]
    return actions, features


class NoInfo(dict):
    def __getitem__(self, key):
        raise AssertionError(f"an observation-only policy read info[{key!r}]")


def _rows(features: list[str], **changes) -> np.ndarray:
    """One observation: a healthy model at a middling price, with ``changes`` (``/`` written ``__``)."""
    row = np.zeros(len(features), dtype=np.float32)
    base = {**{f"val_acc/{f}": 1.0 for f in FAMILIES}, **{f"train_loss/{f}": 0.01 for f in FAMILIES},
            **{f"distinct_pool/{f}": 0.97 for f in FAMILIES}, "log10_price": -2.0}
    for name, value in {**base, **{k.replace("__", "/"): v for k, v in changes.items()}}.items():
        row[features.index(name)] = value
    return row


def _play(policy, actions: list[str], rows: list[np.ndarray]) -> list[str]:
    """The actions the policy takes as it is shown ``rows`` in turn (one env)."""
    policy.reset(np.ones(1, dtype=bool))
    return [actions[int(policy.act(row[None], NoInfo())[0])] for row in rows]


def test_the_rules_stop_at_once_on_a_healthy_model(names):
    actions, features = names
    assert _play(RulesV1Policy(actions, features), actions, [_rows(features)]) == ["stop"]


def test_the_rules_fix_what_the_optimizer_and_activation_probes_show_then_train_until_healthy(names):
    actions, features = names
    broken = {f"val_acc__{f}": 0.3 for f in FAMILIES}
    rows = [_rows(features, **broken),
            _rows(features, **broken, moment_ratio=1.05, **{"trial_update__block0": 0.8}),  # poisoned moments
            _rows(features, **broken),  # after reset_optimizer
            _rows(features, **broken, **{f"trial_update__{g}": 1.0 for g in ("embeddings", "block0")}),  # 10x lr
            _rows(features, **broken), _rows(features, **broken),  # after each lr_down
            _rows(features, **broken, **{"act_scale__block1": 0.85}),  # inflated norms
            _rows(features, **broken),  # after reset_norms
            _rows(features, **{f"val_acc__{f}": 0.6 for f in FAMILIES}),
            _rows(features, **{f"val_acc__{f}": 0.99 for f in FAMILIES})]
    played = _play(RulesV1Policy(actions, features), actions, rows)
    assert played == ["probe_optimizer", "reset_optimizer", "probe_optimizer", "lr_down", "lr_down",
                      "probe_activations", "reset_norms", "train_all", "train_all", "stop"]


def test_the_rules_audit_a_family_that_fits_its_own_pool_only_where_the_repair_can_pay(names):
    actions, features = names
    noisy = {"val_acc__logic": 0.3, "train_loss__logic": 0.5, "log10_price": -2.6}
    start = [_rows(features, **noisy)] * 3
    cheap = _play(RulesV1Policy(actions, features), actions,
                  [*start, _rows(features, **noisy, suspect_labels__logic=0.35), *[_rows(features, **noisy)] * 3])
    assert cheap == ["probe_optimizer", "probe_activations", "probe_data", "filter_noisy", "lr_down", "train_all",
                     "train_all"]
    shard = _play(RulesV1Policy(actions, features), actions,
                  [*start, _rows(features, **noisy, **{"distinct_pool__logic": 0.05})])
    assert shard[-1] == "refresh_data"
    dear = [_rows(features, **{**noisy, "log10_price": -1.5})] * 4  # the audit alone would cost more than it can win
    assert _play(RulesV1Policy(actions, features), actions, dear) == ["probe_optimizer", "probe_activations",
                                                                     "train_all", "train_all"]
    two = [_rows(features, **noisy, val_acc__fact=0.6)] * 4  # no family stands out: nothing points at the data
    assert _play(RulesV1Policy(actions, features), actions, two)[2] == "train_all"


def test_the_rules_stop_training_when_it_gains_less_than_its_price(names):
    actions, features = names
    policy = RulesV1Policy(actions, features)
    assert policy.WINDOW == 3 and policy.PATIENCE == 3
    scores = [0.5, 0.5, 0.5, 0.7, 0.8, 0.805, 0.81, 0.812]  # reset, two probes, then trainings that slow down
    rows = [_rows(features, **{f"val_acc__{f}": s for f in FAMILIES}) for s in scores]
    # over the last 3 trainings the mean rose 0.1 a step, then 0.037 (both above the price, 0.01), then 0.004
    assert _play(policy, actions, rows) == ["probe_optimizer", "probe_activations", *["train_all"] * 5, "stop"]
    flat = [*scores[:4], 0.69, 0.7, 0.68]  # no new best for PATIENCE trainings
    assert _play(policy, actions, [_rows(features, **{f"val_acc__{f}": s for f in FAMILIES}) for s in flat]) == [
        "probe_optimizer", "probe_activations", *["train_all"] * 4, "stop"]


def test_the_documented_reference_plays_the_documented_repair_of_the_set_it_reads(names):
    actions, _ = names
    sets = [{"label_noise": (2, 0.4), "hidden_lr": (-1, 2.0)}, {}]
    info = {key: {n: np.array([s[n][k] if n in s else (-1 if key == "fault_targets" else 0) for s in sets])
                  for n in FAULT_NAMES_V1} for key, k in (("fault_targets", 0), ("fault_severities", 1))}
    info["faults"] = {n: np.array([n in s for s in sets]) for n in FAULT_NAMES_V1}
    plan = documented_repair([n in sets[0] for n in FAULT_NAMES_V1],
                             [int(info["fault_targets"][n][0]) for n in FAULT_NAMES_V1],
                             [float(info["fault_severities"][n][0]) for n in FAULT_NAMES_V1])
    assert plan[:3] == ["lr_down"] * 3 and "filter_noisy" in plan and plan[-1] == "stop"
    policy = DocumentedRepairPolicy(actions)
    policy.reset(np.ones(2, dtype=bool))
    played = [[actions[a] for a in policy.act(np.zeros((2, 1)), info)] for _ in range(len(plan) + 2)]
    assert [p[0] for p in played] == [*plan, "stop", "stop"] and {p[1] for p in played} == {"stop"}
    policy.reset(np.array([True, False]))
    assert actions[policy.act(np.zeros((2, 1)), info)[0]] == plan[0]  # a new episode starts its plan again


def test_v1s_agents_are_registered_after_v0s_and_only_v1_agents_play_it():
    agents = registered_agents()
    learners = ["tabular_q", "dqn", "sb3_ppo", "sb3_a2c", "sb3_dqn", "sb3_qrdqn"]
    v1_own = ["rules_v1", "documented", "planner", "troubleshooter", "dqfd_rules"]
    assert agents_for("LLMRepair-v1") == ["noop", "random", *learners, *v1_own]
    assert list(agents)[-len(v1_own):] == v1_own  # v0's agents keep their ranks, hence their colours
    assert "LLMRepair-v1" not in agents["heuristic"].env_ids and "LLMRepair-v1" not in agents["oracle"].env_ids
    assert all(agents[a].env_ids == ("LLMRepair-v1",) for a in v1_own)


# --- the suite frozen from tiny banks, an env on it, the runner and verify -----------------------------------------

@pytest.fixture(scope="module")
def tiny_suite(tiny_zoo, tmp_path_factory):
    """LLMRepair-Suite-v1 frozen from tiny v1 banks in a private cache (the real zoo copied there)."""
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(tiny_zoo.path, cache / tiny_zoo.path.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_REPAIR_GYM_CACHE", str(cache))
        patch.setattr(repair_v1, "DEFAULT_BANK_V1", TINY_BANK)
        patch.setitem(suites.SUITE_SPECS, SUITE, {**suites.SUITE_SPECS[SUITE], "env_kwargs": {"preset": "tiny"}})
        patch.setattr(suites, "SUITE_DIR", tmp_path_factory.mktemp("suites"))
        patch.setattr(suites, "_LOADED", {})
        suites.freeze_suite(SUITE)
        yield suites.load_suite(SUITE)


def test_the_frozen_v1_suite_holds_out_zoo_model_7_and_the_held_out_pairs(tiny_suite):
    train, test = tiny_suite.entries("train"), tiny_suite.entries("test")
    assert tiny_suite.references == ("noop", "planner") and tiny_suite.env_id == "LLMRepair-v1"
    pairs = [set(p) for p in HELD_OUT_PAIRS]
    assert train and test and {e.zoo_model for e in train} <= set(range(7))
    assert not any(p <= set(e.fault.split("+")) for e in train for p in pairs)
    assert all(e.zoo_model == 7 or any(p <= set(e.fault.split("+")) for p in pairs) for e in test)
    env = gym.make_vec("LLMRepair-v1", num_envs=1, instances="test", preset="tiny", progress=False).unwrapped
    try:
        bank = env.bank
        holders = [k for k in range(bank.size) if bank.tensors["zoo_model"][k] == 7 or any(
            p <= set(suites._describe(env, k)["fault"].split("+")) for p in pairs)]
        assert tiny_suite.instance_ids("test") == holders  # every held-out test-bank instance, in bank order
        entry = test[0]
        _, info = env.reset(seed=0, options={"instance": np.array([entry.instance])})
        assert (info["fault"]["type"][0], info["fault"]["target"][0]) == (entry.fault, entry.target)
        assert float(info["fault"]["severity"][0]) == pytest.approx(entry.severity, abs=1e-5)
    finally:
        env.close()
    assert "instances per fault" in tiny_suite.summary()


def test_an_env_on_the_v1_suite_checks_its_bank_and_draws_only_the_suites_train_instances(tiny_suite):
    env = gym.make_vec("LLMRepair-v1", num_envs=4, suite=SUITE, preset="tiny", progress=False)
    try:
        _, info = env.reset(seed=0)
        assert set(info["instance"].tolist()) <= set(tiny_suite.instance_ids("train"))
        u = env.unwrapped  # a bank instance brings its test score: the same as scoring it now
        assert torch.equal(u.state.test_accuracy, measure_v1.test_accuracy(u.ctx, u.state, torch.arange(4)))
        first = tiny_suite.entries("train")[0]
        wrong = suites.Suite(**{**tiny_suite.__dict__, "splits": {"train": (suites.SuiteEntry(
            0, first.instance, first.zoo_model, "none" if first.fault != "none" else "hidden_lr", first.target,
            first.severity),)}})
        with pytest.raises(ValueError, match="differs from the one"):
            suites.check_bank(wrong, "train", env.unwrapped)
    finally:
        env.close()


def test_the_runner_plays_v1s_agents_on_the_suite_and_verify_accepts_them(tiny_suite, tmp_path):
    with pytest.raises(ValueError, match="do not play"):
        plan_jobs(["heuristic"], [1], SUITE, "test", tmp_path)
    agents = ["noop", "random", "rules_v1", "documented"]
    todo, _ = plan_jobs(agents, [1], SUITE, "test", tmp_path, limit=2)
    run_jobs(todo, workers=1, progress=False)
    # the runner names actions and features on the suite's own preset: no zoo of v1's default preset was built
    assert zoo_path("tiny").exists() and not zoo_path("nano").exists()
    played = {a: read_results(tmp_path / "episodes" / a / "seed1.jsonl") for a in agents}
    entries = tiny_suite.entries("test")[:2]
    for agent, records in played.items():
        assert [r["instance"] for r in records] == [e.instance for e in entries]
        assert [r["fault"] for r in records] == [e.fault for e in entries], agent
        assert records[0]["env_id"] == "LLMRepair-v1" and records[0]["actions"]
    assert all(r["actions"] == ["stop"] for r in played["noop"])
    for r, e in zip(played["documented"], entries):
        plan = documented_repair(*_bank_fault_set(e.instance))
        assert r["actions"] == plan[:len(r["actions"])]  # the plan, cut by the episode's budget
    assert verify_results([tmp_path / "episodes"], progress=False).ok
    report = verify_results([tmp_path / "episodes"], progress=False, policy=True)
    # every agent here is rebuilt and chooses what it recorded
    assert report.ok and report.policy_episodes == report.episodes == len(agents) * len(entries)
    # random's episodes passed off as rules_v1's: their actions give their returns, but rules_v1 chose otherwise
    claimed = {k: played["rules_v1"][0][k] for k in ("agent", "agent_config", "config_hash")}
    forged = [{**r, **claimed} for r in played["random"]]
    write_results(tmp_path / "forged" / "seed1.jsonl", forged)
    assert verify_results([tmp_path / "forged"], progress=False).ok
    report = verify_results([tmp_path / "forged"], progress=False, policy=True)
    assert not report.ok and "the policy chooses" in report.failures[0]
    records = played["rules_v1"]
    records[0]["return"] += 0.01
    write_results(tmp_path / "episodes" / "rules_v1" / "seed1.jsonl", records)
    report = verify_results([tmp_path / "episodes" / "rules_v1"], progress=False)
    assert not report.ok and "return" in report.failures[0]


def _bank_fault_set(instance: int):
    env = gym.make_vec("LLMRepair-v1", num_envs=1, instances="test", preset="tiny", progress=False).unwrapped
    try:
        t = env.bank.tensors
        return (t["faults"][instance].tolist(), t["fault_targets"][instance].tolist(),
                t["fault_severities"][instance].tolist())
    finally:
        env.close()


# --- the privileged planner and the troubleshooter ------------------------------------------------------------------

def test_the_planner_searches_copies_of_an_entry_and_plays_its_best_plan_for_the_price_and_budget(
        tiny_suite, tmp_path, monkeypatch):
    from agents import planner
    from agents.loading import load_policy
    from agents.planner import PlannerPolicy, save_table, search_plans
    from llm_repair_gym.rl.episodes import run_episodes

    monkeypatch.setattr(planner, "ROLLOUT_STEPS", 6)  # short rollouts: the search's logic, not its reach
    monkeypatch.setattr(planner, "TAIL_GRID", (0, 1, 2, 4, 6))
    table = search_plans(SUITE, "test", levels=2, beam=1, limit=1, progress=False)
    entry = table["entries"][0]
    found = {tuple(c["prefix"]): c for c in entry["candidates"]}
    # level 1: no repair, every repair alone and the documented prefix; level 2: the best prefix's extensions
    assert {(), *((r,) for r in table["repairs"]), tuple(entry["documented_prefix"])} <= set(found)
    assert not {"train_all", "stop", "checkpoint", "rollback"} & set(table["repairs"])
    assert not any(r.startswith("probe_") for r in table["repairs"])
    second = [p for p, c in found.items() if c["level"] == 2]
    assert second and len({p[:-1] for p in second}) == 1 and len(second) <= len(table["repairs"])
    # a rollout is scored after k training steps for every k of the grid the rollout reaches; compute adds up
    for prefix, c in found.items():  # (a train_all is one unit of compute)
        assert c["k"] == [k for k in planner.TAIL_GRID if len(prefix) + k <= planner.ROLLOUT_STEPS]
        assert np.diff(c["units"]) == pytest.approx(np.diff(c["k"]), abs=1e-5)
    assert found[()]["test"][0] == pytest.approx(entry["test_start"], abs=1e-6)  # nothing done: the reset score
    policy = load_policy(save_table(table, tmp_path / "planner"))
    assert isinstance(policy, PlannerPolicy)

    def estimate(plan: list[str], price: float) -> float:
        """The table's estimate of ``plan``: its prefix's rollout after its training steps."""
        body = [a for a in plan if a != "stop"]
        for p, c in found.items():
            tail = len(body) - len(p)
            if tuple(body[:len(p)]) == p and body[len(p):] == ["train_all"] * tail and tail in c["k"]:
                j = c["k"].index(tail)
                return c["test"][j] - entry["test_start"] - price * c["units"][j] - c["crashes"][j]
        raise AssertionError(f"{plan} is no candidate of the table")

    for price, budget in ((1e-4, 32), (3e-3, 12), (10.0, 20), (1e-4, 3)):
        plan = policy.plan(entry["instance"], price, budget)
        assert len(plan) <= budget and (plan[-1] == "stop" or len(plan) == budget)
        best = max(c["test"][j] - entry["test_start"] - price * c["units"][j] - c["crashes"][j]
                   for p, c in found.items() for j, k in enumerate(c["k"]) if len(p) + k <= budget)
        assert estimate(plan, price) == pytest.approx(max(best, 0.0), abs=1e-6)  # the best, or stopping at once
    assert policy.plan(entry["instance"], 10.0, 20) == ["stop"]  # nothing pays at a prohibitive price
    # played by the runner's loop: the actions are the plan for the episode's own price and budget
    env = gym.make_vec("LLMRepair-v1", num_envs=1, autoreset_mode="Disabled", progress=False,
                       **tiny_suite.make_kwargs("test"))
    try:
        record = run_episodes(env, policy, [123], progress=False, instances=[entry["instance"]])[0]
        _, info = env.reset(seed=123, options={"instance": np.array([entry["instance"]])})
    finally:
        env.close()
    assert record.actions == policy.plan(entry["instance"], float(info["price"][0]), int(info["budget"][0]))
    with pytest.raises(ValueError, match="is not one"):
        policy.plan(10_000, 1e-3, 20)
    with pytest.raises(ValueError, match="effort must be in"):
        PlannerPolicy(table, effort=3)


def _troubleshooter_model(names, bias: dict[str, float], gain: float, harm: float, information: float) -> dict:
    """A hand-made model: beliefs are constant (one feature, weight 0), every probe equally informative."""
    from agents.troubleshooter import REPAIRS

    actions, features = names
    probes = [a for a in actions if a.startswith("probe_")]
    return {"features": ["val_acc/syntax"], "mean": [0.0], "std": [1.0],
            "weights": {a: [bias.get(a, -30.0), 0.0] for a in REPAIRS},
            "gain": {a: gain for a in REPAIRS}, "harm": {a: harm for a in REPAIRS},
            "units": {**{a: 0.0 for a in REPAIRS}, "filter_noisy": 11.0, **{p: 1.0 for p in probes}},
            "probes": probes, "information": {p: {a: information for a in REPAIRS} for p in probes},
            "probe_features": {p: [] for p in probes}, "action_names": actions, "feature_names": features}


def test_the_troubleshooter_repairs_by_expected_value_and_buys_information_only_when_it_pays(names):
    from agents.troubleshooter import TroubleshooterPolicy

    actions, features = names
    row = _rows(features, val_acc__syntax=0.2)
    sure = TroubleshooterPolicy(actions, features, _troubleshooter_model(
        names, {"reset_norms": 30.0, "filter_noisy": 30.0}, gain=0.3, harm=0.1, information=1.0))
    probe, repairs = sure.decide(row, price=1e-3, done_probes=set())
    # certain beliefs leave nothing to learn; the free repair goes before the one that costs 11 train_alls
    assert probe is None and repairs == ["reset_norms", "filter_noisy"]
    assert sure.decide(row, price=1.0, done_probes=set())[1] == ["reset_norms"]  # filtering no longer pays
    unsure = _troubleshooter_model(names, {"reset_norms": 0.0}, gain=0.3, harm=0.3, information=1.0)
    policy = TroubleshooterPolicy(actions, features, unsure)
    probe, repairs = policy.decide(row, price=1e-3, done_probes=set())
    assert repairs == [] and probe is not None  # a coin flip between +0.3 and -0.3: worth 0.15 to know first
    assert policy.decide(row, price=1.0, done_probes=set())[0] is None  # not at a price above its value
    assert policy.decide(row, price=1e-3, done_probes=set(unsure["probes"]))[0] is None  # each probe once
    blind = TroubleshooterPolicy(actions, features, {**unsure, "information": {
        p: {a: 0.0 for a in unsure["weights"]} for p in unsure["probes"]}})
    assert blind.decide(row, price=1e-3, done_probes=set())[0] is None  # a probe that tells nothing is not bought
    policy.reset(np.ones(1, dtype=bool))  # played: a probe first, then (nothing worth repairing) train or stop
    first = actions[int(policy.act(row[None], NoInfo())[0])]
    assert first.startswith("probe_")

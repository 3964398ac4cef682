"""Meta-tasks and LLMMetaRepair-v0: frozen splits, the relabelling equivalence the env rests on, registration,
checkers, the MetaEnv interface, state and refusals."""

import json
from importlib import resources

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import llm_repair_gym  # noqa: F401  (registers the ids)
from llm_repair_gym.envs.checker import check_vector_env
from llm_repair_gym.envs.meta_repair import LLMMetaRepairEnv, LLMMetaRepairVectorEnv, relabel_embeddings
from llm_repair_gym.lm import optim
from llm_repair_gym.lm.model import ParamLayout, init_params
from llm_repair_gym.lm.presets import get_preset
from llm_repair_gym.lm.tasks import FAMILIES, TaskSuite
from llm_repair_gym.lm.training import batch_loss, train_step
from llm_repair_gym.meta.initialization import load_meta_init
from llm_repair_gym.meta.tasks import check_task, generate_meta_tasks, meta_tasks, task_tables, token_map
from llm_repair_gym.testing import micro_env_kwargs as micro_env_kwargs_for


@pytest.fixture
def micro(micro_env_kwargs):
    return micro_env_kwargs_for(micro_env_kwargs["cache_dir"], "LLMMetaRepair-v0")


# --- meta-tasks ---------------------------------------------------------------------------------------------

def test_split_file_is_the_generator_output_and_splits_are_disjoint():
    shipped = json.loads(resources.files("llm_repair_gym").joinpath("data/meta_tasks_v1.json").read_text())
    assert shipped == generate_meta_tasks()
    train, test = meta_tasks("train"), meta_tasks("test")
    assert (len(train), len(test)) == (64, 32)
    assert not {tuple(t["syntax"]) for t in train} & {tuple(t["syntax"]) for t in test}
    orders = [tuple(t["logic"]) for t in train + test]
    assert len(set(orders)) == len(orders) and tuple(range(10)) not in orders
    assert [0, 1, 2, 3] not in [t["syntax"] for t in train + test]
    suite = TaskSuite(get_preset("tiny").tasks)
    facts, _ = task_tables(train + test, suite)
    assert len({tuple(row) for row in facts.tolist()}) == len(train) + len(test)


def test_tasks_are_refused_with_what_is_allowed():
    good = meta_tasks("test")[0]
    assert check_task(good) is good
    for bad, message in [({**good, "syntax": [0, 0, 1, 2]}, "permutation of 0..3"),
                         ({**good, "logic": list(range(9))}, "permutation of 0..9"),
                         ({**good, "fact_seed": -1}, "fact_seed"),
                         ({"syntax": [0, 1, 2, 3]}, "lacks"),
                         ("train-000", "a dict")]:
        with pytest.raises(ValueError, match=message):
            check_task(bad)
    with pytest.raises(ValueError, match="unknown meta-task split"):
        meta_tasks("val")


def test_a_variant_relabels_prompts_and_answers_consistently():
    suite = TaskSuite(get_preset("tiny").tasks)
    task = meta_tasks("test")[3]
    facts, maps = task_tables([task], suite)
    assert sorted(maps[0].tolist()) == list(range(suite.vocab_size))
    ids = suite.split_ids["logic"]["test"][:50][None]
    batch = suite.batch("logic", ids, facts, token_maps=maps)
    rank = {10 + digit: r for r, digit in enumerate(task["logic"])}  # token of the digit of rank r
    for seq in batch.inputs[0].tolist():
        prompt = seq[1:5]
        answer = seq[6:10]
        assert answer == sorted(prompt, key=lambda tok: rank[tok])
    plain = suite.batch("syntax", suite.split_ids["syntax"]["test"][:8][None], facts)
    identity = suite.batch("syntax", suite.split_ids["syntax"]["test"][:8][None], facts,
                           token_maps=torch.arange(suite.vocab_size)[None])
    assert torch.equal(plain.inputs, identity.inputs) and torch.equal(plain.targets, identity.targets)


def test_relabelled_embeddings_train_exactly_like_relabelled_data():
    """The change of coordinates LLMMetaRepair rests on: the same loss, and the same model after training."""
    torch.manual_seed(0)
    preset = get_preset("tiny")
    suite, layout = TaskSuite(preset.tasks), ParamLayout.of(preset.model)
    tasks = meta_tasks("train")[:3]
    facts, maps = task_tables(tasks, suite)
    flat = layout.flatten(init_params(preset.model, 3, torch.Generator().manual_seed(1))).double()
    gen = torch.Generator().manual_seed(2)
    ids = {f: suite.sample_ids(f, "train", 3, 6, gen) for f in FAMILIES}
    relabelled = [suite.batch(f, ids[f], facts, token_maps=maps) for f in FAMILIES]
    original = [suite.batch(f, ids[f], facts) for f in FAMILIES]
    moved = relabel_embeddings(flat, maps, layout)
    torch.testing.assert_close(batch_loss(layout.views(flat), preset.model, relabelled),
                               batch_loss(layout.views(moved), preset.model, original))
    a, b = flat.clone(), moved.clone()
    state_a, state_b = (optim.init_state(x, preset.model.n_groups, "adamw", 1e-3) for x in (a, b))
    for _ in range(3):
        train_step(a, preset.model, state_a, relabelled)
        train_step(b, preset.model, state_b, original)
    torch.testing.assert_close(relabel_embeddings(a, maps, layout), b, rtol=1e-9, atol=1e-9)


# --- the env ------------------------------------------------------------------------------------------------

def test_registered_and_passes_the_checkers(micro):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for init in ("zoo", "maml"):
        env = gym.make("LLMMetaRepair-v0", init=init, **micro)
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
        assert isinstance(gym.make_vec("LLMMetaRepair-v0", num_envs=2, init=init, **micro), LLMMetaRepairVectorEnv)
    check_vector_env("LLMMetaRepair-v0", num_envs=3, seed=3, n_steps=4, init="maml", **micro)


def test_episodes_are_set_in_tasks_of_the_split(micro):
    env = LLMMetaRepairVectorEnv(num_envs=4, split="test", init="maml", **micro)
    _, info = env.reset(seed=0)
    tasks = env.get_task()
    test_ids = {t["id"] for t in meta_tasks("test")}
    assert {t["id"] for t in tasks} <= test_ids
    assert [t["id"] for t in tasks] == [meta_tasks("test")[i]["id"] for i in info["task"]]
    chosen = env.sample_tasks(2)
    env.set_task([chosen[0], None, chosen[1], chosen[1]])
    for _ in range(2):  # resets and autoresets keep the set tasks
        env.reset()
        got = env.get_task()
        assert [got[i]["id"] for i in (0, 2, 3)] == [chosen[0]["id"], chosen[1]["id"], chosen[1]["id"]]
        stop = env.action_names.index("stop")
        _, _, _, _, info = env.step(np.full(4, stop))
        assert info["task"][0] == meta_tasks("test").index(chosen[0])


def test_the_start_model_is_the_initialization_on_the_task(micro):
    """With no fault, a maml env starts from the meta-learned initialization, relabelled for its task."""
    env = LLMMetaRepairVectorEnv(num_envs=2, split="train", init="maml", faults=["none"], **micro)
    env.reset(seed=5)
    meta = load_meta_init(micro["preset"], config=micro["meta_config"], cache_dir=micro["cache_dir"])
    tasks = env.get_task()
    _, maps = task_tables(tasks, env.ctx.task_suite)
    expected = relabel_embeddings(meta.theta.expand(2, -1), maps, env.ctx.layout)
    assert torch.equal(env.state.params, expected)
    facts, _ = task_tables(tasks, env.ctx.task_suite)
    assert torch.equal(env.state.fact_tables, facts)


def test_the_task_reset_option_sets_one_reset_only(micro):
    env = gym.make_vec("LLMMetaRepair-v0", num_envs=3, split="test", **micro).unwrapped
    try:
        _, info = env.reset(seed=5, options={"task": [4, 0, 31]})
        assert info["task"].tolist() == [4, 0, 31]
        _, drawn = env.reset(seed=5)  # the option was for that reset: the same seeds now draw their own tasks
        _, again = env.reset(seed=5)
        assert drawn["task"].tolist() == again["task"].tolist() != [4, 0, 31]
        for bad in ([0, 1], 32, [0, -1, 2], 1.5):
            with pytest.raises(ValueError, match="options\\['task'\\]"):
                env.reset(seed=5, options={"task": bad})
    finally:
        env.close()


def test_single_env_interface_state_and_determinism(micro):
    env = gym.make("LLMMetaRepair-v0", split="test", **micro)
    task = env.unwrapped.sample_tasks(1)[0]
    env.unwrapped.set_task(task)
    env.reset(seed=1)
    assert env.unwrapped.get_task()["id"] == task["id"]
    saved = env.unwrapped.get_state()
    twin = env.unwrapped.fork()
    a = [env.step(k)[:2] for k in (0, 3, 5)]
    b = [twin.step(k)[:2] for k in (0, 3, 5)]
    env.unwrapped.set_state(saved)
    c = [env.step(k)[:2] for k in (0, 3, 5)]
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[0], z[0]) and x[1] == y[1] == z[1]
    with pytest.raises(ValueError, match="one task"):
        env.unwrapped.set_task([task])


def test_bad_arguments_are_refused(micro):
    with pytest.raises(ValueError, match="split must be"):
        LLMMetaRepairVectorEnv(split="val", **micro)
    with pytest.raises(ValueError, match="init must be"):
        LLMMetaRepairVectorEnv(init="pretrained", **micro)
    with pytest.raises(ValueError, match="meta_seed"):
        LLMMetaRepairVectorEnv(meta_seed=-1, **micro)
    with pytest.raises(ValueError, match="meta_config must be"):
        LLMMetaRepairVectorEnv(**{**micro, "meta_config": {"iterations": 2}})
    with pytest.raises(ValueError, match="instances and bank"):
        LLMMetaRepairVectorEnv(instances="train", **micro)
    env = LLMMetaRepairVectorEnv(num_envs=2, split="train", **micro)
    with pytest.raises(ValueError, match="not a task of the 'train' split"):
        env.set_task(meta_tasks("test")[0])
    with pytest.raises(ValueError, match="list of 2"):
        env.set_task([None])
    with pytest.raises(ValueError, match="reset first"):
        env.get_task()
    with pytest.raises(ValueError, match="positive int"):
        env.sample_tasks(0)


def test_manual_describes_the_meta_env():
    doc = LLMMetaRepairVectorEnv.__doc__
    for words in ("sample_tasks", "set_task", "get_task", 'init="maml"', "## Action Space", "train_all",
                  "## Version History"):
        assert words in doc
    assert LLMMetaRepairEnv.__doc__ == doc
    assert token_map(meta_tasks("train")[0], 76).shape == (76,)

"""Batched optimizer steps equal a per-model loop over torch.optim, and masks freeze exactly."""

import pytest
import torch

from llm_repair_gym import optim
from llm_repair_gym.model import ModelConfig, init_params, param_group
from llm_repair_gym.tasks import FAMILIES, Batch, TaskSuite
from llm_repair_gym.training import batch_loss

CONFIG = ModelConfig(vocab_size=76, n_ctx=16, n_layer=2, n_head=2, n_embd=16)


def random_grads(params, gen):
    return {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}


def test_mixed_batch_matches_per_model_torch_optimizers():
    gen = torch.Generator().manual_seed(0)
    n = 4
    params = init_params(CONFIG, n, gen)
    names = ["adamw", "sgd", "adamw", "sgd"]
    lrs = torch.tensor([1e-3, 5e-2, 3e-2, 1e-3])
    wds = torch.tensor([0.0, 0.01, 0.1, 0.0])
    state = optim.init_state(params, CONFIG.n_groups, names, lrs, wds)
    reference = []
    for i in range(n):
        leaves = [params[k][i].clone().requires_grad_() for k in params]
        cls = torch.optim.AdamW if names[i] == "adamw" else torch.optim.SGD
        kwargs = {"momentum": 0.9} if names[i] == "sgd" else {}
        reference.append((leaves, cls(leaves, lr=lrs[i].item(), weight_decay=wds[i].item(), **kwargs)))
    for _ in range(5):
        grads = random_grads(params, gen)
        optim.step(params, grads, state)
        for i, (leaves, opt) in enumerate(reference):
            for leaf, name in zip(leaves, params):
                leaf.grad = grads[name][i].clone()
            opt.step()
    for i, (leaves, _) in enumerate(reference):
        for leaf, name in zip(leaves, params):
            torch.testing.assert_close(params[name][i], leaf.detach(), atol=1e-6, rtol=1e-5)


def test_masked_groups_and_envs_stay_bitwise_unchanged():
    gen = torch.Generator().manual_seed(1)
    params = init_params(CONFIG, 3, gen)
    state = optim.init_state(params, CONFIG.n_groups, ["adamw", "sgd", "adamw"], 1e-2)
    mask = torch.ones(3, CONFIG.n_groups, dtype=torch.bool)
    mask[0, 1] = False  # env 0: block 0 frozen
    mask[2] = False  # env 2 finished
    before = {k: v.clone() for k, v in params.items()}
    optim.step(params, random_grads(params, gen), state, mask)
    for name in params:
        frozen_in_env0 = param_group(name) == 1
        assert torch.equal(params[name][0], before[name][0]) == frozen_in_env0, name
        assert not torch.equal(params[name][1], before[name][1]), name
        assert torch.equal(params[name][2], before[name][2]), name
    assert state.step[0, 1] == 0 and state.step[0, 0] == 1 and (state.step[2] == 0).all()
    assert (state.exp_avg["h.0.attn.c_attn.weight"][0] == 0).all()


def test_training_reduces_loss_per_env():
    from llm_repair_gym.training import train_step

    gen = torch.Generator().manual_seed(2)
    suite = TaskSuite()
    params = init_params(CONFIG, 2, gen)
    facts = suite.sample_fact_tables(2, gen)
    state = optim.init_state(params, CONFIG.n_groups, "adamw", 3e-3)
    batch = Batch.cat([suite.sample(f, "train", facts, 8, gen) for f in FAMILIES])
    first = batch_loss(params, CONFIG, batch)
    for _ in range(20):
        train_step(params, CONFIG, state, batch)
    assert (batch_loss(params, CONFIG, batch) < first - 0.5).all()


@pytest.mark.parametrize("bad", [{"optimizer": "rmsprop"}, {"lr": -1.0}, {"weight_decay": float("nan")}])
def test_bad_settings_are_rejected(bad):
    params = init_params(CONFIG, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError):
        optim.init_state(params, CONFIG.n_groups, **bad)

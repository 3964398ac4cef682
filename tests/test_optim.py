"""Batched optimizer steps equal a per-model loop over torch.optim, and masks freeze exactly."""

import pytest
import torch

from llm_repair_gym.lm import optim
from llm_repair_gym.lm.model import ModelConfig, ParamLayout, init_params, param_group
from llm_repair_gym.lm.tasks import FAMILIES, TaskSuite
from llm_repair_gym.lm.training import batch_loss

CONFIG = ModelConfig(vocab_size=76, n_ctx=16, n_layer=2, n_head=2, n_embd=16)
LAYOUT = ParamLayout.of(CONFIG)


def flat_params(n, gen):
    """Flat parameters ``[n, P]`` and their named views."""
    flat = LAYOUT.flatten(init_params(CONFIG, n, gen))
    return flat, LAYOUT.views(flat)


def test_layout_views_write_through_and_groups_are_contiguous():
    flat, params = flat_params(2, torch.Generator().manual_seed(0))
    assert flat.shape == (2, sum(p[0].numel() for p in params.values()))
    params["h.1.mlp.c_fc.weight"][1, 2, 3] = 7.0
    assert flat[1, LAYOUT.span("h.1.mlp.c_fc.weight")].view(CONFIG.n_embd, -1)[2, 3] == 7.0
    assert torch.equal(LAYOUT.flatten(params), flat)
    groups = LAYOUT.group_index()
    for g in range(CONFIG.n_groups):
        span = LAYOUT.group_span(g)
        assert (groups[span] == g).all() and (groups != g).sum() == LAYOUT.size - (span.stop - span.start)
    assert (groups[LAYOUT.span("ln_f.bias")] == CONFIG.n_groups - 1).all()


def test_mixed_batch_matches_per_model_torch_optimizers():
    gen = torch.Generator().manual_seed(0)
    n = 4
    flat, params = flat_params(n, gen)
    names = ["adamw", "sgd", "adamw", "sgd"]
    lrs = torch.tensor([1e-3, 5e-2, 3e-2, 1e-3])
    wds = torch.tensor([0.0, 0.01, 0.1, 0.0])
    state = optim.init_state(flat, CONFIG.n_groups, names, lrs, wds)
    reference = []
    for i in range(n):
        leaves = [params[k][i].clone().requires_grad_() for k in params]
        cls = torch.optim.AdamW if names[i] == "adamw" else torch.optim.SGD
        kwargs = {"momentum": 0.9} if names[i] == "sgd" else {}
        reference.append((leaves, cls(leaves, lr=lrs[i].item(), weight_decay=wds[i].item(), **kwargs)))
    for _ in range(5):
        grad = torch.randn(flat.shape, generator=gen)
        optim.step(flat, grad, state, LAYOUT.group_index())
        grads = LAYOUT.views(grad)
        for i, (leaves, opt) in enumerate(reference):
            for leaf, name in zip(leaves, params):
                leaf.grad = grads[name][i].clone()
            opt.step()
    for i, (leaves, _) in enumerate(reference):
        for leaf, name in zip(leaves, params):
            torch.testing.assert_close(params[name][i], leaf.detach(), atol=1e-6, rtol=1e-5)


def test_masked_groups_and_envs_stay_bitwise_unchanged():
    gen = torch.Generator().manual_seed(1)
    flat, params = flat_params(3, gen)
    state = optim.init_state(flat, CONFIG.n_groups, ["adamw", "sgd", "adamw"], 1e-2)
    mask = torch.ones(3, CONFIG.n_groups, dtype=torch.bool)
    mask[0, 1] = False  # env 0: block 0 frozen
    mask[2] = False  # env 2 finished
    before = {k: v.clone() for k, v in params.items()}
    optim.step(flat, torch.randn(flat.shape, generator=gen), state, LAYOUT.group_index(), mask)
    for name in params:
        frozen_in_env0 = param_group(name) == 1
        assert torch.equal(params[name][0], before[name][0]) == frozen_in_env0, name
        assert not torch.equal(params[name][1], before[name][1]), name
        assert torch.equal(params[name][2], before[name][2]), name
    assert state.step[0, 1] == 0 and state.step[0, 0] == 1 and (state.step[2] == 0).all()
    assert (state.exp_avg[0, LAYOUT.span("h.0.attn.c_attn.weight")] == 0).all()


def test_training_reduces_loss_per_env():
    from llm_repair_gym.lm.training import train_step

    gen = torch.Generator().manual_seed(2)
    suite = TaskSuite()
    flat, params = flat_params(2, gen)
    facts = suite.sample_fact_tables(2, gen)
    state = optim.init_state(flat, CONFIG.n_groups, "adamw", 3e-3)
    parts = [suite.sample(f, "train", facts, 8, gen) for f in FAMILIES]
    first = batch_loss(params, CONFIG, parts)
    for _ in range(20):
        train_step(flat, CONFIG, state, parts)
    assert (batch_loss(params, CONFIG, parts) < first - 0.5).all()


def test_family_parts_give_the_loss_of_one_padded_batch():
    """Cutting each family's part to its own length changes no loss: only padding is cut."""
    from llm_repair_gym.lm.tasks import Batch

    gen = torch.Generator().manual_seed(5)
    suite = TaskSuite()
    _, params = flat_params(2, gen)
    facts = suite.sample_fact_tables(2, gen)
    full = [suite.sample(f, "train", facts, 6, torch.Generator().manual_seed(9), trim=False) for f in FAMILIES]
    cut = [suite.sample(f, "train", facts, 6, torch.Generator().manual_seed(9)) for f in FAMILIES]
    assert [p.inputs.shape[-1] for p in cut] == [suite.lengths[f] for f in FAMILIES]
    torch.testing.assert_close(batch_loss(params, CONFIG, cut), batch_loss(params, CONFIG, [Batch.cat(full)]))


@pytest.mark.parametrize("bad", [{"optimizer": "rmsprop"}, {"lr": -1.0}, {"weight_decay": float("nan")}])
def test_bad_settings_are_rejected(bad):
    flat, _ = flat_params(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError):
        optim.init_state(flat, CONFIG.n_groups, **bad)

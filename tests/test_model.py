"""The batched GPT-2 agrees with transformers' GPT2LMHeadModel and converts both ways."""

import pytest
import torch
from transformers import GPT2LMHeadModel

from llm_repair_gym.lm.hf import export_hf, from_hf, to_hf
from llm_repair_gym.lm.model import ModelConfig, forward, init_params

CONFIGS = [
    ModelConfig(vocab_size=76, n_ctx=16, n_layer=2, n_head=4, n_embd=64),
    ModelConfig(vocab_size=13, n_ctx=7, n_layer=1, n_head=1, n_embd=8),
    ModelConfig(vocab_size=101, n_ctx=24, n_layer=3, n_head=6, n_embd=48),
    ModelConfig(vocab_size=50, n_ctx=32, n_layer=4, n_head=2, n_embd=32),
]


def perturbed_params(config: ModelConfig, n: int, seed: int):
    """Initialised parameters plus noise, so that LayerNorm gains and biases are not trivial."""
    gen = torch.Generator().manual_seed(seed)
    params = init_params(config, n, gen)
    return {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in params.items()}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c.n_layer}H{c.n_head}D{c.n_embd}V{c.vocab_size}")
def test_logits_match_transformers(config):
    n = 3
    params = perturbed_params(config, n, seed=config.n_embd)
    tokens = torch.randint(config.vocab_size, (n, 4, config.n_ctx), generator=torch.Generator().manual_seed(1))
    logits = forward(params, config, tokens)
    assert logits.shape == (n, 4, config.n_ctx, config.vocab_size)
    for i in range(n):
        with torch.no_grad():
            reference = to_hf(params, config, i)(tokens[i]).logits
        torch.testing.assert_close(logits[i], reference, atol=1e-5, rtol=0)


def test_models_of_a_batch_are_independent():
    config = CONFIGS[0]
    params = perturbed_params(config, 3, seed=0)
    tokens = torch.randint(config.vocab_size, (3, 2, 8))
    before = forward(params, config, tokens)
    params["h.0.mlp.c_fc.weight"][1] += 1.0
    after = forward(params, config, tokens)
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.allclose(before[1], after[1])


def test_from_hf_round_trip_is_exact():
    config = CONFIGS[2]
    params = perturbed_params(config, 2, seed=5)
    back, back_config = from_hf([to_hf(params, config, i) for i in range(2)])
    assert back_config == config
    assert all(torch.equal(back[k], params[k]) for k in params)


def test_export_hf_loads_offline_as_gpt2(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = CONFIGS[0]
    params = perturbed_params(config, 2, seed=3)
    folder = export_hf(params, config, 1, tmp_path / "repaired")
    assert (folder / "model.safetensors").is_file()
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tokens = torch.randint(config.vocab_size, (2, 2, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens[1]).logits, forward(params, config, tokens)[1], atol=1e-5, rtol=0)


def test_bad_configs_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(vocab_size=10, n_ctx=8, n_layer=1, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="n_layer"):
        ModelConfig(vocab_size=10, n_ctx=8, n_layer=0, n_head=1, n_embd=8)
    config = CONFIGS[1]
    params = init_params(config, 1, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="exceeds"):
        forward(params, config, torch.zeros(1, 1, config.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        to_hf(params, config, 1)

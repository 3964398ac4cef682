"""``transformers`` interop: one model of a batch as a ``GPT2LMHeadModel`` and back, and an offline export.

The batched model (:mod:`llm_repair_gym.lm.model`) computes what GPT-2 computes; ``tests/test_model.py``
checks the logits against ``transformers``' own GPT-2 and the round trip bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from llm_repair_gym.lm.model import ModelConfig, Params, param_shapes


def _hf_key(name: str) -> str:
    """The ``GPT2LMHeadModel.state_dict()`` key of one of our parameter names."""
    return f"transformer.{name}.weight" if name in ("wte", "wpe") else f"transformer.{name}"


def hf_config(config: ModelConfig):
    """The ``transformers.GPT2Config`` equal to ``config`` (dropout off, tied embeddings)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.n_ctx,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )


def to_hf(params: Params, config: ModelConfig, index: int):
    """A ``transformers.GPT2LMHeadModel`` holding a copy of model ``index`` of the batch (eval mode, CPU)."""
    from transformers import GPT2LMHeadModel

    num_models = next(iter(params.values())).shape[0]
    if not 0 <= index < num_models:
        raise ValueError(f"model index {index} out of range: the batch holds {num_models} models")
    model = GPT2LMHeadModel(hf_config(config))
    state = {_hf_key(name): tensor[index] for name, tensor in params.items()}
    missing, unexpected = model.load_state_dict(
        {k: v.detach().to("cpu", torch.float32).clone() for k, v in state.items()}, strict=False
    )
    # lm_head.weight is tied to wte; GPT-2's attention bias buffers are not parameters.
    leftover = [k for k in missing if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if leftover or unexpected:
        raise RuntimeError(f"GPT-2 state mismatch: missing={leftover}, unexpected={unexpected}")
    return model.eval()


def config_from_hf(hf_cfg) -> ModelConfig:
    """The ``ModelConfig`` of a ``transformers.GPT2Config``; rejects settings this batched model lacks."""
    if hf_cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"unsupported activation {hf_cfg.activation_function!r}: only GPT-2's tanh GELU")
    if not getattr(hf_cfg, "tie_word_embeddings", True):
        raise ValueError("only GPT-2 models with tied input/output embeddings are supported")
    n_inner = getattr(hf_cfg, "n_inner", None)
    if n_inner not in (None, 4 * hf_cfg.n_embd):
        raise ValueError(f"unsupported n_inner={n_inner}: the MLP width must be 4 * n_embd")
    return ModelConfig(
        vocab_size=hf_cfg.vocab_size,
        n_ctx=hf_cfg.n_positions,
        n_layer=hf_cfg.n_layer,
        n_head=hf_cfg.n_head,
        n_embd=hf_cfg.n_embd,
        layer_norm_epsilon=hf_cfg.layer_norm_epsilon,
        initializer_range=hf_cfg.initializer_range,
    )


def from_hf(models: list, device: torch.device | str = "cpu") -> tuple[Params, ModelConfig]:
    """Stack a list of ``GPT2LMHeadModel`` with one architecture into batched parameters."""
    if not models:
        raise ValueError("from_hf needs at least one model")
    config = config_from_hf(models[0].config)
    for m in models[1:]:
        if config_from_hf(m.config) != config:
            raise ValueError("all models passed to from_hf must share one architecture")
    states = [m.state_dict() for m in models]
    params: Params = {}
    for name in param_shapes(config):
        params[name] = torch.stack([s[_hf_key(name)].detach().to(torch.float32) for s in states]).to(device)
    return params, config


def export_hf(params: Params, config: ModelConfig, index: int, path: str | Path) -> Path:
    """Write model ``index`` as a ``save_pretrained`` folder (safetensors) that
    ``GPT2LMHeadModel.from_pretrained(path)`` loads offline. Returns the folder."""
    path = Path(path)
    to_hf(params, config, index).save_pretrained(path, safe_serialization=True)
    return path

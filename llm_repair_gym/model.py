"""A batched GPT-2: N independent language models evaluated in one forward and backward pass.

Every parameter carries a leading *env axis* ``[N, ...]``; parameter names and layouts follow
Hugging Face's ``GPT2LMHeadModel`` (its ``Conv1D`` weights are stored ``[in, out]``), so model ``i`` of
a batch converts to and from ``transformers`` by slicing. Inputs are tokens ``[N, B, T]`` and logits come
back as ``[N, B, T, V]``. Nothing here loops over models in Python.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one model of the batch (GPT-2 naming)."""

    vocab_size: int
    n_ctx: int
    n_layer: int
    n_head: int
    n_embd: int
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_ctx", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_groups(self) -> int:
        """Number of parameter groups: embeddings, one per block, final LayerNorm."""
        return self.n_layer + 2


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter of one model, in the order of ``GPT2LMHeadModel.state_dict()``."""
    d, v = config.n_embd, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"wte": (v, d), "wpe": (config.n_ctx, d)}
    for layer in range(config.n_layer):
        p = f"h.{layer}."
        shapes |= {
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
            p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.c_fc.weight": (d, 4 * d), p + "mlp.c_fc.bias": (4 * d,),
            p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,),
        }
    shapes |= {"ln_f.weight": (d,), "ln_f.bias": (d,)}
    return shapes


def param_group(name: str) -> int:
    """Group index of a parameter: 0 = embeddings, 1 + l = block l, last = final LayerNorm (-1)."""
    if name in ("wte", "wpe"):
        return 0
    if name.startswith("h."):
        return 1 + int(name.split(".")[1])
    return -1


def group_names(config: ModelConfig) -> list[str]:
    """Human-readable names of the parameter groups, in group order."""
    return ["embeddings", *(f"block{layer}" for layer in range(config.n_layer)), "ln_f"]


def init_params(
    config: ModelConfig,
    num_models: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    names: list[str] | None = None,
) -> Params:
    """Fresh GPT-2 initialisation for ``num_models`` models (or only the parameters in ``names``).

    Follows ``GPT2PreTrainedModel._init_weights``: normal(0, 0.02) weights, zero biases, unit LayerNorm
    gains, and residual projections scaled by ``1/sqrt(2 * n_layer)``. Sampled on ``generator``'s device
    (CPU generators give device-independent draws) and moved to ``device``.
    """
    gen_device = generator.device
    std = config.initializer_range
    out: Params = {}
    for name, shape in param_shapes(config).items():
        if names is not None and name not in names:
            continue
        full = (num_models, *shape)
        if name.endswith("bias"):
            value = torch.zeros(full, device=gen_device)
        elif "ln_" in name:
            value = torch.ones(full, device=gen_device)
        else:
            scale = std / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else std
            value = torch.randn(full, generator=generator, device=gen_device) * scale
        out[name] = value.to(device)
    return out


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis with per-model gain and bias ``[N, D]`` for ``x`` of ``[N, ..., D]``."""
    view = (weight.shape[0],) + (1,) * (x.dim() - 2) + (weight.shape[1],)
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight.view(view) + bias.view(view)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-model affine map: ``x [N, M, in] @ weight [N, in, out] + bias [N, out]``."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def forward(params: Params, config: ModelConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Logits ``[N, B, T, V]`` of every model on its own token batch ``tokens [N, B, T]``."""
    n, b, t = tokens.shape
    if t > config.n_ctx:
        raise ValueError(f"sequence length {t} exceeds the model's context n_ctx={config.n_ctx}")
    d, h = config.n_embd, config.n_head
    eps = config.layer_norm_epsilon
    wte = params["wte"]
    # Token lookup as a one-hot matmul: its backward is a bmm, deterministic on every device (an indexed
    # gather's backward accumulates with atomics and is not).
    one_hot = F.one_hot(tokens.reshape(n, b * t), config.vocab_size).to(wte.dtype)
    x = torch.bmm(one_hot, wte).view(n, b, t, d) + params["wpe"][:, None, :t, :]
    x = x.reshape(n, b * t, d)
    for layer in range(config.n_layer):
        p = f"h.{layer}."
        a = _layer_norm(x, params[p + "ln_1.weight"], params[p + "ln_1.bias"], eps)
        qkv = _linear(a, params[p + "attn.c_attn.weight"], params[p + "attn.c_attn.bias"])
        q, k, v = qkv.view(n * b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each [N*B, H, T, hd]
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        att = att.transpose(1, 2).reshape(n, b * t, d)
        x = x + _linear(att, params[p + "attn.c_proj.weight"], params[p + "attn.c_proj.bias"])
        m = _layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"], eps)
        m = F.gelu(_linear(m, params[p + "mlp.c_fc.weight"], params[p + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + _linear(m, params[p + "mlp.c_proj.weight"], params[p + "mlp.c_proj.bias"])
    x = _layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], eps)
    logits = torch.bmm(x, wte.transpose(1, 2))  # tied output embedding
    return logits.view(n, b, t, config.vocab_size)


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy ``[N, B, T]`` of logits ``[N, B, T, V]`` against targets ``[N, B, T]``."""
    v = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), reduction="none").view(targets.shape)


# --- transformers interop -------------------------------------------------------------------------------

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

"""A batched GPT-2: N independent language models evaluated in one forward and backward pass.

Every parameter carries a leading *env axis* ``[N, ...]``; parameter names and layouts follow
Hugging Face's ``GPT2LMHeadModel`` (its ``Conv1D`` weights are stored ``[in, out]``), so model ``i`` of
a batch converts to and from ``transformers`` by slicing. Inputs are tokens ``[N, B, T]`` and logits come
back as ``[N, B, T, V]``. Nothing here loops over models in Python.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

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


def is_block_matrix(name: str) -> bool:
    """Whether a parameter is a weight matrix of a transformer block (what noise, pruning and sparsity touch)."""
    return name.startswith("h.") and name.endswith(".weight") and ".ln_" not in name


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


@dataclass(frozen=True)
class ParamLayout:
    """Where every parameter of one model lives in a flat vector of ``size`` numbers.

    Parameters follow ``param_shapes`` order, so each group (embeddings, block ``l``, final LayerNorm) is one
    contiguous column range. A batch of N models is one ``[N, size]`` tensor: the optimizer, snapshots and
    per-env copies each work on it in one operation, and :meth:`views` gives the named parameters the model
    reads as views of it (writes go through to the flat tensor).
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    groups: tuple[int, ...]  # group of each parameter, 0 .. n_groups - 1 (the final LayerNorm is the last)
    n_groups: int

    @staticmethod
    @functools.cache
    def of(config: ModelConfig) -> ParamLayout:
        shapes = param_shapes(config)
        return ParamLayout(tuple(shapes), tuple(shapes.values()),
                           tuple(param_group(n) % config.n_groups for n in shapes), config.n_groups)

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.numels)

    def span(self, name: str) -> slice:
        """The columns of one parameter."""
        start = sum(self.numels[:self.names.index(name)])
        return slice(start, start + self.numels[self.names.index(name)])

    def group_span(self, group: int) -> slice:
        """The columns of one parameter group (contiguous by construction)."""
        cols = [self.span(n) for n, g in zip(self.names, self.groups) if g == group]
        return slice(cols[0].start, cols[-1].stop)

    def views(self, flat: torch.Tensor) -> Params:
        """The named parameters ``[N, *shape]`` as views of ``flat [N, size]``."""
        lead = flat.shape[:-1]
        return {name: chunk.view(*lead, *shape)
                for name, shape, chunk in zip(self.names, self.shapes, flat.split(self.numels, dim=-1))}

    def flatten(self, params: Params) -> torch.Tensor:
        """``[N, size]``: the named parameters ``[N, *shape]`` side by side (a copy)."""
        return torch.cat([params[name].reshape(params[name].shape[0], -1) for name in self.names], dim=1)

    def group_index(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[size]`` long: the group of every column."""
        return _column_table(self, torch.device(device), "group")

    def group_sizes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[n_groups]`` float: the number of columns of every group."""
        return _column_table(self, torch.device(device), "group_sizes")

    def matrix_columns(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[size]`` bool: the columns that belong to block weight matrices (:func:`is_block_matrix`)."""
        return _column_table(self, torch.device(device), "matrix")

    def init_columns(self, config: ModelConfig,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``[size]`` constant and ``[size]`` standard deviation of GPT-2's initialisation, per column:
        a fresh parameter is ``constant + std * standard_normal`` (see :func:`init_params`)."""
        device = torch.device(device)
        return _column_table(self, device, "init_constant", config), _column_table(self, device, "init_std", config)


@functools.cache
def _column_table(layout: ParamLayout, device: torch.device, kind: str, config: ModelConfig | None = None):
    """Per-column tables of a layout, built once per device (a step never copies them from the host)."""
    def per_param(value_of) -> torch.Tensor:
        return torch.cat([torch.full((k,), value_of(name, group)) for name, k, group
                          in zip(layout.names, layout.numels, layout.groups)]).to(device)

    if kind == "group":
        return per_param(lambda name, group: group).long()
    if kind == "group_sizes":
        return torch.bincount(per_param(lambda name, group: group).long(), minlength=layout.n_groups).float()
    if kind == "matrix":
        return per_param(lambda name, group: is_block_matrix(name))
    if kind == "init_constant":
        return per_param(lambda name, group: 1.0 if "ln_" in name and name.endswith("weight") else 0.0)
    if kind == "init_std":
        return per_param(lambda name, group: _init_std(config, name))
    raise ValueError(f"unknown column table {kind!r}")


def _init_std(config: ModelConfig, name: str) -> float:
    """GPT-2's initialisation scale of a parameter: 0 for biases and LayerNorms (they start constant)."""
    if name.endswith("bias") or "ln_" in name:
        return 0.0
    std = config.initializer_range
    return std / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else std


def init_params(
    config: ModelConfig,
    num_models: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Params:
    """Fresh GPT-2 initialisation for ``num_models`` models.

    Follows ``GPT2PreTrainedModel._init_weights``: normal(0, 0.02) weights, zero biases, unit LayerNorm
    gains, and residual projections scaled by ``1/sqrt(2 * n_layer)``. Sampled on ``generator``'s device
    (CPU generators give device-independent draws) and moved to ``device``.
    """
    gen_device = generator.device
    out: Params = {}
    for name, shape in param_shapes(config).items():
        full = (num_models, *shape)
        if name.endswith("bias"):
            value = torch.zeros(full, device=gen_device)
        elif "ln_" in name:
            value = torch.ones(full, device=gen_device)
        else:
            value = torch.randn(full, generator=generator, device=gen_device) * _init_std(config, name)
        out[name] = value.to(device)
    return out


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis with per-model gain and bias ``[N, D]`` for ``x`` of ``[N, ..., D]``."""
    view = (weight.shape[0],) + (1,) * (x.dim() - 2) + (weight.shape[1],)
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight.view(view) + bias.view(view)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-model affine map: ``x [N, M, in] @ weight [N, in, out] + bias [N, out]``."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def forward(params: Params, config: ModelConfig, tokens: torch.Tensor,
            taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Logits ``[N, B, T, V]`` of every model on its own token batch ``tokens [N, B, T]``.

    ``taps``, when given, receives each block's inner activations (for probes): ``"{l}.ln_1"`` the attention
    input ``[N, B*T, D]``, ``"{l}.q"`` / ``"{l}.k"`` queries and keys ``[N*B, H, T, D/H]`` and ``"{l}.mlp"`` the
    MLP's GELU outputs ``[N, B*T, 4D]``. The logits are the same with or without it."""
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
        if taps is not None:
            taps[f"{layer}.ln_1"], taps[f"{layer}.q"], taps[f"{layer}.k"] = a, q, k
        att = att.transpose(1, 2).reshape(n, b * t, d)
        x = x + _linear(att, params[p + "attn.c_proj.weight"], params[p + "attn.c_proj.bias"])
        m = _layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"], eps)
        m = F.gelu(_linear(m, params[p + "mlp.c_fc.weight"], params[p + "mlp.c_fc.bias"]), approximate="tanh")
        if taps is not None:
            taps[f"{layer}.mlp"] = m
        x = x + _linear(m, params[p + "mlp.c_proj.weight"], params[p + "mlp.c_proj.bias"])
    x = _layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], eps)
    logits = torch.bmm(x, wte.transpose(1, 2))  # tied output embedding
    return logits.view(n, b, t, config.vocab_size)


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy ``[N, B, T]`` of logits ``[N, B, T, V]`` against targets ``[N, B, T]``."""
    v = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), reduction="none").view(targets.shape)

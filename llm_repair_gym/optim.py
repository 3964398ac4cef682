"""Functional batched optimizers: SGD with momentum and AdamW over parameters with a leading env axis.

Hyperparameters live in tensors with one entry per env (``lr``, ``weight_decay``, ``optimizer``), so N
envs can train with N different settings in one fused update. ``update_mask [N, G]`` freezes parameter
groups (see :func:`llm_repair_gym.model.param_group`) per env: a masked group receives no update and its
optimizer state does not advance, so a finished env or a frozen layer stays bit-for-bit unchanged.

The formulas match PyTorch's single-model optimizers step for step:
``torch.optim.SGD(momentum=m, weight_decay=wd)`` (L2 penalty added to the gradient) and
``torch.optim.AdamW(betas, eps, weight_decay=wd)`` (decoupled decay).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_repair_gym.model import Params, param_group

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SGD, ADAMW = 0, 1


@dataclass
class OptimizerState:
    """Per-env optimizer settings and state for a batch of models."""

    optimizer: torch.Tensor  # [N] long: index into OPTIMIZERS
    lr: torch.Tensor  # [N] float
    weight_decay: torch.Tensor  # [N] float
    step: torch.Tensor  # [N, G] float: AdamW steps taken per env and parameter group
    momentum_buffer: Params
    exp_avg: Params
    exp_avg_sq: Params
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state under a flat name (for cloning, saving and restoring)."""
        out = {"optimizer": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay, "step": self.step}
        for prefix, group in (("momentum_buffer", self.momentum_buffer), ("exp_avg", self.exp_avg),
                              ("exp_avg_sq", self.exp_avg_sq)):
            out |= {f"{prefix}.{name}": t for name, t in group.items()}
        return out


def init_state(params: Params, n_groups: int, optimizer: str | list[str] = "adamw",
               lr: float | torch.Tensor = 1e-3, weight_decay: float | torch.Tensor = 0.0,
               momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> OptimizerState:
    """Zero optimizer state for ``params``; scalar settings are broadcast to every env."""
    first = next(iter(params.values()))
    n, device = first.shape[0], first.device
    names = [optimizer] * n if isinstance(optimizer, str) else list(optimizer)
    if len(names) != n:
        raise ValueError(f"got {len(names)} optimizer names for {n} envs")
    for name in names:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    def per_env(value: float | torch.Tensor, what: str) -> torch.Tensor:
        out = torch.as_tensor(value, dtype=torch.float32, device=device).expand(n).clone()
        if not torch.isfinite(out).all() or (out < 0).any():
            raise ValueError(f"{what} must be finite and >= 0, got {value}")
        return out

    zeros = lambda: {k: torch.zeros_like(v) for k, v in params.items()}  # noqa: E731
    return OptimizerState(
        optimizer=torch.tensor([OPTIMIZERS.index(x) for x in names], device=device),
        lr=per_env(lr, "lr"),
        weight_decay=per_env(weight_decay, "weight_decay"),
        step=torch.zeros(n, n_groups, device=device),
        momentum_buffer=zeros(), exp_avg=zeros(), exp_avg_sq=zeros(),
        momentum=momentum, betas=betas, eps=eps,
    )


def _per_env(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``[N]`` to broadcast against ``like [N, ...]``."""
    return x.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def step(params: Params, grads: Params, state: OptimizerState, update_mask: torch.Tensor | None = None) -> None:
    """Apply one optimizer step in place to every env (where ``update_mask [N, G]`` allows)."""
    n_groups = state.step.shape[1]
    active = (torch.ones_like(state.step, dtype=torch.bool) if update_mask is None
              else update_mask.to(torch.bool))
    is_adam = state.optimizer == ADAMW
    # AdamW step counts advance only for envs and groups that take an AdamW step now.
    state.step += (active & is_adam[:, None]).float()
    beta1, beta2 = state.betas
    for name, p in params.items():
        g = grads[name]
        group = param_group(name) % n_groups
        take = _per_env(active[:, group], p)
        adam = _per_env(is_adam, p) & take
        sgd = _per_env(~is_adam, p) & take
        lr = _per_env(state.lr, p)
        wd = _per_env(state.weight_decay, p)

        # SGD with momentum and L2 weight decay (torch.optim.SGD).
        d_p = g + wd * p
        buf = state.momentum_buffer[name]
        new_buf = buf * state.momentum + d_p
        sgd_param = p - lr * new_buf

        # AdamW with decoupled weight decay (torch.optim.AdamW).
        t = _per_env(state.step[:, group], p).clamp_min(1)
        m = state.exp_avg[name].lerp(g, 1 - beta1)
        v = state.exp_avg_sq[name] * beta2 + (1 - beta2) * g * g
        bias1 = 1 - beta1 ** t
        bias2_sqrt = (1 - beta2 ** t).sqrt()
        denom = v.sqrt() / bias2_sqrt + state.eps
        adam_param = p * (1 - lr * wd) - (lr / bias1) * m / denom

        buf.copy_(torch.where(sgd, new_buf, buf))
        state.exp_avg[name].copy_(torch.where(adam, m, state.exp_avg[name]))
        state.exp_avg_sq[name].copy_(torch.where(adam, v, state.exp_avg_sq[name]))
        p.copy_(torch.where(adam, adam_param, torch.where(sgd, sgd_param, p)))

"""Functional batched optimizers: SGD with momentum and AdamW over flat parameters ``[N, P]``.

Parameters are one flat tensor per batch (see :class:`llm_repair_gym.lm.model.ParamLayout`), so an optimizer
step is one chain of elementwise operations over all N models, whatever the number of parameter tensors.
An env runs one optimizer at a time, so SGD's momentum buffer and AdamW's first moment share one tensor
(``exp_avg``); switching an env's optimizer should clear its moments (:meth:`OptimizerState.clear`).
Hyperparameters live in tensors with one entry per env (``lr``, ``weight_decay``, ``optimizer``), so N envs
can train with N different settings in one fused update. ``update_mask [N, G]`` freezes parameter groups
(see :func:`llm_repair_gym.lm.model.param_group`) per env: a masked group receives no update and its optimizer
state does not advance, so a finished env or a frozen layer stays bit-for-bit unchanged.

The formulas match PyTorch's single-model optimizers step for step:
``torch.optim.SGD(momentum=m, weight_decay=wd)`` (L2 penalty added to the gradient) and
``torch.optim.AdamW(betas, eps, weight_decay=wd)`` (decoupled decay).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SGD, ADAMW = 0, 1
_BUFFERS = ("exp_avg", "exp_avg_sq")
_SETTINGS = ("optimizer", "lr", "weight_decay", "step")


@dataclass
class OptimizerState:
    """Per-env optimizer settings and state for a batch of models with flat parameters ``[N, P]``."""

    optimizer: torch.Tensor  # [N] long: index into OPTIMIZERS
    lr: torch.Tensor  # [N] float
    weight_decay: torch.Tensor  # [N] float
    step: torch.Tensor  # [N, G] float: AdamW steps taken per env and parameter group
    exp_avg: torch.Tensor  # [N, P]: AdamW's first moment, or SGD's momentum buffer
    exp_avg_sq: torch.Tensor  # [N, P]: AdamW's second moment
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state under its field name (for cloning, saving and restoring)."""
        return {name: getattr(self, name) for name in (*_SETTINGS, *_BUFFERS)}

    def take(self, env_ids: torch.Tensor) -> OptimizerState:
        """A copy of some envs' state."""
        return dataclasses.replace(self, **{name: t[env_ids] for name, t in self.tensors().items()})

    def put(self, env_ids: torch.Tensor, values: OptimizerState) -> None:
        """Write a sub-batch state (from :meth:`take`) back into some envs' entries, in place."""
        for name, t in self.tensors().items():
            t[env_ids] = getattr(values, name)

    def clear(self, env_ids: torch.Tensor, columns: slice = slice(None), group: int | None = None) -> None:
        """Zero the moments of some envs (only ``columns`` of them) and their step counts (one group, or all)."""
        for name in _BUFFERS:
            getattr(self, name)[env_ids, columns] = 0
        self.step[env_ids, slice(None) if group is None else group] = 0


def init_state(flat: torch.Tensor, n_groups: int, optimizer: str | list[str] = "adamw",
               lr: float | torch.Tensor = 1e-3, weight_decay: float | torch.Tensor = 0.0,
               momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> OptimizerState:
    """Zero optimizer state for flat parameters ``[N, P]``; scalar settings are broadcast to every env."""
    n, device = flat.shape[0], flat.device
    names = [optimizer] * n if isinstance(optimizer, str) else list(optimizer)
    if len(names) != n:
        raise ValueError(f"got {len(names)} optimizer names for {n} envs")
    for name in names:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")

    def per_env(value: float | torch.Tensor, what: str) -> torch.Tensor:
        bad = (not math.isfinite(value) or value < 0) if isinstance(value, (int, float)) \
            else bool(~torch.isfinite(value).all() or (value < 0).any())  # a tensor is checked on its device
        if bad:
            raise ValueError(f"{what} must be finite and >= 0, got {value}")
        return torch.as_tensor(value, dtype=torch.float32, device=device).expand(n).clone()

    return OptimizerState(
        optimizer=torch.tensor([OPTIMIZERS.index(x) for x in names], device=device),
        lr=per_env(lr, "lr"),
        weight_decay=per_env(weight_decay, "weight_decay"),
        step=torch.zeros(n, n_groups, device=device),
        exp_avg=torch.zeros_like(flat), exp_avg_sq=torch.zeros_like(flat),
        momentum=momentum, betas=betas, eps=eps,
    )


@torch.no_grad()
def step(flat: torch.Tensor, grad: torch.Tensor, state: OptimizerState, group_index: torch.Tensor,
         update_mask: torch.Tensor | None = None) -> None:
    """Apply one optimizer step in place to ``flat [N, P]`` (where ``update_mask [N, G]`` allows).

    ``group_index [P]`` names the group of every column (``ParamLayout.group_index``).
    """
    is_adam = state.optimizer == ADAMW
    if update_mask is None:
        state.step += is_adam[:, None].float()  # AdamW step counts advance only for envs that take one
        adam, sgd = is_adam[:, None], ~is_adam[:, None]
    else:
        active = update_mask.to(torch.bool)
        state.step += (active & is_adam[:, None]).float()
        take = active[:, group_index]  # [N, P]
        adam, sgd = is_adam[:, None] & take, ~is_adam[:, None] & take
    lr = state.lr[:, None]
    wd = state.weight_decay[:, None]
    beta1, beta2 = state.betas

    # SGD with momentum and L2 weight decay (torch.optim.SGD); its momentum buffer is ``exp_avg``.
    d_p = grad + wd * flat
    new_buf = state.exp_avg * state.momentum + d_p
    sgd_param = flat - lr * new_buf

    # AdamW with decoupled weight decay (torch.optim.AdamW); bias corrections per env and group.
    t = state.step.clamp_min(1)
    bias1 = 1 - beta1 ** t
    bias2_sqrt = (1 - beta2 ** t).sqrt()
    m = state.exp_avg.lerp(grad, 1 - beta1)
    v = state.exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    denom = v.sqrt() / bias2_sqrt[:, group_index] + state.eps
    adam_param = flat * (1 - lr * wd) - (state.lr[:, None] / bias1)[:, group_index] * m / denom

    state.exp_avg.copy_(torch.where(adam, m, torch.where(sgd, new_buf, state.exp_avg)))
    state.exp_avg_sq.copy_(torch.where(adam, v, state.exp_avg_sq))
    flat.copy_(torch.where(adam, adam_param, torch.where(sgd, sgd_param, flat)))

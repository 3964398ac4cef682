"""One batched training step of N models, shared by the zoo builder and the environments."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch

from llm_repair_gym.lm import optim
from llm_repair_gym.lm.model import ModelConfig, ParamLayout, Params, forward, token_losses
from llm_repair_gym.lm.tasks import Batch


def batch_loss(params: Params, config: ModelConfig, parts: Sequence[Batch]) -> torch.Tensor:
    """Mean answer-token cross-entropy per env ``[N]`` over the examples of every part (differentiable).

    A training batch comes in parts, one per task family, each cut to its family's length: the model
    runs once per part, and no FLOP is spent on padding that a causal model cannot see anyway.
    """
    total, count = 0, 0
    for part in parts:
        losses = token_losses(forward(params, config, part.inputs), part.targets)
        total = total + (losses * part.answer_mask).sum((1, 2))
        count = count + part.answer_mask.sum((1, 2))
    return total / count.clamp_min(1)


@functools.cache
def compiled(fn: Callable) -> Callable:
    """``fn`` under ``torch.compile`` (dynamic shapes: one graph serves every number of envs), made once."""
    return torch.compile(fn, dynamic=True)


def train_step(flat: torch.Tensor, config: ModelConfig, state: optim.OptimizerState, parts: Sequence[Batch],
               update_mask: torch.Tensor | None = None, compile: bool = False) -> torch.Tensor:
    """One optimizer step on ``parts`` for every env of ``flat [N, P]`` (in place); returns the loss before it.

    Envs are independent: the summed loss gives each env exactly its own gradient. ``compile=True`` runs the
    loss (forward and backward) and the optimizer update as ``torch.compile`` graphs.
    """
    layout = ParamLayout.of(config)
    loss_fn, update = (compiled(batch_loss), compiled(optim.step)) if compile else (batch_loss, optim.step)
    leaf = flat.detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(layout.views(leaf), config, parts)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    update(flat, grad, state, layout.group_index(flat.device), update_mask)
    return loss.detach()


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

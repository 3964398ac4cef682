"""One batched training step of N models, shared by the zoo builder and the environments."""

from __future__ import annotations

import math

import torch

from llm_repair_gym import optim
from llm_repair_gym.model import ModelConfig, Params, forward, token_losses
from llm_repair_gym.tasks import Batch


def batch_loss(params: Params, config: ModelConfig, batch: Batch) -> torch.Tensor:
    """Mean answer-token cross-entropy per env ``[N]`` (differentiable)."""
    losses = token_losses(forward(params, config, batch.inputs), batch.targets)
    mask = batch.answer_mask
    return (losses * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def train_step(params: Params, config: ModelConfig, state: optim.OptimizerState, batch: Batch,
               update_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One optimizer step on ``batch`` for every env (in place); returns the per-env loss before it.

    Envs are independent: the summed loss gives each env exactly its own gradient.
    """
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    with torch.enable_grad():
        loss = batch_loss(leaves, config, batch)
        grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
    optim.step(params, dict(zip(leaves, grads)), state, update_mask)
    return loss.detach()


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

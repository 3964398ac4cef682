"""MAML (Finn, Abbeel and Levine, 2017) on a batch of tasks, with no Python loop over the tasks.

The meta-update is ``theta <- theta - beta * grad_theta sum_i L_i(phi_i)`` with ``phi_i`` the result of a few
gradient steps ``phi <- phi - alpha * grad_phi L_i(phi)`` on task ``i``'s support set. Every model here is a
flat parameter vector and the meta-batch is its leading axis: ``loss_fn(params [T, P], data) -> [T]`` gives
each task's loss under its own parameters (the batched GPT of :mod:`llm_repair_gym.lm.model` already works this
way: its env axis is the task axis). Because task ``i``'s loss depends only on row ``i``, the gradient of the
summed loss is every task's own gradient, so one ``autograd.grad`` adapts the whole meta-batch.

==================  ======================================================================================
option              effect
==================  ======================================================================================
``first_order``     drop the second-order term (FOMAML): the inner gradients are treated as constants
``inner_steps``     gradient steps per adaptation during meta-training (evaluation may take any number)
``meta_sgd``        learn one inner rate per parameter, initialised at ``inner_lr`` (Li et al., 2017)
==================  ======================================================================================

By default the meta-gradient is exact: the inner steps are differentiated through (``create_graph=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

LossFn = Callable[[torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class MAMLConfig:
    """Hyperparameters of MAML; the defaults are the paper's sinusoid settings."""

    inner_lr: float = 0.01
    inner_steps: int = 1
    outer_lr: float = 1e-3
    first_order: bool = False
    meta_sgd: bool = False

    def __post_init__(self) -> None:
        if not self.inner_lr > 0 or not self.outer_lr > 0:
            raise ValueError(f"inner_lr and outer_lr must be > 0, got {self.inner_lr} and {self.outer_lr}")
        if self.inner_steps < 1:
            raise ValueError(f"inner_steps must be >= 1, got {self.inner_steps}")

    def to_dict(self) -> dict:
        return asdict(self)


ADAPT_RULES = ("sgd", "adam")
_ADAM = (0.9, 0.999, 1e-8)  # beta1, beta2, eps: torch.optim.Adam's defaults


def adapt_steps(loss_fn: LossFn, params: torch.Tensor, support: Any, lr: torch.Tensor | float, steps: int,
                create_graph: bool = False, rule: str = "sgd") -> Iterator[torch.Tensor]:
    """Yield ``params [T, P]`` after each of ``steps`` gradient steps on every task's support set.

    ``lr`` is a number or one rate per parameter ``[P]``. ``rule="sgd"`` takes plain gradient steps (MAML's
    inner loop); ``rule="adam"`` takes Adam steps (fresh moments per task, torch's defaults), for fine-tuning
    a baseline. With ``create_graph`` the steps stay differentiable (second-order MAML; SGD only). Without it
    each step's gradient is a constant (first-order MAML when ``params`` is part of a graph). ``params`` that
    do not require grad are adapted as a detached copy, step by step (evaluation, fine-tuning a baseline).
    """
    if params.dim() != 2:
        raise ValueError(f"params must be [tasks, parameters], got shape {tuple(params.shape)}")
    if rule not in ADAPT_RULES:
        raise ValueError(f"rule must be one of {ADAPT_RULES}, got {rule!r}")
    if rule == "adam" and create_graph:
        raise ValueError("Adam adaptation is for fine-tuning (create_graph=False); MAML's inner loop uses 'sgd'")
    detached = not params.requires_grad
    if detached:
        params = params.detach().clone().requires_grad_()
    beta1, beta2, eps = _ADAM
    m = v = None
    for t in range(1, steps + 1):
        with torch.enable_grad():
            loss = loss_fn(params, support)
            (grad,) = torch.autograd.grad(loss.sum(), params, create_graph=create_graph)
        if rule == "adam":
            m = (1 - beta1) * grad if m is None else beta1 * m + (1 - beta1) * grad
            v = (1 - beta2) * grad * grad if v is None else beta2 * v + (1 - beta2) * grad * grad
            grad = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
        params = params - lr * grad
        if detached:
            params = params.detach().requires_grad_()
        yield params


def adapt(loss_fn: LossFn, params: torch.Tensor, support: Any, lr: torch.Tensor | float, steps: int,
          create_graph: bool = False, rule: str = "sgd") -> torch.Tensor:
    """``params [T, P]`` after ``steps`` gradient steps on every task's support set (see :func:`adapt_steps`)."""
    out = params
    for adapted in adapt_steps(loss_fn, params, support, lr, steps, create_graph, rule):
        out = adapted
    return out


def losses_after(loss_fn: LossFn, params: torch.Tensor, support: Any, query: Any, lr: torch.Tensor | float,
                 steps: Sequence[int], metric: LossFn | None = None, rule: str = "sgd") -> dict[int, torch.Tensor]:
    """Per-task ``metric`` (default: the loss) on ``query`` after each number of adaptation ``steps``.

    One adaptation run serves every entry of ``steps``: ``{k: [T]}``, with ``k = 0`` the unadapted params.
    """
    metric = metric or loss_fn
    wanted = sorted(set(steps))
    if wanted and wanted[0] < 0:
        raise ValueError(f"step counts must be >= 0, got {list(steps)}")
    out: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        if 0 in wanted:
            out[0] = metric(params.detach(), query).detach()
    trace = adapt_steps(loss_fn, params.detach(), support, lr, max(wanted, default=0), rule=rule)
    for k, adapted in enumerate(trace, start=1):
        if k in wanted:
            with torch.no_grad():
                out[k] = metric(adapted.detach(), query).detach()
    return out


def sharpness(loss_fn: LossFn, params: torch.Tensor, data: Any, lr: torch.Tensor | float,
              iterations: int = 30, seed: int = 0) -> torch.Tensor:
    """Per task, the largest eigenvalue ``[T]`` of ``lr^(1/2) H lr^(1/2)``, ``H`` the Hessian of the task's
    loss on ``data`` at ``params [T, P]`` (``lr`` a number or one rate per parameter ``[P]``).

    Plain gradient steps at ``lr`` are stable near a minimum only where this is below 2 (on a quadratic,
    larger values make every step overshoot by more than it gains). Power iteration with Hessian-vector
    products, one batched double backward per iteration, from a start vector drawn from ``seed``; the
    estimate is the Rayleigh quotient of the last iterate, so it approaches the top eigenvalue from below
    when that is also the largest in magnitude (as it is near a minimum).
    """
    if params.dim() != 2:
        raise ValueError(f"params must be [tasks, parameters], got shape {tuple(params.shape)}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    rates = torch.as_tensor(lr, dtype=params.dtype, device=params.device)
    if (rates < 0).any():
        raise ValueError(f"sharpness needs rates >= 0 ({int((rates < 0).sum())} are negative): a negative rate "
                         "ascends along its parameter, where this stability bound does not apply")
    scale = rates.sqrt()
    point = params.detach().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_fn(point, data).sum(), point, create_graph=True)
    gen = torch.Generator(device=params.device).manual_seed(seed)
    vector = torch.randn(params.shape, generator=gen, dtype=params.dtype, device=params.device)
    vector = vector / vector.norm(dim=1, keepdim=True)
    for _ in range(iterations):
        (hvp,) = torch.autograd.grad(grad, point, grad_outputs=scale * vector, retain_graph=True)
        product = scale * hvp
        estimate = (product * vector).sum(1)
        vector = product / product.norm(dim=1, keepdim=True).clamp_min(torch.finfo(params.dtype).tiny)
    return estimate.detach()


class MAML(torch.nn.Module):
    """A meta-learned initialisation ``theta [P]`` (and, with Meta-SGD, per-parameter inner rates ``[P]``).

    ``meta_loss(support, query, num_tasks)`` is the query loss after adaptation, averaged over the tasks
    (differentiable in ``theta``); ``step(...)`` also takes one Adam step on it.
    """

    def __init__(self, loss_fn: LossFn, init: torch.Tensor, config: MAMLConfig | None = None) -> None:
        super().__init__()
        if init.dim() != 1:
            raise ValueError(f"init must be one flat parameter vector [P], got shape {tuple(init.shape)}")
        self.loss_fn, self.config = loss_fn, config or MAMLConfig()
        self.theta = torch.nn.Parameter(init.detach().clone())
        rates = torch.full_like(self.theta, self.config.inner_lr)
        if self.config.meta_sgd:
            self.inner_lr = torch.nn.Parameter(rates)
        else:
            self.register_buffer("inner_lr", rates)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.config.outer_lr)

    def adapt(self, support: Any, num_tasks: int, steps: int | None = None,
              create_graph: bool | None = None) -> torch.Tensor:
        """Task parameters ``[T, P]`` after ``steps`` (default ``inner_steps``) steps from ``theta``."""
        steps = self.config.inner_steps if steps is None else steps
        create_graph = (not self.config.first_order) if create_graph is None else create_graph
        start = self.theta.expand(num_tasks, -1)
        return adapt(self.loss_fn, start, support, self.inner_lr, steps, create_graph)

    def meta_loss(self, support: Any, query: Any, num_tasks: int) -> torch.Tensor:
        """Mean query loss over the meta-batch after adapting on the support sets."""
        return self.loss_fn(self.adapt(support, num_tasks), query).mean()

    def step(self, support: Any, query: Any, num_tasks: int) -> float:
        """One meta-update (Adam on ``theta`` and, with Meta-SGD, the inner rates); returns the meta-loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.meta_loss(support, query, num_tasks)
        loss.backward()
        self.optimizer.step()
        return loss.item()

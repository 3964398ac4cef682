"""What can be done to a batch of models, for a chosen subset of envs at a time.

Every operation takes ``env_ids`` (the envs it applies to) and changes only their entries of the
``RepairState``; actions and fault injections are built from these pieces. Nothing loops over envs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_repair_gym.metrics import score_logits
from llm_repair_gym.model import forward, init_params, param_group, param_shapes
from llm_repair_gym.optim import init_state
from llm_repair_gym.presets import Preset
from llm_repair_gym.state import RepairState, put, put_opt, take, take_opt
from llm_repair_gym.tasks import FAMILIES, Batch, TaskSuite
from llm_repair_gym.training import train_step

LOSS_CAP = 20.0  # losses are clipped here in observations; a diverged model reads as this


@dataclass(frozen=True)
class DynamicsConfig:
    """Sizes and rates of the repair dynamics (documented in the env manual)."""

    pool_size: int = 512  # training examples per family in each env's episode pool
    batch_size: int = 48  # examples per env in one gradient step
    train_steps: int = 4  # gradient steps of one train action
    eval_size: int = 64  # validation examples per family scored every step (the same for every env)
    spread_size: int = 64  # pool examples per family scored every step for train loss and loss spread
    grad_size: int = 16  # validation examples per family whose loss gives the per-group gradient norms
    base_lr: float = 1e-3  # lr at level 0; each level multiplies it by sqrt(10)
    min_lr_level: int = -4
    max_lr_level: int = 4
    filter_min_loss: float = 0.5  # a pool answer the trusted copy gets wrong is dropped only above this loss
    filter_max_fraction: float = 0.5  # of each family's pool, the most one filter action may drop
    trusted_size: int = 96  # clean, trusted training examples per family the filter adapts a copy on
    trusted_steps: int = 12  # AdamW steps of that copy before it judges the pool
    trusted_lr: float = 3e-4  # low: a fresh AdamW at 1e-3 knocks a converged model off its clean answers
    prune_fraction: float = 0.1  # of the remaining weights of every matrix, zeroed by one prune action
    surprise_loss: float = 2.0  # an example whose answer loss exceeds this counts as surprising

    def __post_init__(self) -> None:
        sizes = {k: getattr(self, k) for k in ("pool_size", "batch_size", "train_steps", "eval_size", "spread_size",
                                                "grad_size", "trusted_size", "trusted_steps")}
        if any(not isinstance(v, int) or v < 1 for v in sizes.values()):
            raise ValueError(f"DynamicsConfig sizes must be ints >= 1, got {sizes}")
        if self.spread_size > self.pool_size or self.grad_size > self.eval_size:
            raise ValueError(f"need spread_size <= pool_size and grad_size <= eval_size, got {sizes}")
        if not (0 < self.filter_max_fraction < 1 and 0 < self.prune_fraction < 1):
            raise ValueError("filter_max_fraction and prune_fraction must lie in (0, 1)")
        if not self.filter_min_loss >= 0:
            raise ValueError(f"filter_min_loss must be >= 0, got {self.filter_min_loss}")
        if not self.base_lr > 0 or not self.trusted_lr > 0 or self.min_lr_level > 0 or self.max_lr_level < 0:
            raise ValueError("base_lr and trusted_lr must be > 0, and min_lr_level <= 0 <= max_lr_level")


@dataclass
class Context:
    """What stays fixed while envs run: preset, task suite, zoo, dynamics settings, eval ids."""

    preset: Preset
    suite: TaskSuite
    zoo_params: dict[str, torch.Tensor]
    zoo_fact_tables: torch.Tensor
    dynamics: DynamicsConfig
    eval_ids: dict[str, torch.Tensor]  # family -> [E] validation ids
    trusted_ids: dict[str, torch.Tensor]  # family -> [K] training ids whose labels are known to be clean

    @property
    def device(self) -> torch.device:
        return self.zoo_fact_tables.device


@dataclass
class Measurement:
    """What the env measures of some envs after an action (all ``[n, ...]``)."""

    val_accuracy: torch.Tensor  # [n, F]
    val_loss: torch.Tensor  # [n, F]
    train_loss: torch.Tensor  # [n, F]
    loss_spread: torch.Tensor  # [n, F]
    grad_norm: torch.Tensor  # [n, G]
    weight_rms: torch.Tensor  # [n, G]
    sparsity: torch.Tensor  # [n]
    crashed: torch.Tensor  # [n] bool


def lr_of_level(ctx: Context, level: torch.Tensor) -> torch.Tensor:
    return ctx.dynamics.base_lr * torch.pow(10.0, level.to(torch.float32) / 2)


def reset_optimizer(state: RepairState, env_ids: torch.Tensor, group: int | None = None) -> None:
    """Zero the optimizer moments and step counts of some envs (one parameter group, or all)."""
    for name in state.params:
        if group is not None and param_group(name) % state.opt.step.shape[1] != group:
            continue
        for buffers in (state.opt.momentum_buffer, state.opt.exp_avg, state.opt.exp_avg_sq):
            buffers[name][env_ids] = 0
    if group is None:
        state.opt.step[env_ids] = 0
    else:
        state.opt.step[env_ids, group] = 0


def sample_pool(ctx: Context, state: RepairState, env_ids: torch.Tensor, family: str,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Example ids and noisy-label flags ``[n, B]`` drawn uniformly from each env's kept pool."""
    keep = state.keep[family][env_ids]
    kept = keep.sum(1).clamp_min(1)
    rank = state.rng.integers(env_ids, kept, (batch_size,))
    position = torch.searchsorted(keep.long().cumsum(1), rank + 1).clamp_max(keep.shape[1] - 1)
    ids = state.pool_ids[family][env_ids].gather(1, position)
    corrupt = state.corrupt[family][env_ids].gather(1, position)
    return ids, corrupt


def mixed_batch(ctx: Context, state: RepairState, env_ids: torch.Tensor, family_weights: torch.Tensor,
                fact_tables: torch.Tensor) -> Batch:
    """One training batch per env whose family mix follows ``family_weights [n, F]`` (rows sum to 1).

    The batch is cut to the longest family that any env of the call trains on (only padding is cut).
    """
    b = ctx.dynamics.batch_size
    per_family = []
    for family in FAMILIES:
        ids, corrupt = sample_pool(ctx, state, env_ids, family, b)
        per_family.append(ctx.suite.batch(family, ids, fact_tables, corrupt))
    bounds = (family_weights.cumsum(1) * b).round()  # [n, F]
    slots = torch.arange(b, device=ctx.device)
    slot_family = (slots[None, :, None] >= bounds[:, None, :]).sum(-1).clamp_max(len(FAMILIES) - 1)  # [n, B]
    pick = slot_family[None, :, :, None]

    def choose(field: str) -> torch.Tensor:
        stacked = torch.stack([getattr(x, field) for x in per_family])  # [F, n, B, T]
        return stacked.gather(0, pick.expand(1, *stacked.shape[1:]))[0]

    present = (family_weights > 0).any(0).tolist()
    length = max(ctx.suite.lengths[f] for f, used in zip(FAMILIES, present) if used)
    return Batch(choose("inputs"), choose("targets"), choose("answer_mask")).trim(length)


def train(ctx: Context, state: RepairState, env_ids: torch.Tensor, family_weights: torch.Tensor,
          steps: int, fact_tables: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> None:
    """``steps`` optimizer steps for some envs on their pools (or on ``fact_tables``, at ``lr``)."""
    if env_ids.numel() == 0:
        return
    tables = state.fact_tables[env_ids] if fact_tables is None else fact_tables
    params, opt = take(state.params, env_ids), take_opt(state.opt, env_ids)
    if lr is not None:
        opt.lr = lr
    for _ in range(steps):
        train_step(params, ctx.preset.model, opt, mixed_batch(ctx, state, env_ids, family_weights, tables))
    if lr is not None:
        opt.lr = state.opt.lr[env_ids]
    put(state.params, env_ids, params)
    put_opt(state.opt, env_ids, opt)


def pool_scores(ctx: Context, state: RepairState, env_ids: torch.Tensor, family: str,
                params: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer loss and exact-match correctness ``[n, pool_size]`` of each env's whole pool of one family
    (labels as trained on, noisy ones included), under the envs' parameters or under ``params`` (already
    taken for ``env_ids``)."""
    ids, corrupt = state.pool_ids[family][env_ids], state.corrupt[family][env_ids]
    params = take(state.params, env_ids) if params is None else params
    batch = ctx.suite.batch(family, ids, state.fact_tables[env_ids], corrupt).trim(ctx.suite.lengths[family])
    with torch.no_grad():
        losses, correct, _ = score_logits(forward(params, ctx.preset.model, batch.inputs), batch)
    return torch.nan_to_num(losses, nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP), correct


def trusted_copy(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of some envs' parameters after ``trusted_steps`` fresh-AdamW steps on the trusted clean set.

    Learned label noise can fit the pool so well that the model itself reproduces the noisy answers; a
    copy pulled towards clean data does not (the "trusted data" idea of Hendrycks et al., 2018). The envs'
    own parameters and optimizer are not touched.
    """
    dyn = ctx.dynamics
    params = take(state.params, env_ids)
    opt = init_state(params, ctx.preset.model.n_groups, "adamw", dyn.trusted_lr)
    tables = state.fact_tables[env_ids]
    batch = Batch.cat([ctx.suite.batch(f, ctx.trusted_ids[f].expand(env_ids.numel(), -1), tables)
                       for f in FAMILIES])
    for _ in range(dyn.trusted_steps):
        train_step(params, ctx.preset.model, opt, batch)
    return params


def filter_pool(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> None:
    """Drop the pool examples whose labels a trusted-data copy of the model confidently disagrees with.

    An example is dropped when the copy's greedy answer is not its label and the label's answer loss
    exceeds ``filter_min_loss`` (a hard clean example the model has not learned yet is wrong but seldom
    confidently so), highest loss first and at most ``filter_max_fraction`` of each family's pool. Every
    pool is judged afresh: a later filter, after retraining, takes back clean examples dropped before.
    """
    if env_ids.numel() == 0:
        return
    judge = trusted_copy(ctx, state, env_ids)
    pool = ctx.dynamics.pool_size
    budget = int(ctx.dynamics.filter_max_fraction * pool)
    for family in FAMILIES:
        losses, correct = pool_scores(ctx, state, env_ids, family, judge)
        suspect = ~correct & (losses > ctx.dynamics.filter_min_loss)
        suspicion = torch.where(suspect, losses, torch.full_like(losses, -1.0))
        ranked = suspicion.argsort(dim=1, descending=True, stable=True)
        within_budget = torch.zeros_like(correct).scatter(
            1, ranked, (torch.arange(pool, device=ctx.device) < budget).expand_as(ranked))
        state.keep[family][env_ids] = ~(suspect & within_budget)


def restore_pool(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> None:
    """Undo every filter: the whole pool is used again."""
    for family in FAMILIES:
        state.keep[family][env_ids] = True


def reinit_block(ctx: Context, state: RepairState, env_ids: torch.Tensor, block: int) -> None:
    """Fresh GPT-2 initialisation of one transformer block, drawn from each env's own stream."""
    if env_ids.numel() == 0:
        return
    cfg = ctx.preset.model
    shapes = param_shapes(cfg)
    names = [name for name in shapes if name.startswith(f"h.{block}.")]
    fresh = init_params(cfg, 1, torch.Generator().manual_seed(0), ctx.device, names)  # LN/bias constants
    for name in names:
        value = fresh[name].expand(env_ids.numel(), *shapes[name]).clone()
        if name.endswith(".weight") and "ln_" not in name:
            std = cfg.initializer_range / (2 * cfg.n_layer) ** 0.5 if name.endswith("c_proj.weight") \
                else cfg.initializer_range
            value = state.rng.normal(env_ids, shapes[name]) * std
        state.params[name][env_ids] = value
    reset_optimizer(state, env_ids, group=1 + block)


def prune(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> None:
    """Zero the smallest-magnitude ``prune_fraction`` of the remaining weights of every block matrix."""
    if env_ids.numel() == 0:
        return
    for name, p in state.params.items():
        if not name.startswith("h.") or not name.endswith(".weight") or ".ln_" in name:
            continue
        w = p[env_ids].flatten(1)
        zero_frac = (w == 0).float().mean(1)
        target = zero_frac + ctx.dynamics.prune_fraction * (1 - zero_frac)
        k = (target * w.shape[1]).long().clamp(1, w.shape[1])
        threshold = w.abs().sort(1).values.gather(1, (k - 1)[:, None])
        pruned = torch.where(w.abs() <= threshold, torch.zeros_like(w), w)
        p[env_ids] = pruned.view(-1, *p.shape[1:])


def rollback(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> None:
    """Return to the best snapshot of the episode and clear the optimizer moments."""
    for name, p in state.params.items():
        p[env_ids] = state.snapshot[name][env_ids]
    reset_optimizer(state, env_ids)


def is_nonfinite(state: RepairState, env_ids: torch.Tensor) -> torch.Tensor:
    """``[n]`` bool: some parameter of the env is NaN or infinite."""
    bad = torch.zeros(env_ids.numel(), dtype=torch.bool, device=env_ids.device)
    for p in state.params.values():
        bad |= ~torch.isfinite(p[env_ids].flatten(1)).all(1)
    return bad


@torch.no_grad()
def validation_accuracy(ctx: Context, params: dict[str, torch.Tensor], fact_tables: torch.Tensor) -> torch.Tensor:
    """Exact match ``[n, F]`` on the fixed validation examples of models ``params`` (e.g. the zoo's)."""
    out = []
    for family in FAMILIES:
        ids = ctx.eval_ids[family].expand(fact_tables.shape[0], -1)
        batch = ctx.suite.batch(family, ids, fact_tables).trim(ctx.suite.lengths[family])
        out.append(score_logits(forward(params, ctx.preset.model, batch.inputs), batch)[1].float().mean(-1))
    return torch.stack(out, 1)


def measure(ctx: Context, state: RepairState, env_ids: torch.Tensor) -> Measurement:
    """Validation scores, pool loss statistics and per-group gradient norms of some envs.

    One no-grad forward per family scores its ``eval_size`` validation and ``spread_size`` pool examples
    together (cut to the family's length); the gradient norms come from one backward on the first
    ``grad_size`` validation examples of every family.
    """
    cfg, dyn = ctx.preset.model, ctx.dynamics
    n, n_groups = env_ids.numel(), cfg.n_groups
    params = take(state.params, env_ids)
    tables = state.fact_tables[env_ids]
    spread = slice(0, dyn.spread_size)
    val_loss, val_correct, pool_loss, grad_batches = [], [], [], []
    for family in FAMILIES:
        length = ctx.suite.lengths[family]
        eval_ids = ctx.eval_ids[family].expand(n, -1)
        pool_ids = state.pool_ids[family][env_ids][:, spread]
        clean = torch.zeros_like(eval_ids, dtype=torch.bool)
        corrupt = torch.cat([clean, state.corrupt[family][env_ids][:, spread]], 1)
        batch = ctx.suite.batch(family, torch.cat([eval_ids, pool_ids], 1), tables, corrupt).trim(length)
        with torch.no_grad():
            losses, correct, _ = score_logits(forward(params, cfg, batch.inputs), batch)
        val_loss.append(losses[:, :dyn.eval_size])
        val_correct.append(correct[:, :dyn.eval_size])
        pool_loss.append(torch.nan_to_num(losses[:, dyn.eval_size:], nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP))
        grad_batches.append(ctx.suite.batch(family, eval_ids[:, :dyn.grad_size], tables))
    grad_batch = Batch.cat(grad_batches)
    leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
    with torch.enable_grad():
        grad_loss, _, _ = score_logits(forward(leaves, cfg, grad_batch.inputs), grad_batch)
        grads = torch.autograd.grad(grad_loss.mean(1).sum(), list(leaves.values()))
    example_loss = torch.stack(val_loss, 1)  # [n, F, E]
    correct = torch.stack(val_correct, 1)
    grad_sq = torch.zeros(n, n_groups, device=ctx.device)
    weight_sq = torch.zeros_like(grad_sq)
    weight_count = torch.zeros(n_groups, device=ctx.device)
    zeros = torch.zeros(n, device=ctx.device)
    matrix_count = 0
    for (name, p), g in zip(params.items(), grads):
        group = param_group(name) % n_groups
        grad_sq[:, group] += g.flatten(1).pow(2).sum(1)
        weight_sq[:, group] += p.flatten(1).pow(2).sum(1)
        weight_count[group] += p[0].numel()
        if name.startswith("h.") and name.endswith(".weight") and ".ln_" not in name:
            zeros += (p.flatten(1) == 0).sum(1)
            matrix_count += p[0].numel()
    train_losses = torch.stack(pool_loss, 1)  # [n, F, spread]
    kept = torch.stack([state.keep[f][env_ids][:, spread] for f in FAMILIES], 1).float()
    n_kept = kept.sum(-1).clamp_min(1)
    crashed = is_nonfinite(state, env_ids) | ~torch.isfinite(example_loss).all(-1).all(-1)
    val_accuracy = torch.where(crashed[:, None], 0.0, correct.float().mean(-1))
    return Measurement(
        val_accuracy=val_accuracy,
        val_loss=torch.nan_to_num(example_loss.mean(-1), nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP),
        train_loss=(train_losses * kept).sum(-1) / n_kept,
        loss_spread=((train_losses > dyn.surprise_loss).float() * kept).sum(-1) / n_kept,
        grad_norm=torch.nan_to_num(grad_sq.sqrt(), nan=1e6, posinf=1e6),
        weight_rms=torch.nan_to_num((weight_sq / weight_count).sqrt(), nan=1e6, posinf=1e6),
        sparsity=zeros / max(matrix_count, 1),
        crashed=crashed,
    )

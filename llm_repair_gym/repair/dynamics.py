"""What can be done to a batch of models, for a chosen subset of envs at a time.

Every operation takes ``env_ids`` (the envs it applies to) and changes only their entries of the
``RepairState``; actions and fault injections are built from these pieces. Nothing loops over envs, and
nothing waits for the device: what decides the shape of the work (which envs, which family mix, which
block) is known on the host before the call, so a step runs without a host synchronisation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from llm_repair_gym.lm.metrics import score_batch
from llm_repair_gym.lm.model import ParamLayout, is_block_matrix
from llm_repair_gym.lm.optim import init_state
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES, Batch, TaskSuite
from llm_repair_gym.lm.training import compiled, train_step
from llm_repair_gym.repair.state import RepairState

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


DYNAMICS_V1 = DynamicsConfig(batch_size=24, spread_size=32, trusted_size=48, trusted_steps=4)
"""LLMRepair-v1's sizes: half of v0's examples per gradient step (the same four steps per train action) and
per training-loss measurement, and an audit (``filter_noisy``, ``probe_data``) that adapts its trusted copy in
4 steps on 48 examples per family instead of 12 on 96. The fixed validation set stays at 64 examples per
family: fault injections measure the damage they did on it (v1's free measurement draws its own, see
:data:`~llm_repair_gym.repair.measure_v1.FREE_VAL_SIZE`). With the ``nano`` preset they make a v1 step about
four times cheaper than v0's (``benchmarks/throughput.py``); ``benchmarks/calibration_v1.py`` checks that
every fault still does damage and every documented repair still pays."""


@dataclass
class RepairContext:
    """What stays fixed while envs run: preset, task suite, zoo, dynamics settings, eval ids."""

    preset: Preset
    task_suite: TaskSuite
    zoo_params: torch.Tensor  # [M, P] flat parameters of the zoo's models
    zoo_fact_tables: torch.Tensor  # [M, K]
    dynamics: DynamicsConfig
    eval_ids: dict[str, torch.Tensor]  # family -> [E] validation ids
    trusted_ids: dict[str, torch.Tensor]  # family -> [K] training ids whose labels are known to be clean
    chunk_envs: int = 256  # model work runs on at most this many envs at a time (bounds activation memory)
    compile: bool = False  # run the model work as torch.compile graphs (training.compiled)
    chunk_examples: int | None = None  # and on about this many examples per forward (None: no such bound)

    @property
    def device(self) -> torch.device:
        return self.zoo_fact_tables.device

    @property
    def layout(self) -> ParamLayout:
        return ParamLayout.of(self.preset.model)


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


CPU_CHUNK_EXAMPLES = 1024  # examples per forward on the CPU: a chunk's activations stay in the cache


def build_context(preset: Preset, task_suite: TaskSuite, zoo_params: torch.Tensor, zoo_fact_tables: torch.Tensor,
                  dyn: DynamicsConfig, chunk_envs: int = 256, compile: bool = False) -> RepairContext:
    """The context of envs on a zoo: the first ``eval_size`` validation examples of each family are the fixed
    validation set, the last ``trusted_size`` training examples the trusted set (refused when a split is short).
    On the CPU, model work also runs on about ``CPU_CHUNK_EXAMPLES`` examples per forward (1.5-2x faster than
    one large batch, whose activations spill out of the cache; a GPU wants the large batch)."""
    eval_ids = {f: task_suite.split_ids[f]["val"][:dyn.eval_size] for f in FAMILIES}
    if min(ids.numel() for ids in eval_ids.values()) < dyn.eval_size:
        raise ValueError(f"eval_size {dyn.eval_size} exceeds a validation split")
    trusted_ids = {f: task_suite.split_ids[f]["train"][-dyn.trusted_size:] for f in FAMILIES}
    if min(ids.numel() for ids in trusted_ids.values()) < dyn.trusted_size:
        raise ValueError(f"trusted_size {dyn.trusted_size} exceeds a training split")
    chunk_examples = CPU_CHUNK_EXAMPLES if zoo_fact_tables.device.type == "cpu" else None
    return RepairContext(preset, task_suite, zoo_params, zoo_fact_tables, dyn, eval_ids, trusted_ids, chunk_envs,
                         compile, chunk_examples)


UNIFORM_MIX: tuple[float, ...] = tuple(1 / len(FAMILIES) for _ in FAMILIES)


def one_family_mix(family: int, share: float = 1.0) -> tuple[float, ...]:
    """A family mix with ``share`` of every batch from ``family`` and the rest split evenly."""
    rest = (1 - share) / (len(FAMILIES) - 1) if len(FAMILIES) > 1 else 0.0
    return tuple(share if i == family else rest for i in range(len(FAMILIES)))


def family_counts(mix: tuple[float, ...], batch_size: int) -> tuple[int, ...]:
    """Examples per family in a batch of ``batch_size`` drawn with family weights ``mix`` (rounded cumulatively)."""
    bounds, total = [], 0.0
    for weight in mix:
        total += weight
        bounds.append(round(total * batch_size))
    bounds[-1] = batch_size
    return tuple(b - a for a, b in zip([0, *bounds[:-1]], bounds))


def lr_of_level(ctx: RepairContext, level: torch.Tensor) -> torch.Tensor:
    return ctx.dynamics.base_lr * torch.pow(10.0, level.to(torch.float32) / 2)


def reset_optimizer(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, group: int | None = None) -> None:
    """Zero the optimizer moments and step counts of some envs (one parameter group, or all)."""
    columns = slice(None) if group is None else ctx.layout.group_span(group)
    state.opt.clear(env_ids, columns, group)


def sample_pool(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: str,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Example ids and noisy-label flags ``[n, B]`` drawn uniformly from each env's kept pool."""
    keep = state.keep[family][env_ids]
    kept = keep.sum(1).clamp_min(1)
    rank = state.rng.integers(env_ids, kept, (batch_size,))
    position = torch.searchsorted(keep.long().cumsum(1), rank + 1).clamp_max(keep.shape[1] - 1)
    ids = state.pool_ids[family][env_ids].gather(1, position)
    corrupt = state.corrupt[family][env_ids].gather(1, position)
    return ids, corrupt


def pool_batches(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, counts: tuple[int, ...],
                 fact_tables: torch.Tensor) -> list[Batch]:
    """One training batch per env from its kept pool: ``counts[f]`` examples of family ``f``, one part per
    family present, each cut to its family's length."""
    parts = []
    for family, count in zip(FAMILIES, counts):
        if count:
            ids, corrupt = sample_pool(ctx, state, env_ids, family, count)
            parts.append(ctx.task_suite.batch(family, ids, fact_tables, corrupt))
    return parts


def chunks(ctx: RepairContext, env_ids: torch.Tensor, per_env: int) -> list[tuple[slice, torch.Tensor]]:
    """``env_ids`` in runs of at most ``ctx.chunk_envs`` envs and, for work of ``per_env`` examples per env and
    forward, about ``ctx.chunk_examples`` examples (positions within ``env_ids``, and the ids). Envs are
    independent, so the chunking changes no env's numbers, only the speed."""
    n, size = env_ids.numel(), ctx.chunk_envs
    if ctx.chunk_examples:
        size = max(1, min(size, ctx.chunk_examples // per_env))
    return [(slice(start, start + size), env_ids[start:start + size]) for start in range(0, n, size)]


def train(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, mix: tuple[float, ...], steps: int,
          fact_tables: torch.Tensor | None = None, lr: float | None = None) -> None:
    """``steps`` optimizer steps for some envs on their pools, every batch drawn with family weights ``mix``
    (on ``fact_tables [n, K]`` instead of the true facts, or at ``lr`` instead of the envs' own, where given)."""
    counts = family_counts(mix, ctx.dynamics.batch_size)
    for rows, ids in chunks(ctx, env_ids, max(counts)):  # a forward runs one family's part
        tables = state.fact_tables[ids] if fact_tables is None else fact_tables[rows]
        params, opt = state.params[ids], state.opt.take(ids)
        if lr is not None:
            opt.lr = torch.full_like(opt.lr, lr)
        for _ in range(steps):
            train_step(params, ctx.preset.model, opt, pool_batches(ctx, state, ids, counts, tables),
                       compile=ctx.compile)
        if lr is not None:
            opt.lr = state.opt.lr[ids]
        state.params[ids] = params
        state.opt.put(ids, opt)


def pool_scores(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: str,
                params: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer loss and exact-match correctness ``[n, pool_size]`` of each env's whole pool of one family
    (labels as trained on, noisy ones included), under the envs' parameters or under flat ``params``
    (already taken for ``env_ids``)."""
    ids, corrupt = state.pool_ids[family][env_ids], state.corrupt[family][env_ids]
    params = state.params[env_ids] if params is None else params
    batch = ctx.task_suite.batch(family, ids, state.fact_tables[env_ids], corrupt)
    with torch.no_grad():
        score = compiled(score_batch) if ctx.compile else score_batch
        losses, correct = score(ctx.layout.views(params), ctx.preset.model, batch)
    return torch.nan_to_num(losses, nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP), correct


def trusted_copy(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> torch.Tensor:
    """A copy ``[n, P]`` of some envs' parameters after ``trusted_steps`` fresh-AdamW steps on the trusted set.

    Learned label noise can fit the pool so well that the model itself reproduces the noisy answers; a
    copy pulled towards clean data does not (the "trusted data" idea of Hendrycks et al., 2018). The envs'
    own parameters and optimizer are not touched.
    """
    dyn = ctx.dynamics
    params = state.params[env_ids]
    opt = init_state(params, ctx.preset.model.n_groups, "adamw", dyn.trusted_lr)
    tables = state.fact_tables[env_ids]
    parts = [ctx.task_suite.batch(f, ctx.trusted_ids[f].expand(env_ids.numel(), -1), tables) for f in FAMILIES]
    for _ in range(dyn.trusted_steps):
        train_step(params, ctx.preset.model, opt, parts, compile=ctx.compile)
    return params


def filter_pool(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Drop the pool examples whose labels a trusted-data copy of the model confidently disagrees with.

    An example is dropped when the copy's greedy answer is not its label and the label's answer loss
    exceeds ``filter_min_loss`` (a hard clean example the model has not learned yet is wrong but seldom
    confidently so), highest loss first and at most ``filter_max_fraction`` of each family's pool. Every
    pool is judged afresh: a later filter, after retraining, takes back clean examples dropped before.
    """
    pool = ctx.dynamics.pool_size
    budget = int(ctx.dynamics.filter_max_fraction * pool)
    for _, ids in chunks(ctx, env_ids, ctx.dynamics.trusted_size):
        judge = trusted_copy(ctx, state, ids)
        for family in FAMILIES:
            losses, correct = pool_scores(ctx, state, ids, family, judge)
            suspect = ~correct & (losses > ctx.dynamics.filter_min_loss)
            suspicion = torch.where(suspect, losses, torch.full_like(losses, -1.0))
            ranked = suspicion.argsort(dim=1, descending=True, stable=True)
            within_budget = torch.zeros_like(correct).scatter(
                1, ranked, (torch.arange(pool, device=ctx.device) < budget).expand_as(ranked))
            state.keep[family][ids] = ~(suspect & within_budget)


def restore_pool(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Undo every filter: the whole pool is used again."""
    for family in FAMILIES:
        state.keep[family][env_ids] = True


def reinit_block(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, block: int) -> None:
    """Fresh GPT-2 initialisation of one transformer block, drawn from each env's own stream."""
    if env_ids.numel() == 0:
        return
    columns = ctx.layout.group_span(1 + block)
    constant, std = ctx.layout.init_columns(ctx.preset.model, ctx.device)
    draw = state.rng.normal(env_ids, (columns.stop - columns.start,))
    state.params[env_ids, columns] = constant[columns] + std[columns] * draw
    reset_optimizer(ctx, state, env_ids, group=1 + block)


def prune(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Zero the smallest-magnitude ``prune_fraction`` of the remaining weights of every block matrix."""
    if env_ids.numel() == 0:
        return
    layout = ctx.layout
    flat = state.params[env_ids]
    for name in layout.names:
        if not is_block_matrix(name):
            continue
        w = flat[:, layout.span(name)]
        zero_frac = (w == 0).float().mean(1)
        target = zero_frac + ctx.dynamics.prune_fraction * (1 - zero_frac)
        k = (target * w.shape[1]).long().clamp(1, w.shape[1])
        threshold = w.abs().sort(1).values.gather(1, (k - 1)[:, None])
        w.masked_fill_(w.abs() <= threshold, 0.0)
    state.params[env_ids] = flat


def rollback(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Return to the best snapshot of the episode and clear the optimizer moments."""
    state.params[env_ids] = state.snapshot[env_ids]
    reset_optimizer(ctx, state, env_ids)


@torch.no_grad()
def validation_accuracy(ctx: RepairContext, params: torch.Tensor, fact_tables: torch.Tensor) -> torch.Tensor:
    """Exact match ``[n, F]`` on the fixed validation examples of flat models ``params [n, P]`` (e.g. the zoo's)."""
    views = ctx.layout.views(params)
    out = []
    for family in FAMILIES:
        batch = ctx.task_suite.batch(family, ctx.eval_ids[family].expand(fact_tables.shape[0], -1), fact_tables)
        out.append(score_batch(views, ctx.preset.model, batch)[1].float().mean(-1))
    return torch.stack(out, 1)


def measure(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> Measurement:
    """Validation scores, pool loss statistics and per-group gradient norms of some envs.

    One no-grad forward per family scores its ``eval_size`` validation and ``spread_size`` pool examples
    together (cut to the family's length); the gradient norms come from one backward on the first
    ``grad_size`` validation examples of every family.
    """
    per_env = ctx.dynamics.eval_size + ctx.dynamics.spread_size
    parts = [_measure(ctx, state, ids) for _, ids in chunks(ctx, env_ids, per_env)]
    if len(parts) <= 1:
        return parts[0] if parts else _measure(ctx, state, env_ids)
    return Measurement(**{f.name: torch.cat([getattr(p, f.name) for p in parts])
                          for f in dataclasses.fields(Measurement)})


def _measure(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> Measurement:
    cfg, dyn, layout = ctx.preset.model, ctx.dynamics, ctx.layout
    n = env_ids.numel()
    params = state.params[env_ids]
    views = layout.views(params)
    tables = state.fact_tables[env_ids]
    spread = slice(0, dyn.spread_size)
    score = compiled(score_batch) if ctx.compile else score_batch
    val_loss, val_correct, pool_loss, grad_parts = [], [], [], []
    for family in FAMILIES:
        eval_ids = ctx.eval_ids[family].expand(n, -1)
        pool_ids = state.pool_ids[family][env_ids][:, spread]
        clean = torch.zeros_like(eval_ids, dtype=torch.bool)
        corrupt = torch.cat([clean, state.corrupt[family][env_ids][:, spread]], 1)
        batch = ctx.task_suite.batch(family, torch.cat([eval_ids, pool_ids], 1), tables, corrupt)
        with torch.no_grad():
            losses, correct = score(views, cfg, batch)
        val_loss.append(losses[:, :dyn.eval_size])
        val_correct.append(correct[:, :dyn.eval_size])
        pool_loss.append(torch.nan_to_num(losses[:, dyn.eval_size:], nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP))
        grad_parts.append(ctx.task_suite.batch(family, eval_ids[:, :dyn.grad_size], tables))
    leaf = params.detach().requires_grad_()
    with torch.enable_grad():
        leaf_views = layout.views(leaf)
        grad_loss = torch.cat([score(leaf_views, cfg, part)[0] for part in grad_parts], 1)
        (grad,) = torch.autograd.grad(grad_loss.mean(1).sum(), leaf)
    spans = [layout.group_span(g) for g in range(layout.n_groups)]
    # float64 sums: a float32 sum's rounding depends on how many envs share the batch (vectorised reduction
    # order), and env i must see the same bits whether it runs alone or beside others
    grad_sq = torch.stack([grad[:, span].double().pow(2).sum(1) for span in spans], 1).float()  # [n, G]
    weight_sq = torch.stack([params[:, span].double().pow(2).sum(1) for span in spans], 1).float()
    matrix = layout.matrix_columns(ctx.device)
    sparsity = ((params == 0) & matrix).sum(1) / matrix.sum().clamp_min(1)
    example_loss = torch.stack(val_loss, 1)  # [n, F, E]
    correct = torch.stack(val_correct, 1)
    train_losses = torch.stack(pool_loss, 1)  # [n, F, spread]
    kept = torch.stack([state.keep[f][env_ids][:, spread] for f in FAMILIES], 1).float()
    n_kept = kept.sum(-1).clamp_min(1)
    crashed = ~torch.isfinite(params).all(1) | ~torch.isfinite(example_loss).all(-1).all(-1)
    val_accuracy = torch.where(crashed[:, None], 0.0, correct.float().mean(-1))
    return Measurement(
        val_accuracy=val_accuracy,
        val_loss=torch.nan_to_num(example_loss.mean(-1), nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP),
        train_loss=(train_losses * kept).sum(-1) / n_kept,
        loss_spread=((train_losses > dyn.surprise_loss).float() * kept).sum(-1) / n_kept,
        grad_norm=torch.nan_to_num(grad_sq.sqrt(), nan=1e6, posinf=1e6),
        weight_rms=torch.nan_to_num((weight_sq / layout.group_sizes(ctx.device)).sqrt(), nan=1e6, posinf=1e6),
        sparsity=sparsity,
        crashed=crashed,
    )

"""What LLMRepair-v1 measures for free after every step, and the test-split score it is judged on.

The free measurement is forward passes only (gradient statistics are a paid probe in v1):

* validation accuracy and loss per family on ``FREE_VAL_SIZE`` examples drawn afresh from the validation split
  for every measurement, from each env's own stream. A fixed sample would let an agent stop on a lucky
  draw of it; a fresh one is an unbiased, independent estimate each time (binomial sd about 0.03 at 0.97),
  and the reward telescopes to the test-split objective anyway (see the env), so luck never pays;
* training loss per family on the first ``spread_size`` kept pool examples (labels as given);
* the RMS of every group's weight matrices (LayerNorm gains and biases left out), sparsity, divergence.

The test score is exact match on the first ``TEST_SIZE`` examples of each family's test split (fixed, the
same for every env): measured at reset and when an episode ends, never shown to the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_repair_gym.lm.metrics import score_batch
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.lm.training import compiled
from llm_repair_gym.repair.dynamics import LOSS_CAP, RepairContext, chunks
from llm_repair_gym.repair.state import RepairState

TEST_SIZE = 200  # test examples per family in the objective (the fact family's test split holds 205)
FREE_VAL_SIZE = 32  # validation examples per family drawn afresh for every free measurement


@dataclass
class FreeMeasurement:
    """What v1 measures of some envs after an action (all ``[n, ...]``)."""

    val_accuracy: torch.Tensor  # [n, F]
    val_loss: torch.Tensor  # [n, F]
    train_loss: torch.Tensor  # [n, F]
    weight_rms: torch.Tensor  # [n, W]: RMS of the weight matrices of each group that has any
    sparsity: torch.Tensor  # [n]
    crashed: torch.Tensor  # [n] bool


def weight_groups(ctx: RepairContext) -> list[tuple[str, list[slice]]]:
    """``(group name, column spans)`` of the weight matrices of every group that has some: the embeddings
    (``wte``, ``wpe``) and each block's four matrices."""
    layout = ctx.layout
    groups = [("embeddings", [layout.span("wte"), layout.span("wpe")])]
    for block in range(ctx.preset.model.n_layer):
        groups.append((f"block{block}", [layout.span(n) for n in layout.names
                                         if n.startswith(f"h.{block}.") and n.endswith(".weight") and ".ln_" not in n]))
    return groups


def fresh_ids(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: str, split: str,
              size: int) -> torch.Tensor:
    """``[n, size]`` example ids drawn uniformly (with replacement) from ``split`` of ``family``, per env stream."""
    ids = ctx.task_suite.split_ids[family][split]
    return ids[state.rng.integers(env_ids, ids.numel(), (size,))]


@torch.no_grad()
def measure_free(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> FreeMeasurement:
    """The free measurement of ``env_ids`` (one no-grad forward per family and chunk; see the module)."""
    per_env = FREE_VAL_SIZE + ctx.dynamics.spread_size
    parts = [_measure(ctx, state, ids) for _, ids in chunks(ctx, env_ids, per_env)]
    if len(parts) == 1:
        return parts[0]
    return FreeMeasurement(*(torch.cat([getattr(p, name) for p in parts])
                             for name in FreeMeasurement.__dataclass_fields__))


def _measure(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> FreeMeasurement:
    cfg, dyn = ctx.preset.model, ctx.dynamics
    params = state.params[env_ids]
    views = ctx.layout.views(params)
    tables = state.fact_tables[env_ids]
    score = compiled(score_batch) if ctx.compile else score_batch
    spread = slice(0, dyn.spread_size)
    val_loss, val_acc, train_loss = [], [], []
    for family in FAMILIES:
        eval_ids = fresh_ids(ctx, state, env_ids, family, "val", FREE_VAL_SIZE)
        pool_ids = state.pool_ids[family][env_ids][:, spread]
        clean = torch.zeros_like(eval_ids, dtype=torch.bool)
        corrupt = torch.cat([clean, state.corrupt[family][env_ids][:, spread]], 1)
        losses, correct = score(views, cfg, ctx.task_suite.batch(family, torch.cat([eval_ids, pool_ids], 1), tables,
                                                                 corrupt))
        losses = torch.nan_to_num(losses, nan=LOSS_CAP, posinf=LOSS_CAP).clamp_max(LOSS_CAP)
        val_loss.append(losses[:, :FREE_VAL_SIZE].mean(1))
        val_acc.append(correct[:, :FREE_VAL_SIZE].float().mean(1))
        kept = state.keep[family][env_ids][:, spread].float()
        train_loss.append((losses[:, FREE_VAL_SIZE:] * kept).sum(1) / kept.sum(1).clamp_min(1))
    # float64 sums: env i must see the same bits whether it runs alone or beside others
    rms = torch.stack([torch.cat([params[:, s] for s in spans], 1).double().pow(2).mean(1).sqrt()
                       for _, spans in weight_groups(ctx)], 1).float()
    matrix = ctx.layout.matrix_columns(ctx.device)
    crashed = ~torch.isfinite(params).all(1)
    accuracy = torch.stack(val_acc, 1)
    return FreeMeasurement(
        val_accuracy=torch.where(crashed[:, None], 0.0, accuracy),
        val_loss=torch.stack(val_loss, 1), train_loss=torch.stack(train_loss, 1),
        weight_rms=torch.nan_to_num(rms, nan=1e6, posinf=1e6),
        sparsity=((params == 0) & matrix).sum(1) / matrix.sum().clamp_min(1),
        crashed=crashed,
    )


@torch.no_grad()
def test_accuracy(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> torch.Tensor:
    """Exact match ``[n, F]`` on the first ``TEST_SIZE`` test examples of each family (0 for a diverged model)."""
    out = []
    for _, ids in chunks(ctx, env_ids, TEST_SIZE):
        params = state.params[ids]
        views, tables = ctx.layout.views(params), state.fact_tables[ids]
        score = compiled(score_batch) if ctx.compile else score_batch
        per_family = []
        for family in FAMILIES:
            test_ids = ctx.task_suite.split_ids[family]["test"][:TEST_SIZE].expand(ids.numel(), -1)
            per_family.append(score(views, ctx.preset.model, ctx.task_suite.batch(family, test_ids, tables))[1]
                              .float().mean(1))
        accuracy = torch.stack(per_family, 1)
        out.append(torch.where(torch.isfinite(params).all(1)[:, None], accuracy, 0.0))
    return torch.cat(out) if out else torch.zeros(0, len(FAMILIES), device=ctx.device)

"""What goes wrong with a model: the fault table, how faults are sampled and how they are injected.

Each env of a batch draws its own fault from its own random stream at reset. ``target`` means a
transformer block (``weight_noise``), a task family (``label_noise``: the noisy family; ``forgetting``:
the only family the model was fine-tuned on, so the *other* families decay), or nothing (-1).
``severity`` is the noise scale, the corrupted fraction, the overwritten fraction, or the lr level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from llm_repair_gym.lm.model import is_block_matrix
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import (
    UNIFORM_MIX,
    RepairContext,
    lr_of_level,
    one_family_mix,
    train,
    validation_accuracy,
)
from llm_repair_gym.repair.state import RepairState

Injector = Callable[[RepairContext, RepairState, torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Fault:
    """One row of the fault table."""

    name: str
    what_happened: str
    good_repair: str
    target_kind: str  # "block", "family" or "none"
    severity_low: float
    severity_high: float
    integer_severity: bool
    inject: Injector
    inject_steps: int = 0  # fine-tuning steps the injection takes (batch of ``batch_size``; label_noise: at most)
    inject_lr: float = 0.0  # and their AdamW lr (bad_hparams: its own misconfigured lr)
    first_block_severity: tuple[float, float] | None = None  # block faults: block 0's range; deeper blocks
    # interpolate linearly to (severity_low, severity_high) at the last block (early blocks are more fragile)

    def severity_range(self, target: torch.Tensor, n_layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-env ``(low, high)`` severity bounds for targets ``[n]``."""
        low = torch.full(target.shape, self.severity_low, device=target.device)
        high = torch.full(target.shape, self.severity_high, device=target.device)
        if self.first_block_severity is None:
            return low, high
        depth = target.float() / max(n_layer - 1, 1)  # 0 at block 0, 1 at the last block
        first_low, first_high = self.first_block_severity
        return first_low + depth * (low - first_low), first_high + depth * (high - first_high)


def by_value(values: torch.Tensor, env_ids: torch.Tensor):
    """``(value, env_ids where values == value, positions)`` for each distinct value (reads them on the host:
    injections run when instances are built, never inside a step)."""
    for value in sorted(set(values.tolist())):
        positions = (values == value).nonzero()[:, 0]
        yield value, env_ids[positions], positions


def _fine_tune(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, fault: str, mix: tuple[float, ...],
               fact_tables: torch.Tensor | None = None) -> None:
    """The injection's fine-tuning run, with the fault row's steps and lr."""
    row = FAULTS[FAULT_NAMES.index(fault)]
    train(ctx, state, env_ids, mix, row.inject_steps, fact_tables=fact_tables, lr=row.inject_lr)


def _inject_none(ctx, state, env_ids, target, severity) -> None:
    """Nothing is wrong."""


def _inject_weight_noise(ctx, state, env_ids, target, severity) -> None:
    """Gaussian noise of ``severity`` x the matrix's RMS added to every weight matrix of block ``target``."""
    layout = ctx.layout
    for block, ids, positions in by_value(target, env_ids):
        sev = severity[positions]
        for name in layout.names:
            if name.startswith(f"h.{block}.") and is_block_matrix(name):
                span = layout.span(name)
                w = state.params[ids, span]
                rms = w.pow(2).mean(1, keepdim=True).sqrt()
                noise = state.rng.normal(ids, (w.shape[1],))
                state.params[ids, span] = w + sev[:, None] * rms * noise


LABEL_NOISE_ROUND = 20  # label_noise fine-tunes in rounds of this many steps...
LABEL_NOISE_DROP = 0.3  # ...until the noisy family lost this much validation accuracy (or the steps run out)
LABEL_NOISE_SHARE = 0.6  # of every batch, from the noisy family


def _family_accuracy(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: int) -> torch.Tensor:
    return validation_accuracy(ctx, state.params[env_ids], state.fact_tables[env_ids])[:, family]


def tune_until_drop(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: int, steps: int,
                    lr: float, drop: float = LABEL_NOISE_DROP) -> None:
    """Fine-tune on the pools, ``LABEL_NOISE_SHARE`` of each batch from ``family``, in rounds of
    ``LABEL_NOISE_ROUND`` steps at ``lr``, until ``family`` lost ``drop`` validation accuracy or ``steps`` are
    spent (each env stops on its own): a fault defined by the damage it does."""
    goal = _family_accuracy(ctx, state, env_ids, family) - drop
    for _ in range(0, steps, LABEL_NOISE_ROUND):
        train(ctx, state, env_ids, one_family_mix(family, LABEL_NOISE_SHARE), LABEL_NOISE_ROUND, lr=lr)
        active = _family_accuracy(ctx, state, env_ids, family) > goal
        if not active.any():
            break
        env_ids, goal = env_ids[active], goal[active]


def _inject_label_noise(ctx, state, env_ids, target, severity) -> None:
    """A ``severity`` fraction of family ``target``'s pool gets wrong answers; the model is fine-tuned on the
    pool, ``LABEL_NOISE_SHARE`` of each batch from the noisy family, in rounds of ``LABEL_NOISE_ROUND`` steps
    until the noisy family has lost ``LABEL_NOISE_DROP`` validation accuracy or the row's ``inject_steps`` are
    spent.

    How much a model absorbs from the same noise varies a lot between draws (a fixed run cost 0.05 to 0.85);
    a fault defined by its damage gives every episode something to repair.
    """
    row = FAULTS[FAULT_NAMES.index("label_noise")]
    for family, ids, positions in by_value(target, env_ids):
        flip = state.rng.uniform(ids, (ctx.dynamics.pool_size,)) < severity[positions, None]
        state.corrupt[FAMILIES[family]][ids] = flip
        tune_until_drop(ctx, state, ids, family, row.inject_steps, row.inject_lr)


def _inject_fact_overwrite(ctx, state, env_ids, target, severity) -> None:
    """A ``severity`` fraction of the facts is rewritten to wrong values and the model fine-tuned on them."""
    cfg = ctx.preset.tasks
    true = state.fact_tables[env_ids]
    overwrite = state.rng.uniform(env_ids, (cfg.fact_keys,)) < severity[:, None]
    shift = 1 + state.rng.integers(env_ids, cfg.fact_values - 1, (cfg.fact_keys,))
    wrong = torch.where(overwrite, (true + shift) % cfg.fact_values, true)
    _fine_tune(ctx, state, env_ids, "fact_overwrite", UNIFORM_MIX, wrong)


def _inject_forgetting(ctx, state, env_ids, target, severity) -> None:
    """Fine-tuned on family ``target`` alone; the other families decay."""
    for family, ids, _ in by_value(target, env_ids):
        _fine_tune(ctx, state, ids, "forgetting", one_family_mix(family))


def _inject_bad_hparams(ctx, state, env_ids, target, severity) -> None:
    """The lr is set ``severity`` half-decades too high; a short run on the way there (at the row's
    ``inject_lr``, already too high) did the damage."""
    _fine_tune(ctx, state, env_ids, "bad_hparams", UNIFORM_MIX)
    state.lr_level[env_ids] = severity.round().long()
    state.opt.lr[env_ids] = lr_of_level(ctx, state.lr_level[env_ids])


FAULTS: tuple[Fault, ...] = (
    Fault("none", "nothing is wrong", "stop at once; every action only costs", "none", 0, 0, False,
          _inject_none),
    Fault("weight_noise", "Gaussian noise (severity x RMS) added to one block's weight matrices",
          "find the block; re-initialize or retrain it", "block", 2.0, 3.0, False, _inject_weight_noise,
          first_block_severity=(1.15, 1.6)),
    Fault("label_noise", "fine-tuned on a pool in which a fraction (severity) of one family's answers were wrong, "
          f"until that family lost {LABEL_NOISE_DROP} accuracy",
          "filter the suspect examples, retrain at a gentler lr", "family", 0.3, 0.45, False, _inject_label_noise,
          inject_steps=200, inject_lr=1e-3),
    Fault("fact_overwrite", "a fraction (severity) of the facts was rewritten to wrong values and learned",
          "targeted retraining on facts without breaking the rest", "none", 0.45, 0.7, False,
          _inject_fact_overwrite, inject_steps=40, inject_lr=1e-3),
    Fault("forgetting", "fine-tuned on one family only (the target); the others decayed",
          "replay the forgotten families", "family", 0, 0, False, _inject_forgetting,
          inject_steps=30, inject_lr=2e-3),
    Fault("bad_hparams", "the learning rate is severity half-decades too high and already did damage",
          "lower the learning rate before training", "none", 2, 3, True, _inject_bad_hparams,
          inject_steps=2, inject_lr=3e-3),
)
FAULT_NAMES: tuple[str, ...] = tuple(f.name for f in FAULTS)


def fault_indices(names: list[str] | tuple[str, ...] | None) -> list[int]:
    """Indices of the named faults (all when ``None``); rejects unknown or repeated names."""
    if names is None:
        return list(range(len(FAULTS)))
    names = list(names)
    unknown = [n for n in names if n not in FAULT_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"faults must be distinct names from {FAULT_NAMES}, got {names}")
    return [FAULT_NAMES.index(n) for n in names]


def sample_and_inject(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, allowed: torch.Tensor,
                      kinds: torch.Tensor | None = None) -> None:
    """Draw a fault (type from ``allowed``, or exactly ``kinds``; target; severity) for each env from its own
    stream and inject it."""
    n = env_ids.numel()
    kind = allowed[state.rng.integers(env_ids, allowed.numel())]
    if kinds is not None:
        kind = kinds
    u_target, u_severity = state.rng.uniform(env_ids, (2,)).unbind(1)
    n_targets = {"block": ctx.preset.model.n_layer, "family": len(FAMILIES), "none": 1}
    target = torch.full((n,), -1, dtype=torch.long, device=ctx.device)
    severity = torch.zeros(n, device=ctx.device)
    for index, fault in enumerate(FAULTS):
        rows = kind == index
        if not rows.any():
            continue
        if fault.target_kind != "none":
            count = n_targets[fault.target_kind]
            target[rows] = (u_target[rows] * count).long().clamp_max(count - 1)
        low, high = fault.severity_range(target[rows], ctx.preset.model.n_layer)
        if fault.integer_severity:
            span = high - low + 1
            severity[rows] = low + torch.minimum((u_severity[rows] * span).floor(), span - 1)
        else:
            severity[rows] = low + u_severity[rows] * (high - low)
    state.fault_type[env_ids], state.fault_target[env_ids], state.fault_severity[env_ids] = kind, target, severity
    for index, fault in enumerate(FAULTS):
        rows = kind == index
        if rows.any():
            fault.inject(ctx, state, env_ids[rows], target[rows], severity[rows])


def target_names(n_layer: int) -> np.ndarray:
    """``[n_faults, max_targets + 1]`` object table: the name of fault ``k``'s target ``t`` at ``[k, t + 1]``
    (a block, a family, ``"fact"`` for ``fact_overwrite``, or None), for vectorised ``info["fault"]``."""
    width = max(n_layer, len(FAMILIES)) + 1
    table = np.full((len(FAULTS), width), None, dtype=object)
    for k, fault in enumerate(FAULTS):
        if fault.target_kind == "block":
            table[k, 1:n_layer + 1] = [f"block{b}" for b in range(n_layer)]
        elif fault.target_kind == "family":
            table[k, 1:len(FAMILIES) + 1] = FAMILIES
        elif fault.name == "fact_overwrite":
            table[k, :] = "fact"
    return table

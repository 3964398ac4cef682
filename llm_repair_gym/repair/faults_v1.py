"""LLMRepair-v1's faults: eleven training pathologies, one to three per episode, with shared cheap symptoms.

Each env carries a fault *set*: ``faults [N, K]`` (bool, one column per row of :data:`FAULTS_V1`) with a
target and a severity per column. Faults are injected in table order: data faults first (they fine-tune
the model), then the parameter faults, then the optimizer faults (whose few damaging steps act on what
the others left). Every row names its mechanism, its symptoms and a documented repair (action names,
``{block}``/``{family}`` filled from the target); :func:`documented_repair` joins the rows of a fault set
into one repair, which ``benchmarks/calibration_v1.py`` checks on every instance.

What the free observation cannot tell apart, by construction:

* four block faults (``weight_noise``, ``norm_gain``, ``dead_units``, ``attention_collapse``) keep every
  block matrix's RMS and break every family at once; their repairs differ (train, ``reset_norms``,
  ``reinit_block``);
* ``hidden_lr`` and ``adam_poison`` leave the configured lr normal and make every training step harmful
  until the right fix (``lr_down`` or ``reset_optimizer``);
* ``label_noise`` and ``data_shift`` both leave one family broken with a low training loss; filtering helps
  the first, fresh data the second;
* ``forgetting``, ``fact_overwrite`` and ``token_embed`` break one family with a high training loss.

Probes (:mod:`llm_repair_gym.repair.probes`) tell them apart, at a price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from llm_repair_gym.lm.model import is_block_matrix
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import UNIFORM_MIX, RepairContext, one_family_mix, train
from llm_repair_gym.repair.faults import LABEL_NOISE_DROP, by_value, tune_until_drop
from llm_repair_gym.repair.state import RepairState

InjectorV1 = Callable[[RepairContext, RepairState, torch.Tensor, torch.Tensor, torch.Tensor], None]

DIGIT0 = 10  # token id of digit 0 (``lm.tasks``)
POISON_STEP = 1000.0  # AdamW step count of a poisoned optimizer state (bias corrections near 1)
SHIFT_SHARD = 24  # distinct examples in a shifted family's pool
DROP = LABEL_NOISE_DROP  # fine-tuning injections stop once the family lost this much validation accuracy


@dataclass(frozen=True)
class FaultV1:
    """One row of v1's fault table."""

    name: str
    group: str  # "optimizer", "parameter" or "data": the order of a combined repair
    mechanism: str
    symptoms: str  # what the free observation shows
    repair: tuple[str, ...]  # action names; "{block}" / "{family}" are the target, "lr_down*" one per level
    target_kind: str  # "block", "family" or "none"
    severity_low: float
    severity_high: float
    integer_severity: bool
    inject: InjectorV1
    inject_steps: int = 0
    inject_lr: float = 0.0


def _block_matrices(ctx: RepairContext, block: int) -> list[str]:
    return [n for n in ctx.layout.names if n.startswith(f"h.{block}.") and is_block_matrix(n)]


def _keep_rms(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``new`` rescaled row-wise to ``old``'s RMS: the free ``log_weight_rms`` feature cannot see the change."""
    return new * (old.pow(2).mean(1, keepdim=True) / new.pow(2).mean(1, keepdim=True).clamp_min(1e-30)).sqrt()


def _tune_until_drop(ctx, state, env_ids, family: int, row: FaultV1) -> None:
    """The row's fine-tuning until ``family`` lost ``DROP`` (:func:`~llm_repair_gym.repair.faults.tune_until_drop`,
    as v0's label noise; ``DROP`` is read at the call, so a test may lower it)."""
    tune_until_drop(ctx, state, env_ids, family, row.inject_steps, row.inject_lr, DROP)


def _inject_label_noise(ctx, state, env_ids, target, severity) -> None:
    """A ``severity`` fraction of family ``target``'s pool answers are wrong, and learned."""
    for family, ids, positions in by_value(target, env_ids):
        f = FAMILIES[family]
        state.corrupt[f][ids] = state.rng.uniform(ids, (ctx.dynamics.pool_size,)) < severity[positions, None]
        state.noise_rate[ids, family] = severity[positions]
        _tune_until_drop(ctx, state, ids, family, _row("label_noise"))


def _inject_data_shift(ctx, state, env_ids, target, severity) -> None:
    """Family ``target``'s pool comes from a stuck shard of ``SHIFT_SHARD`` examples (correct answers), and the
    model over-fitted it: the family's training loss is low and its held-out accuracy fell."""
    for family, ids, _ in by_value(target, env_ids):
        f = FAMILIES[family]
        train_ids = ctx.task_suite.split_ids[f]["train"]
        shard = train_ids[state.rng.integers(ids, train_ids.numel(), (SHIFT_SHARD,))]
        pick = state.rng.integers(ids, SHIFT_SHARD, (ctx.dynamics.pool_size,))
        state.pool_ids[f][ids] = shard.gather(1, pick)
        state.corrupt[f][ids] = False
        _tune_until_drop(ctx, state, ids, family, _row("data_shift"))


def _inject_forgetting(ctx, state, env_ids, target, severity) -> None:
    """Fine-tuned on family ``target`` alone; the other families decayed."""
    row = _row("forgetting")
    for family, ids, _ in by_value(target, env_ids):
        train(ctx, state, ids, one_family_mix(family), row.inject_steps, lr=row.inject_lr)


def _inject_fact_overwrite(ctx, state, env_ids, target, severity) -> None:
    """A ``severity`` fraction of the facts was rewritten to wrong values and learned."""
    cfg, row = ctx.preset.tasks, _row("fact_overwrite")
    true = state.fact_tables[env_ids]
    overwrite = state.rng.uniform(env_ids, (cfg.fact_keys,)) < severity[:, None]
    shift = 1 + state.rng.integers(env_ids, cfg.fact_values - 1, (cfg.fact_keys,))
    wrong = torch.where(overwrite, (true + shift) % cfg.fact_values, true)
    train(ctx, state, env_ids, UNIFORM_MIX, row.inject_steps, fact_tables=wrong, lr=row.inject_lr)


def _inject_weight_noise(ctx, state, env_ids, target, severity) -> None:
    """Gaussian noise (``severity`` x RMS) on block ``target``'s matrices, rescaled to keep each matrix's RMS."""
    for block, ids, positions in by_value(target, env_ids):
        for name in _block_matrices(ctx, block):
            span = ctx.layout.span(name)
            w = state.params[ids, span]
            rms = w.pow(2).mean(1, keepdim=True).sqrt()
            noisy = w + severity[positions, None] * rms * state.rng.normal(ids, (w.shape[1],))
            state.params[ids, span] = _keep_rms(w, noisy)


def _inject_norm_gain(ctx, state, env_ids, target, severity) -> None:
    """Block ``target``'s LayerNorm gains multiplied by ``severity`` (activations explode; matrices unchanged)."""
    for block, ids, positions in by_value(target, env_ids):
        for name in (f"h.{block}.ln_1.weight", f"h.{block}.ln_2.weight"):
            span = ctx.layout.span(name)
            state.params[ids, span] = state.params[ids, span] * severity[positions, None]


DEAD_BIAS = -8.0  # a dead MLP unit's input bias: GELU and its gradient are ~0 for any input the block sees


def _inject_dead_units(ctx, state, env_ids, target, severity) -> None:
    """A ``severity`` fraction of block ``target``'s MLP units is dead (input bias ``DEAD_BIAS``): training
    cannot revive them, re-initialising the block can."""
    width = 4 * ctx.preset.model.n_embd
    for block, ids, positions in by_value(target, env_ids):
        span = ctx.layout.span(f"h.{block}.mlp.c_fc.bias")
        dead = state.rng.uniform(ids, (width,)) < severity[positions, None]
        state.params[ids, span] = torch.where(dead, DEAD_BIAS, state.params[ids, span])


def _inject_attention_collapse(ctx, state, env_ids, target, severity) -> None:
    """Block ``target``'s query and key weights scaled by ``severity`` (attention goes uniform), the whole
    ``c_attn`` matrix then rescaled to its old RMS (so the values grow)."""
    d = ctx.preset.model.n_embd
    for block, ids, positions in by_value(target, env_ids):
        span = ctx.layout.span(f"h.{block}.attn.c_attn.weight")
        w = state.params[ids, span].view(-1, d, 3 * d)
        scale = torch.ones(ids.numel(), 1, 3 * d, device=w.device)
        scale[:, :, :2 * d] = severity[positions, None, None]
        state.params[ids, span] = _keep_rms(w.reshape(ids.numel(), -1), (w * scale).reshape(ids.numel(), -1))
        bias = ctx.layout.span(f"h.{block}.attn.c_attn.bias")
        qk = slice(bias.start, bias.start + 2 * d)
        state.params[ids, qk] = state.params[ids, qk] * severity[positions, None]


TOKEN_EMBED_DIGITS = 3  # digit tokens whose embeddings a token_embed fault corrupts


def _inject_token_embed(ctx, state, env_ids, target, severity) -> None:
    """The embeddings of ``TOKEN_EMBED_DIGITS`` random digit tokens get noise (``severity`` x their RMS),
    rescaled to keep each row's RMS: sorting breaks on lists holding them."""
    d = ctx.preset.model.n_embd
    wte = ctx.layout.span("wte")
    rank = state.rng.uniform(env_ids, (10,)).argsort(1).argsort(1)  # a random permutation per env
    chosen = rank < TOKEN_EMBED_DIGITS  # [n, 10]
    rows = state.params[env_ids, wte].view(env_ids.numel(), -1, d)
    digits = rows[:, DIGIT0:DIGIT0 + 10]
    rms = digits.pow(2).mean(-1, keepdim=True).sqrt()
    noisy = digits + severity[:, None, None] * rms * state.rng.normal(env_ids, (10 * d,)).view_as(digits)
    noisy = _keep_rms(digits.reshape(-1, d), noisy.reshape(-1, d)).view_as(digits)
    rows[:, DIGIT0:DIGIT0 + 10] = torch.where(chosen[..., None], noisy, digits)
    state.params[env_ids, wte] = rows.reshape(env_ids.numel(), -1)


def _inject_hidden_lr(ctx, state, env_ids, target, severity) -> None:
    """The effective lr is ``10 ** (severity / 2)`` x the configured one (a loss-scale or schedule bug the lr
    setting does not show); a short run at it already did damage."""
    row = _row("hidden_lr")
    state.lr_scale[env_ids] = torch.pow(10.0, severity / 2)
    state.opt.lr[env_ids] = ctx.dynamics.base_lr * state.lr_scale[env_ids]
    train(ctx, state, env_ids, UNIFORM_MIX, row.inject_steps)


POISON_MOMENT = 1e-3  # RMS of a poisoned first moment


def poison_moments(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, severity: torch.Tensor) -> None:
    """AdamW moments poisoned: first moments ``POISON_MOMENT`` x standard normal, second moments so small that
    every AdamW step moves each weight about ``10 ** severity`` x lr in a random direction, step counts
    ``POISON_STEP``; the steps stay harmful until the moments are reset (or wash out over many steps)."""
    if env_ids.numel() == 0:
        return
    noise = state.rng.normal(env_ids, (ctx.layout.size,))
    state.opt.exp_avg[env_ids] = POISON_MOMENT * noise
    tiny = (POISON_MOMENT * torch.pow(10.0, -severity)).pow(2)
    state.opt.exp_avg_sq[env_ids] = tiny[:, None].expand(-1, noise.shape[1])
    state.opt.step[env_ids] = POISON_STEP


def _inject_adam_poison(ctx, state, env_ids, target, severity) -> None:
    """Poisoned AdamW moments (:func:`poison_moments`) at a normal configured lr; two steps already did damage.
    The poison is drawn again when an instance is loaded, so it survives into the episode."""
    row = _row("adam_poison")
    poison_moments(ctx, state, env_ids, severity)
    train(ctx, state, env_ids, UNIFORM_MIX, row.inject_steps)


FAULTS_V1: tuple[FaultV1, ...] = (
    FaultV1("label_noise", "data", "a fraction (severity) of one family's pool answers are wrong and learned",
            "one family broken, its training loss low", ("filter_noisy", "lr_down", "train_all", "train_all",
                                                         "train_all"),
            "family", 0.3, 0.45, False, _inject_label_noise, inject_steps=200, inject_lr=1e-3),
    FaultV1("data_shift", "data", f"one family's pool is a stuck shard of {SHIFT_SHARD} examples, over-fitted",
            "one family broken, its training loss low", ("refresh_data", "lr_down", "train_all", "train_all",
                                                         "train_all"),
            "family", 0, 0, False, _inject_data_shift, inject_steps=400, inject_lr=2e-3),
    FaultV1("forgetting", "data", "fine-tuned on one family only (the target); the others decayed",
            "two families broken, high training loss", ("train_all", "train_all", "train_all", "train_all"),
            "family", 0, 0, False, _inject_forgetting, inject_steps=30, inject_lr=2e-3),
    FaultV1("fact_overwrite", "data", "a fraction (severity) of the facts rewritten to wrong values and learned",
            "fact broken, high training loss", ("lr_down", "train_fact", "train_fact", "train_fact"),
            "none", 0.45, 0.7, False, _inject_fact_overwrite, inject_steps=40, inject_lr=1e-3),
    FaultV1("weight_noise", "parameter", "noise (severity x RMS) in one block's matrices, RMS kept",
            "every family broken, weights look normal", ("train_all", "train_all", "train_all", "train_all"),
            "block", 1.0, 2.0, False, _inject_weight_noise),
    FaultV1("norm_gain", "parameter", "one block's LayerNorm gains multiplied by severity",
            "every family broken, weights look normal", ("reset_norms", "train_all"),
            "block", 4.0, 8.0, False, _inject_norm_gain),
    FaultV1("dead_units", "parameter", "a fraction (severity) of one block's MLP units dead (large negative bias)",
            "every family broken, weights look normal", ("train_all",) * 6,
            "block", 0.9, 1.0, False, _inject_dead_units),
    FaultV1("attention_collapse", "parameter", "one block's query/key weights scaled by severity, RMS kept",
            "every family broken, weights look normal", ("train_all",) * 6,
            "block", 0.02, 0.1, False, _inject_attention_collapse),
    FaultV1("token_embed", "parameter", f"noise (severity x RMS) in {TOKEN_EMBED_DIGITS} digit embeddings, RMS kept",
            "logic broken, high training loss", ("train_all",) * 6,
            "none", 1.2, 2.0, False, _inject_token_embed),
    FaultV1("hidden_lr", "optimizer", "the effective lr is 10^(severity/2) x the configured (normal-looking) one",
            "every family broken, lr looks normal; training makes it worse", ("lr_down*", *("train_all",) * 4),
            "none", 1, 2, True, _inject_hidden_lr, inject_steps=1),
    FaultV1("adam_poison", "optimizer", "AdamW moments poisoned: each step moves every weight ~10^severity x lr",
            "every family broken, lr looks normal; training makes it worse", ("reset_optimizer", *("train_all",) * 4),
            "none", 1.25, 1.75, False, _inject_adam_poison, inject_steps=3),
)
FAULT_NAMES_V1: tuple[str, ...] = tuple(f.name for f in FAULTS_V1)
GROUP_ORDER = ("optimizer", "parameter", "data")

HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("label_noise", "hidden_lr"), ("data_shift", "norm_gain"), ("forgetting", "adam_poison"),
    ("fact_overwrite", "dead_units"), ("weight_noise", "token_embed"), ("attention_collapse", "label_noise"),
)
"""Fault pairs that no train-split instance holds: the test split's held-out combinations."""

COUNT_WEIGHTS = (0.06, 0.34, 0.35, 0.25)  # probability of 0, 1, 2 or 3 faults in an instance


def _row(name: str) -> FaultV1:
    return FAULTS_V1[FAULT_NAMES_V1.index(name)]


def fault_mask(names: list[str] | tuple[str, ...] | None) -> list[int]:
    """Indices of the named v1 faults (all when ``None``); rejects unknown or repeated names."""
    if names is None:
        return list(range(len(FAULTS_V1)))
    names = list(names)
    unknown = [n for n in names if n not in FAULT_NAMES_V1]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"faults must be distinct names from {FAULT_NAMES_V1}, got {names}")
    return [FAULT_NAMES_V1.index(n) for n in names]


def holds_held_out_pair(faults: torch.Tensor) -> torch.Tensor:
    """``[n]`` bool: the fault sets ``faults [n, K]`` that contain a :data:`HELD_OUT_PAIRS` pair."""
    out = torch.zeros(faults.shape[0], dtype=torch.bool, device=faults.device)
    for a, b in HELD_OUT_PAIRS:
        out |= faults[:, FAULT_NAMES_V1.index(a)] & faults[:, FAULT_NAMES_V1.index(b)]
    return out


def draw_fault_sets(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor,
                    sets: torch.Tensor | None = None) -> None:
    """Draw each env's fault set (``COUNT_WEIGHTS`` faults, types uniform without replacement; or exactly
    ``sets [n, K]`` where given), targets and severities from its own stream into ``state``."""
    n, k = env_ids.numel(), len(FAULTS_V1)
    u_count, u_types = state.rng.uniform(env_ids, (1,))[:, 0], state.rng.uniform(env_ids, (k,))
    u_target, u_severity = state.rng.uniform(env_ids, (k,)), state.rng.uniform(env_ids, (k,))
    cumulative = torch.tensor(COUNT_WEIGHTS, device=ctx.device).cumsum(0)
    count = torch.searchsorted(cumulative, u_count[:, None], right=True)[:, 0].clamp_max(len(COUNT_WEIGHTS) - 1)
    rank = u_types.argsort(1).argsort(1)
    faults = rank < count[:, None] if sets is None else sets
    n_targets = {"block": ctx.preset.model.n_layer, "family": len(FAMILIES), "none": 1}
    target = torch.full((n, k), -1, dtype=torch.long, device=ctx.device)
    severity = torch.zeros(n, k, device=ctx.device)
    for j, row in enumerate(FAULTS_V1):
        if row.target_kind != "none":
            many = n_targets[row.target_kind]
            target[:, j] = (u_target[:, j] * many).long().clamp_max(many - 1)
        if row.integer_severity:
            span = row.severity_high - row.severity_low + 1
            severity[:, j] = row.severity_low + torch.clamp((u_severity[:, j] * span).floor(), max=span - 1)
        else:
            severity[:, j] = row.severity_low + u_severity[:, j] * (row.severity_high - row.severity_low)
    state.faults[env_ids] = faults
    state.fault_targets[env_ids] = torch.where(faults, target, -1)
    state.fault_severities[env_ids] = torch.where(faults, severity, 0.0)


def inject_fault_sets(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Inject every env's drawn faults, row by row in table order (host read of the sets: bank builds only)."""
    faults = state.faults[env_ids]
    for j, row in enumerate(FAULTS_V1):
        rows = faults[:, j]
        if rows.any():
            ids = env_ids[rows]
            row.inject(ctx, state, ids, state.fault_targets[ids, j], state.fault_severities[ids, j])


def documented_repair(faults: list[bool], targets: list[int], severities: list[float]) -> list[str]:
    """The documented repair of one fault set: the rows' fixes (every action but training and ``lr_down``), the
    optimizer faults' first, then the parameter and data faults'; ``lr_down`` once per hidden half-decade
    (``hidden_lr``) and once more when a row asks for a gentler lr; then the training actions, each as many
    times as the row asking most for it; then ``stop``. A healthy model: ``stop`` at once."""
    fixes: dict[str, list[str]] = {g: [] for g in GROUP_ORDER}
    training: dict[str, int] = {}
    lr_downs, gentle = 0, False
    for j, row in enumerate(FAULTS_V1):
        if not faults[j]:
            continue
        asked: dict[str, int] = {}
        for action in row.repair:
            name = action.format(block=targets[j], family=FAMILIES[targets[j]] if row.target_kind == "family" else "")
            if action == "lr_down*":
                lr_downs += int(round(severities[j]))
            elif action == "lr_down":
                gentle = True
            elif name.startswith("train_"):
                asked[name] = asked.get(name, 0) + 1
            elif name not in fixes[row.group]:
                fixes[row.group].append(name)
        for name, times in asked.items():
            training[name] = max(training.get(name, 0), times)
    ordered = sorted(training, key=lambda a: (a != "train_all", a))
    return [*fixes["optimizer"], *["lr_down"] * (lr_downs + gentle), *fixes["parameter"], *fixes["data"],
            *[a for a in ordered for _ in range(training[a])], "stop"]

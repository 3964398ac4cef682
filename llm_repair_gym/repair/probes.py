"""LLMRepair-v1's paid diagnosis: probe actions that measure what the free observation lacks.

Each probe is a row: its result features (with bounds), its FLOP cost (counted like the actions': a
forward pass costs ``forward_flops_per_token`` per token, a training step three times that) and the
function that measures it. A probe changes nothing but its own slots of the observation: the values,
``measured/<probe>`` (1 once it ran this episode) and ``age/<probe>`` (steps since it ran, over the step
limit; 1 when it has not run). Results go stale as the model changes; the age says how stale.

=====================  =============================================================  ======================
probe                  measures                                                      tells apart
=====================  =============================================================  ======================
``probe_activations``  per block: attention-input scale, dead MLP units, attention     norm_gain, dead_units,
                       entropy (one forward on ``PROBE_SIZE`` examples per family)     attention_collapse
``probe_gradients``    per group: log10 gradient norm (forward and backward)          weight_noise
``probe_optimizer``    a trial optimizer step on a scratch copy: update size per       hidden_lr, adam_poison
                       group over the configured lr, AdamW moment ratio, loss change
``probe_tokens``       per-token error analysis: worst digit, digit spread, facts      token_embed,
                       answered wrong with confidence                                 fact_overwrite
``probe_data``         a trusted-data copy audits each pool: suspect-label fraction,  label_noise, data_shift
                       distinct-example fraction
``probe_heldout``      accuracy per family on ``HELDOUT_SIZE`` fresh validation        the true accuracy
                       examples
=====================  =============================================================  ======================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from llm_repair_gym.lm import optim
from llm_repair_gym.lm.metrics import score_batch, score_logits
from llm_repair_gym.lm.model import forward
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.lm.training import batch_loss
from llm_repair_gym.repair.dynamics import DynamicsConfig, RepairContext, pool_scores, trusted_copy
from llm_repair_gym.repair.faults_v1 import DIGIT0
from llm_repair_gym.repair.features import Feature
from llm_repair_gym.repair.measure_v1 import fresh_ids
from llm_repair_gym.repair.state import RepairState

PROBE_SIZE = 16  # validation examples per family a model probe runs on
HELDOUT_SIZE = 256  # fresh validation examples per family of probe_heldout
DEAD_LEVEL = 1e-3  # an MLP unit whose |GELU output| stays below this on every probed token counts as dead

Measure = Callable[[RepairContext, RepairState, torch.Tensor], torch.Tensor]
Cost = Callable[[Preset, DynamicsConfig, float], float]  # (preset, dynamics, forward FLOPs per token) -> FLOPs


@dataclass(frozen=True)
class Probe:
    """One row of the probe table: ``measure(ctx, state, env_ids)`` returns ``[n, len(features)]``."""

    name: str
    description: str
    features: tuple[Feature, ...]
    cost: Cost
    measure: Measure


def _tokens(preset: Preset, per_family: int) -> int:
    return sum(per_family * length for length in preset.tasks.family_lengths.values())


def _probe_parts(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, size: int = PROBE_SIZE):
    tables = state.fact_tables[env_ids]
    return [ctx.task_suite.batch(f, fresh_ids(ctx, state, env_ids, f, "val", size), tables) for f in FAMILIES]


@torch.no_grad()
def _activations(ctx, state, env_ids) -> torch.Tensor:
    cfg = ctx.preset.model
    views = ctx.layout.views(state.params[env_ids])
    scale, dead, entropy = [], [], []
    per_part = []
    for part in _probe_parts(ctx, state, env_ids):
        taps: dict[str, torch.Tensor] = {}
        forward(views, cfg, part.inputs, taps=taps)
        per_part.append(taps)
    n = env_ids.numel()
    for block in range(cfg.n_layer):
        scale.append(torch.stack([t[f"{block}.ln_1"].pow(2).mean((1, 2)).sqrt() for t in per_part]).mean(0))
        peak = torch.stack([t[f"{block}.mlp"].abs().amax(1) for t in per_part]).amax(0)  # [n, 4D]
        dead.append((peak < DEAD_LEVEL).float().mean(1))
        ent = []
        for t in per_part:
            q, k = t[f"{block}.q"], t[f"{block}.k"]  # [n*B, H, T, hd]
            length = q.shape[2]
            logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
            p = logits.masked_fill(~causal, float("-inf")).softmax(-1)
            h = -(p * p.clamp_min(1e-12).log()).sum(-1)[..., 1:]  # positions with a choice
            norm = torch.arange(2, length + 1, device=q.device).float().log()
            ent.append((h / norm).reshape(n, -1).mean(1))
        entropy.append(torch.stack(ent).mean(0))
    return torch.stack([*[torch.log10(s + 1e-8) for s in scale], *dead, *entropy], 1)


def _gradient(ctx, params: torch.Tensor, parts) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient ``[n, P]`` of the mean answer loss on ``parts`` at ``params``, and the loss ``[n]``."""
    leaf = params.detach().requires_grad_()
    with torch.enable_grad():
        loss = batch_loss(ctx.layout.views(leaf), ctx.preset.model, parts)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return grad, loss.detach()


def _gradients(ctx, state, env_ids) -> torch.Tensor:
    grad, _ = _gradient(ctx, state.params[env_ids], _probe_parts(ctx, state, env_ids))
    spans = [ctx.layout.group_span(g) for g in range(ctx.layout.n_groups)]
    norms = torch.stack([grad[:, s].double().pow(2).sum(1).sqrt() for s in spans], 1).float()
    return torch.log10(torch.nan_to_num(norms, nan=1e6, posinf=1e6) + 1e-8)


def _optimizer(ctx, state, env_ids) -> torch.Tensor:
    """A trial step of the env's own optimizer (its moments and effective lr) on a scratch copy."""
    layout = ctx.layout
    params = state.params[env_ids].clone()
    opt = state.opt.take(env_ids)
    moment = opt.exp_avg.double().pow(2).mean(1).sqrt()
    second = opt.exp_avg_sq.double().mean(1).sqrt()
    ratio = torch.where(moment > 0, torch.log10(moment / (second + 1e-12) + 1e-12), 0.0).float()
    parts = _probe_parts(ctx, state, env_ids)
    grad, before = _gradient(ctx, params, parts)
    old = params.clone()
    optim.step(params, grad, opt, layout.group_index(ctx.device))
    configured = state.opt.lr[env_ids] / state.lr_scale[env_ids]
    update = params - old
    sizes = torch.stack([update[:, layout.group_span(g)].double().pow(2).mean(1).sqrt()
                         for g in range(layout.n_groups)], 1).float()
    with torch.no_grad():
        after = batch_loss(layout.views(params), ctx.preset.model, parts)
    change = torch.nan_to_num(after - before, nan=20.0, posinf=20.0)
    return torch.cat([torch.log10(sizes / configured[:, None] + 1e-8), ratio[:, None], change[:, None]], 1)


@torch.no_grad()
def _tokens_probe(ctx, state, env_ids) -> torch.Tensor:
    cfg = ctx.preset.model
    views = ctx.layout.views(state.params[env_ids])
    tables = state.fact_tables[env_ids]
    logic = ctx.task_suite.batch("logic", fresh_ids(ctx, state, env_ids, "logic", "val", 4 * PROBE_SIZE), tables)
    predictions = forward(views, cfg, logic.inputs).argmax(-1)
    digit = logic.targets - DIGIT0
    is_digit = logic.answer_mask & (digit >= 0) & (digit < 10)
    right = (predictions == logic.targets) & is_digit
    onehot = torch.nn.functional.one_hot(digit.clamp(0, 9), 10) * is_digit[..., None]  # [n, B, T, 10]
    seen = onehot.sum((1, 2)).float()
    hits = (onehot * right[..., None]).sum((1, 2)).float()
    per_digit = torch.where(seen > 0, hits / seen.clamp_min(1), 1.0)
    fact = ctx.task_suite.batch("fact", fresh_ids(ctx, state, env_ids, "fact", "val", 4 * PROBE_SIZE), tables)
    logits = forward(views, cfg, fact.inputs)
    _, correct, _ = score_logits(logits, fact)
    pos = ctx.task_suite.fact_answer_pos
    confidence = logits[:, :, pos].softmax(-1).amax(-1)
    confident_wrong = (~correct & (confidence > 0.5)).float().mean(1)
    return torch.stack([per_digit.amin(1), per_digit.amax(1) - per_digit.amin(1), confident_wrong], 1)


def _data(ctx, state, env_ids) -> torch.Tensor:
    judge = trusted_copy(ctx, state, env_ids)
    suspect, distinct = [], []
    for family in FAMILIES:
        losses, correct = pool_scores(ctx, state, env_ids, family, judge)
        keep = state.keep[family][env_ids]
        flagged = (~correct & (losses > ctx.dynamics.filter_min_loss) & keep).float().sum(1)
        suspect.append(flagged / keep.float().sum(1).clamp_min(1))
        ids = state.pool_ids[family][env_ids].sort(1).values
        distinct.append(1 + (ids[:, 1:] != ids[:, :-1]).float().sum(1))
    pool = ctx.dynamics.pool_size
    return torch.stack([*suspect, *[d / pool for d in distinct]], 1)


@torch.no_grad()
def _heldout(ctx, state, env_ids) -> torch.Tensor:
    views = ctx.layout.views(state.params[env_ids])
    tables = state.fact_tables[env_ids]
    out = []
    for family in FAMILIES:
        batch = ctx.task_suite.batch(family, fresh_ids(ctx, state, env_ids, family, "val", HELDOUT_SIZE), tables)
        out.append(score_batch(views, ctx.preset.model, batch)[1].float().mean(1))
    return torch.stack(out, 1)


def build_probes(preset: Preset, group_names: list[str]) -> tuple[Probe, ...]:
    """The probe table of a preset."""
    blocks = [f"block{b}" for b in range(preset.model.n_layer)]
    dyn_pool = lambda dyn: sum(dyn.pool_size * n for n in preset.tasks.family_lengths.values())  # noqa: E731
    return (
        Probe("probe_activations", "one forward with the activations recorded",
              (*[Feature(f"act_scale/{b}", -3, 3, f"{b}: log10 RMS of the attention input (LayerNorm output)")
                 for b in blocks],
               *[Feature(f"dead_units/{b}", 0, 1, f"{b}: fraction of MLP units silent on every probed token")
                 for b in blocks],
               *[Feature(f"attn_entropy/{b}", 0, 1, f"{b}: attention entropy over the causal window, 1 = uniform")
                 for b in blocks]),
              lambda p, d, fwd: _tokens(p, PROBE_SIZE) * fwd, _activations),
        Probe("probe_gradients", "gradient norms of the loss on the probe examples",
              tuple(Feature(f"grad_norm/{g}", -8, 6, f"{g}: log10 gradient norm") for g in group_names),
              lambda p, d, fwd: 3 * _tokens(p, PROBE_SIZE) * fwd, _gradients),
        Probe("probe_optimizer", "a trial step of the env's optimizer on a scratch copy",
              (*[Feature(f"trial_update/{g}", -4, 8, f"{g}: log10 (update RMS / configured lr) of the trial step")
                 for g in group_names],
               Feature("moment_ratio", -12, 12, "log10 RMS(first moment) / RMS(second moment)^(1/2); 0 when fresh"),
               Feature("trial_loss_change", -20, 20, "probe loss after the trial step minus before")),
              lambda p, d, fwd: (3 + 1) * _tokens(p, PROBE_SIZE) * fwd, _optimizer),
        Probe("probe_tokens", "per-token error analysis of logic and fact answers",
              (Feature("digit_worst_acc", 0, 1, "logic: accuracy on answer tokens of the worst digit"),
               Feature("digit_spread", 0, 1, "logic: best minus worst digit accuracy"),
               Feature("fact_confident_wrong", 0, 1, "fact: share of answers wrong with probability > 0.5")),
              lambda p, d, fwd: 4 * PROBE_SIZE * (p.tasks.family_lengths["logic"]
                                                  + p.tasks.family_lengths["fact"]) * fwd, _tokens_probe),
        Probe("probe_data", "a trusted-data copy of the model audits every pool",
              (*[Feature(f"suspect_labels/{f}", 0, 1, f"{f}: share of kept pool answers the audit confidently rejects")
                 for f in FAMILIES],
               *[Feature(f"distinct_pool/{f}", 0, 1, f"{f}: distinct examples in the pool / pool size")
                 for f in FAMILIES]),
              lambda p, d, fwd: (3 * d.trusted_steps * _tokens(p, d.trusted_size) + dyn_pool(d)) * fwd, _data),
        Probe("probe_heldout", f"accuracy on {HELDOUT_SIZE} fresh validation examples per family",
              tuple(Feature(f"heldout_acc/{f}", 0, 1, f"{f}: accuracy on the large held-out sample") for f in FAMILIES),
              lambda p, d, fwd: _tokens(p, HELDOUT_SIZE) * fwd, _heldout),
    )


def probe_effect(probe: Probe, start: int, index: int):
    """The effect of ``probe``'s action: measure, write its slots ``[start, start + width)`` and its step."""
    width = len(probe.features)

    def effect(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
        values = torch.stack([torch.nan_to_num(column, nan=f.high, posinf=f.high, neginf=f.low).clamp(f.low, f.high)
                              for column, f in zip(probe.measure(ctx, state, env_ids).unbind(1), probe.features)], 1)
        state.probe_values[env_ids, start:start + width] = values
        state.probe_step[env_ids, index] = state.steps[env_ids] + 1  # the step this action completes: age 0 now

    return effect

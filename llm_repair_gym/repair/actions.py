"""The action table: every action's name, category, effect and FLOP cost.

FLOP costs follow Kaplan et al. (2020): a forward pass costs
``forward_flops_per_token = 2 * n_params + 2 * n_layer * n_ctx * n_embd`` per token and a training step
three times that. Batches are cut to each family's length ``T_f`` (``TaskConfig.family_lengths``), so an
example of family ``f`` costs ``T_f`` tokens; ``B_f`` is the number of a batch's examples from family ``f``
(``dynamics.family_counts``); the other sizes are in ``DynamicsConfig``.

=====================  ===========================================================================
action kind            FLOPs
=====================  ===========================================================================
train (all / family)   ``train_steps * sum_f B_f * T_f * 3 * forward_flops_per_token``
filter_noisy           ``sum_f (trusted_steps * trusted_size * 3 + pool_size) * T_f * forward_flops_per_token``
                       (adapts a copy on the trusted set, then judges the pool with it)
reinit_block           ``4 * params of the block`` (draw and scale)
rollback               ``params``  (one copy)
prune                  ``20 * block weights`` (sort and threshold)
lr_up, lr_down,        0 (a setting changes)
switch_optimizer,
restore_data, stop
=====================  ===========================================================================

The reward's compute term divides by ``flops_ref``, the cost of one ``train_all``.

Each row carries its effect, as each fault row carries its ``inject``: ``action.effect(ctx, state, env_ids)``
applies the action to all the envs ``env_ids`` that chose it in one batched call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from llm_repair_gym.lm.model import is_block_matrix, param_shapes
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import (
    UNIFORM_MIX,
    DynamicsConfig,
    RepairContext,
    family_counts,
    filter_pool,
    lr_of_level,
    one_family_mix,
    prune,
    reinit_block,
    reset_optimizer,
    restore_pool,
    rollback,
    train,
)
from llm_repair_gym.repair.state import RepairState

CATEGORIES = ("data", "parameter", "algorithm", "control")

Effect = Callable[[RepairContext, RepairState, torch.Tensor], None]
"""What an action does: ``effect(ctx, state, env_ids)`` changes only the entries of ``state`` of the envs
``env_ids [n]`` that chose the action, in one batched call (no loop over envs, no host synchronisation). A row
with a family, block or sign has it bound into its effect (``functools.partial``)."""


@dataclass(frozen=True)
class Action:
    """One row of the action table: ``effect`` applies it (see :data:`Effect`); ``kind`` names the effect (the
    FLOPs table above) and ``flops`` is its cost per env. Rows compare by their table values, not by effect."""

    name: str
    category: str
    kind: str
    flops: float
    description: str
    effect: Effect = field(compare=False)


def train_on_pool(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, family: int) -> None:
    """``train_steps`` steps on the pool: every family mixed equally (``family`` -1) or one family only."""
    mix = UNIFORM_MIX if family < 0 else one_family_mix(family)
    train(ctx, state, env_ids, mix, ctx.dynamics.train_steps)


def change_lr(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, direction: int) -> None:
    """Move the lr level by ``direction`` (+1 or -1), within the dynamics' levels."""
    dyn = ctx.dynamics
    state.lr_level[env_ids] = (state.lr_level[env_ids] + direction).clamp(dyn.min_lr_level, dyn.max_lr_level)
    state.opt.lr[env_ids] = lr_of_level(ctx, state.lr_level[env_ids])


def switch_optimizer(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """AdamW <-> SGD; the new optimizer starts fresh (the two share their moment buffer)."""
    state.opt.optimizer[env_ids] = 1 - state.opt.optimizer[env_ids]
    reset_optimizer(ctx, state, env_ids)


def stop(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Nothing changes: the env ends the episode."""


def forward_flops_per_token(preset: Preset) -> float:
    """FLOPs of one forward pass per token of the preset's model (Kaplan et al., see the module docstring)."""
    cfg = preset.model
    n_params = sum(_numel(s) for s in param_shapes(cfg).values())
    return 2.0 * n_params + 2.0 * cfg.n_layer * cfg.n_ctx * cfg.n_embd


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def build_actions(preset: Preset, dynamics: DynamicsConfig) -> tuple[Action, ...]:
    """The action table of a preset (one ``reinit_block`` per transformer block)."""
    cfg, lengths = preset.model, preset.tasks.family_lengths
    fwd = forward_flops_per_token(preset)
    shapes = param_shapes(cfg)
    n_params = sum(_numel(s) for s in shapes.values())
    block_params = sum(_numel(s) for n, s in shapes.items() if n.startswith("h.0."))
    block_weights = sum(_numel(s) for n, s in shapes.items() if is_block_matrix(n))

    def train_flops(mix: tuple[float, ...]) -> float:
        tokens = sum(count * lengths[f] for f, count in zip(FAMILIES, family_counts(mix, dynamics.batch_size)))
        return dynamics.train_steps * tokens * 3 * fwd

    actions = [Action("train_all", "data", "train", train_flops(UNIFORM_MIX),
                      f"{dynamics.train_steps} AdamW/SGD steps on the pool, all families mixed equally",
                      partial(train_on_pool, family=-1))]
    actions += [Action(f"train_{f}", "data", "train", train_flops(one_family_mix(i)),
                       f"{dynamics.train_steps} steps on the {f} pool only", partial(train_on_pool, family=i))
                for i, f in enumerate(FAMILIES)]
    judge_tokens = sum((dynamics.trusted_steps * dynamics.trusted_size * 3 + dynamics.pool_size) * lengths[f]
                       for f in FAMILIES)
    actions += [
        Action("filter_noisy", "data", "filter", judge_tokens * fwd,
               f"keep only the pool examples whose answers a copy of the model, tuned {dynamics.trusted_steps} steps "
               f"on a small trusted clean set, reproduces (at most {dynamics.filter_max_fraction:.0%} of a family "
               "dropped; judged afresh each time)", filter_pool),
        Action("restore_data", "data", "restore", 0.0, "use the whole pool again", restore_pool),
    ]
    actions += [Action(f"reinit_block{b}", "parameter", "reinit", 4.0 * block_params,
                       f"fresh GPT-2 initialisation of block {b}", partial(reinit_block, block=b))
                for b in range(cfg.n_layer)]
    actions += [
        Action("rollback", "parameter", "rollback", float(n_params),
               "return to the best-scoring parameters seen this episode", rollback),
        Action("prune", "parameter", "prune", 20.0 * block_weights,
               f"zero the smallest {dynamics.prune_fraction:.0%} of each block matrix's remaining weights", prune),
        Action("lr_up", "algorithm", "lr", 0.0, "multiply the learning rate by sqrt(10)",
               partial(change_lr, direction=1)),
        Action("lr_down", "algorithm", "lr", 0.0, "divide the learning rate by sqrt(10)",
               partial(change_lr, direction=-1)),
        Action("switch_optimizer", "algorithm", "switch_optimizer", 0.0,
               "AdamW <-> SGD with momentum 0.9 (the new optimizer starts with fresh moments)", switch_optimizer),
        Action("stop", "control", "stop", 0.0, "declare the model repaired and end the episode", stop),
    ]
    return tuple(actions)

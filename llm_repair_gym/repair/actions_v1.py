"""LLMRepair-v1's action table: v0's repairs, new ones, a paid checkpoint, and the probes.

Rows v1 takes from v0 unchanged: the five training rows, ``filter_noisy``, ``restore_data``, ``reinit_block<b>``,
``prune``, ``switch_optimizer`` and ``stop``. Changed or new:

==================  ==========================================================  ===================================
action              effect                                                      FLOPs
==================  ==========================================================  ===================================
``lr_up/lr_down``   move the configured lr a half-decade; the effective lr      0
                    keeps any hidden factor (``hidden_lr``)
``refresh_data``    every family's pool redrawn from its data source (a stuck   a forward pass over the new pools
                    shard is gone; a noisy source stays as noisy)               (the price of preparing them)
``reset_norms``     every LayerNorm gain vector divided by its RMS              ``4 x`` LayerNorm gains
``reset_optimizer`` moments and step counts zeroed                              0
``checkpoint``      keep a copy of the parameters (the only thing rollback      ``params`` (one copy)
                    can return to: v1 keeps no snapshot the agent did not take)
``rollback``        return to the checkpoint (nothing without one); moments     ``params``
                    zeroed
``probe_*``         measure (see :mod:`llm_repair_gym.repair.probes`)           the probe's own
==================  ==========================================================  ===================================

Re-initialising and pruning cannot be undone without a checkpoint taken before.
"""

from __future__ import annotations

from functools import partial

import torch

from llm_repair_gym.lm.model import ParamLayout
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.actions import Action, build_actions, forward_flops_per_token
from llm_repair_gym.repair.dynamics import DynamicsConfig, RepairContext, lr_of_level, reset_optimizer
from llm_repair_gym.repair.probes import Probe, probe_effect
from llm_repair_gym.repair.state import RepairState

FROM_V0 = ("train_all", *(f"train_{f}" for f in FAMILIES), "filter_noisy", "restore_data")
INERT_KINDS = frozenset({"lr", "switch_optimizer", "reset_optimizer", "checkpoint", "probe", "stop"})
"""Action kinds that change neither the model's parameters nor its data: the free measurement after one would
estimate the same quantities again, so v1 keeps the last one (no pass, and no reward from a redrawn sample)."""


def change_lr(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, direction: int) -> None:
    """Move the configured lr level by ``direction``; the effective lr is it times the hidden ``lr_scale``."""
    dyn = ctx.dynamics
    state.lr_level[env_ids] = (state.lr_level[env_ids] + direction).clamp(dyn.min_lr_level, dyn.max_lr_level)
    state.opt.lr[env_ids] = lr_of_level(ctx, state.lr_level[env_ids]) * state.lr_scale[env_ids]


def refresh_data(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Every family's pool drawn afresh from its train split; answers wrong at the source's ``noise_rate``."""
    for i, family in enumerate(FAMILIES):
        train_ids = ctx.task_suite.split_ids[family]["train"]
        pool = ctx.dynamics.pool_size
        state.pool_ids[family][env_ids] = train_ids[state.rng.integers(env_ids, train_ids.numel(), (pool,))]
        state.corrupt[family][env_ids] = state.rng.uniform(env_ids, (pool,)) < state.noise_rate[env_ids, i, None]
        state.keep[family][env_ids] = True


def reset_norms(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Divide every LayerNorm gain vector by its RMS (a scale fault goes; a healthy model's learned scales too)."""
    for name in ctx.layout.names:
        if (".ln_" in name or name.startswith("ln_f")) and name.endswith("weight"):
            span = ctx.layout.span(name)
            gain = state.params[env_ids, span]
            rms = gain.double().pow(2).mean(1, keepdim=True).sqrt().float().clamp_min(1e-8)
            state.params[env_ids, span] = gain / rms


def clear_optimizer(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Zero the optimizer's moments and step counts (a poisoned state is gone)."""
    reset_optimizer(ctx, state, env_ids)


def checkpoint(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Keep a copy of the parameters for ``rollback``."""
    state.snapshot[env_ids] = state.params[env_ids]
    state.has_checkpoint[env_ids] = True


def rollback(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor) -> None:
    """Return to the checkpoint, where one was taken (moments zeroed); without one nothing changes."""
    back = state.has_checkpoint[env_ids]
    state.params[env_ids] = torch.where(back[:, None], state.snapshot[env_ids], state.params[env_ids])
    _clear_where(ctx, state, env_ids, back)


def _clear_where(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the optimizer state of the envs ``env_ids[mask]`` without reading ``mask`` on the host."""
    keep = (~mask).float()
    state.opt.exp_avg[env_ids] = state.opt.exp_avg[env_ids] * keep[:, None]
    state.opt.exp_avg_sq[env_ids] = state.opt.exp_avg_sq[env_ids] * keep[:, None]
    state.opt.step[env_ids] = state.opt.step[env_ids] * keep[:, None]


def build_actions_v1(preset: Preset, dynamics: DynamicsConfig, probes: tuple[Probe, ...]) -> tuple[Action, ...]:
    """v1's action table for a preset and its probe table."""
    v0 = {a.name: a for a in build_actions(preset, dynamics)}
    fwd = forward_flops_per_token(preset)
    n_params = float(ParamLayout.of(preset.model).size)
    pool_tokens = sum(dynamics.pool_size * n for n in preset.tasks.family_lengths.values())
    gains = 2 * preset.model.n_layer * preset.model.n_embd + preset.model.n_embd
    rows = [v0[name] for name in FROM_V0]
    rows.append(Action("refresh_data", "data", "refresh", pool_tokens * fwd,
                       "draw every family's pool afresh from its data source", refresh_data))
    rows += [v0[f"reinit_block{b}"] for b in range(preset.model.n_layer)]
    rows += [
        Action("reset_norms", "parameter", "reset_norms", 4.0 * gains, "divide every LayerNorm gain by its RMS",
               reset_norms),
        Action("checkpoint", "parameter", "checkpoint", n_params, "keep a copy of the parameters for rollback",
               checkpoint),
        Action("rollback", "parameter", "rollback", n_params,
               "return to the checkpoint (nothing without one; moments zeroed)", rollback),
        v0["prune"],
        Action("lr_up", "algorithm", "lr", 0.0, "multiply the configured learning rate by sqrt(10)",
               partial(change_lr, direction=1)),
        Action("lr_down", "algorithm", "lr", 0.0, "divide the configured learning rate by sqrt(10)",
               partial(change_lr, direction=-1)),
        v0["switch_optimizer"],
        Action("reset_optimizer", "algorithm", "reset_optimizer", 0.0, "zero the optimizer's moments and step counts",
               clear_optimizer),
    ]
    start = 0
    for index, probe in enumerate(probes):
        rows.append(Action(probe.name, "diagnosis", "probe", probe.cost(preset, dynamics, fwd), probe.description,
                           probe_effect(probe, start, index)))
        start += len(probe.features)
    rows.append(v0["stop"])
    return tuple(rows)

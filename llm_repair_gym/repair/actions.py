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
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_repair_gym.lm.model import is_block_matrix, param_shapes
from llm_repair_gym.lm.presets import Preset
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import UNIFORM_MIX, DynamicsConfig, family_counts, one_family_mix

CATEGORIES = ("data", "parameter", "algorithm", "control")


@dataclass(frozen=True)
class Action:
    """One row of the action table. ``kind`` selects the effect; ``arg`` is its family, block or sign."""

    name: str
    category: str
    kind: str
    arg: int
    flops: float
    description: str


def forward_flops_per_token(preset: Preset) -> float:
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

    actions = [Action("train_all", "data", "train", -1, train_flops(UNIFORM_MIX),
                      f"{dynamics.train_steps} AdamW/SGD steps on the pool, all families mixed equally")]
    actions += [Action(f"train_{f}", "data", "train", i, train_flops(one_family_mix(i)),
                       f"{dynamics.train_steps} steps on the {f} pool only") for i, f in enumerate(FAMILIES)]
    judge_tokens = sum((dynamics.trusted_steps * dynamics.trusted_size * 3 + dynamics.pool_size) * lengths[f]
                       for f in FAMILIES)
    actions += [
        Action("filter_noisy", "data", "filter", 0, judge_tokens * fwd,
               f"keep only the pool examples whose answers a copy of the model, tuned {dynamics.trusted_steps} steps "
               f"on a small trusted clean set, reproduces (at most {dynamics.filter_max_fraction:.0%} of a family "
               "dropped; judged afresh each time)"),
        Action("restore_data", "data", "restore", 0, 0.0, "use the whole pool again"),
    ]
    actions += [Action(f"reinit_block{b}", "parameter", "reinit", b, 4.0 * block_params,
                       f"fresh GPT-2 initialisation of block {b}") for b in range(cfg.n_layer)]
    actions += [
        Action("rollback", "parameter", "rollback", 0, float(n_params),
               "return to the best-scoring parameters seen this episode"),
        Action("prune", "parameter", "prune", 0, 20.0 * block_weights,
               f"zero the smallest {dynamics.prune_fraction:.0%} of each block matrix's remaining weights"),
        Action("lr_up", "algorithm", "lr", 1, 0.0, "multiply the learning rate by sqrt(10)"),
        Action("lr_down", "algorithm", "lr", -1, 0.0, "divide the learning rate by sqrt(10)"),
        Action("switch_optimizer", "algorithm", "switch_optimizer", 0, 0.0,
               "AdamW <-> SGD with momentum 0.9 (the new optimizer starts with fresh moments)"),
        Action("stop", "control", "stop", 0, 0.0, "declare the model repaired and end the episode"),
    ]
    return tuple(actions)

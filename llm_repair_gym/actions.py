"""The action table: every action's name, category, effect and FLOP cost.

FLOP costs follow Kaplan et al. (2020): a forward pass costs
``forward_flops_per_token = 2 * n_params + 2 * n_layer * n_ctx * n_embd`` and a training step three
times that per token. ``T`` is the task sequence length; the other sizes are in ``DynamicsConfig``.

=====================  ===========================================================================
action kind            FLOPs
=====================  ===========================================================================
train (all / family)   ``train_steps * batch_size * T * 3 * forward_flops_per_token``
filter_noisy           ``n_families * (trusted_steps * trusted_size * 3 + pool_size) * T * forward_flops_per_token``
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

from llm_repair_gym.dynamics import DynamicsConfig
from llm_repair_gym.model import param_shapes
from llm_repair_gym.presets import Preset
from llm_repair_gym.tasks import FAMILIES

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
    cfg, t = preset.model, preset.tasks.seq_len
    fwd = forward_flops_per_token(preset)
    shapes = param_shapes(cfg)
    n_params = sum(_numel(s) for s in shapes.values())
    block_params = sum(_numel(s) for n, s in shapes.items() if n.startswith("h.0."))
    block_weights = sum(_numel(s) for n, s in shapes.items()
                        if n.startswith("h.") and n.endswith(".weight") and ".ln_" not in n)
    train_flops = dynamics.train_steps * dynamics.batch_size * t * 3 * fwd
    actions = [Action("train_all", "data", "train", -1, train_flops,
                      f"{dynamics.train_steps} AdamW/SGD steps on the pool, all families mixed equally")]
    actions += [Action(f"train_{f}", "data", "train", i, train_flops,
                       f"{dynamics.train_steps} steps on the {f} pool only") for i, f in enumerate(FAMILIES)]
    actions += [
        Action("filter_noisy", "data", "filter", 0,
               len(FAMILIES) * (dynamics.trusted_steps * dynamics.trusted_size * 3 + dynamics.pool_size) * t * fwd,
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
        Action("switch_optimizer", "algorithm", "switch_optimizer", 0, 0.0, "AdamW <-> SGD with momentum 0.9"),
        Action("stop", "control", "stop", 0, 0.0, "declare the model repaired and end the episode"),
    ]
    return tuple(actions)

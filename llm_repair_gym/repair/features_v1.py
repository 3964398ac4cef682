"""LLMRepair-v1's observation table: the free measurement, the episode's prices, and the probe slots.

Every probe value sits in a fixed slot (0 until the probe runs), with ``measured/<probe>`` and
``age/<probe>`` beside it, so observations keep one size. Values are clipped into their bounds.
"""

from __future__ import annotations

import torch

from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import LOSS_CAP
from llm_repair_gym.repair.features import Feature
from llm_repair_gym.repair.measure_v1 import FreeMeasurement
from llm_repair_gym.repair.probes import Probe

PRICE_SPAN = 10.0  # an episode's price is log-uniform over a factor of this around the env's cost_weight


def build_features_v1(weight_groups: list[str], probes: tuple[Probe, ...]) -> tuple[Feature, ...]:
    """The v1 feature table."""
    rows: list[Feature] = []
    for f in FAMILIES:
        rows += [
            Feature(f"val_acc/{f}", 0, 1, f"{f}: exact match on validation examples drawn afresh this step"),
            Feature(f"val_loss/{f}", 0, LOSS_CAP, f"{f}: their mean answer loss"),
            Feature(f"train_loss/{f}", 0, LOSS_CAP, f"{f}: mean answer loss on kept pool examples (labels as given)"),
            Feature(f"delta_acc/{f}", -1, 1, f"{f}: change of val_acc since the last step (both samples noisy)"),
        ]
    rows += [Feature(f"log_weight_rms/{g}", -8, 4, f"{g}: log10 RMS of its weight matrices") for g in weight_groups]
    rows += [
        Feature("log10_lr", -6, 0, "log10 of the configured learning rate"),
        Feature("optimizer_adamw", 0, 1, "1 for AdamW, 0 for SGD with momentum"),
        Feature("kept_fraction", 0, 1, "fraction of the training pools not filtered out"),
        Feature("sparsity", 0, 1, "fraction of zero weights in block matrices"),
        Feature("diverged", 0, 1, "1 when parameters are non-finite"),
        Feature("has_checkpoint", 0, 1, "1 once a checkpoint was taken this episode"),
        Feature("steps_used", 0, 1, "steps taken / this episode's step budget"),
        Feature("budget", 0, 1, "this episode's step budget / the env's max_episode_steps"),
        Feature("log10_price", -6, 0, "log10 of this episode's compute price (reward lost per train_all)"),
        Feature("compute_used", 0, 8, "compute spent / (budget x one train_all)"),
    ]
    for probe in probes:
        rows += list(probe.features)
    for probe in probes:
        rows += [Feature(f"measured/{probe.name}", 0, 1, f"1 once {probe.name} ran this episode"),
                 Feature(f"age/{probe.name}", 0, 1, f"steps since {probe.name} ran / max_episode_steps; 1 if never")]
    return tuple(rows)


def columns_v1(m: FreeMeasurement, previous_accuracy: torch.Tensor, weight_groups: list[str],
               probes: tuple[Probe, ...], settings: dict[str, torch.Tensor], probe_values: torch.Tensor,
               probe_step: torch.Tensor, steps: torch.Tensor, max_steps: int) -> dict[str, torch.Tensor]:
    """Feature values by name: the measurement, ``settings`` (the table's setting and budget features by name)
    and the probe slots."""
    out: dict[str, torch.Tensor] = dict(settings)
    for i, f in enumerate(FAMILIES):
        out[f"val_acc/{f}"] = m.val_accuracy[:, i]
        out[f"val_loss/{f}"] = m.val_loss[:, i]
        out[f"train_loss/{f}"] = m.train_loss[:, i]
        out[f"delta_acc/{f}"] = m.val_accuracy[:, i] - previous_accuracy[:, i]
    for j, g in enumerate(weight_groups):
        out[f"log_weight_rms/{g}"] = torch.log10(m.weight_rms[:, j] + 1e-8)
    out["sparsity"] = m.sparsity
    out["diverged"] = m.crashed.float()
    start = 0
    for index, probe in enumerate(probes):
        for k, feature in enumerate(probe.features):
            out[feature.name] = probe_values[:, start + k]
        start += len(probe.features)
        ran = probe_step[:, index] >= 0
        out[f"measured/{probe.name}"] = ran.float()
        out[f"age/{probe.name}"] = torch.where(ran, (steps - probe_step[:, index]).float() / max_steps, 1.0)
    return out

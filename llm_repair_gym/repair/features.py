"""The observation table: named features in a fixed order, with bounds, and how they are assembled.

Every value is clipped into its bounds, so the observation is finite even when a model has diverged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import LOSS_CAP, Measurement


@dataclass(frozen=True)
class Feature:
    """One row of the observation table."""

    name: str
    low: float
    high: float
    description: str


def build_features(group_names: list[str]) -> tuple[Feature, ...]:
    """The feature table for a model whose parameter groups are ``group_names``."""
    rows: list[Feature] = []
    for f in FAMILIES:
        rows += [
            Feature(f"val_acc/{f}", 0, 1, f"{f}: exact-match accuracy on the fixed validation examples"),
            Feature(f"val_loss/{f}", 0, LOSS_CAP, f"{f}: mean answer-token loss on them"),
            Feature(f"train_loss/{f}", 0, LOSS_CAP, f"{f}: mean answer loss on kept pool examples (labels as given)"),
            Feature(f"gap/{f}", -LOSS_CAP, LOSS_CAP, f"{f}: train loss - validation loss"),
            Feature(f"delta_acc/{f}", -1, 1, f"{f}: change of validation accuracy since the last step"),
            Feature(f"loss_spread/{f}", 0, 1, f"{f}: fraction of kept pool examples with loss > surprise_loss"),
        ]
    for g in group_names:
        rows += [
            Feature(f"log_weight_rms/{g}", -8, 4, f"{g}: log10 RMS of its parameters"),
            Feature(f"log_grad_norm/{g}", -8, 6,
                    f"{g}: log10 gradient norm of the loss on the first grad_size validation examples of each family"),
        ]
    rows += [
        Feature("log10_lr", -6, 0, "log10 of the learning rate"),
        Feature("optimizer_adamw", 0, 1, "1 for AdamW, 0 for SGD with momentum"),
        Feature("kept_fraction", 0, 1, "fraction of the training pool not filtered out"),
        Feature("steps_used", 0, 1, "fraction of the step budget used"),
        Feature("below_best", 0, 1, "mean validation accuracy of the best snapshot (what rollback returns to) "
                "minus the current one"),
        Feature("since_best", 0, 1, "steps since the best snapshot last improved, as a fraction of the budget"),
        Feature("compute_used", 0, 8, "compute spent / (budget steps x one train_all)"),
        Feature("sparsity", 0, 1, "fraction of zero weights in block matrices"),
        Feature("diverged", 0, 1, "1 when parameters or loss are non-finite"),
    ]
    return tuple(rows)


def assemble(table: tuple[Feature, ...], columns: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stack named columns ``[n]`` in table order and clip them into bounds: ``[n, len(table)]`` float32."""
    missing = [f.name for f in table if f.name not in columns]
    if missing:
        raise KeyError(f"no value for features {missing}")
    return torch.stack([torch.nan_to_num(columns[f.name].float(), nan=f.high).clamp(f.low, f.high)
                        for f in table], 1)


def columns(m: Measurement, previous_accuracy: torch.Tensor, group_names: list[str], lr: torch.Tensor,
            adamw: torch.Tensor, kept_fraction: torch.Tensor, steps_used: torch.Tensor,
            compute_used: torch.Tensor, below_best: torch.Tensor, since_best: torch.Tensor) -> dict[str, torch.Tensor]:
    """Feature values by name from a measurement and the envs' settings and budget."""
    out: dict[str, torch.Tensor] = {}
    for i, f in enumerate(FAMILIES):
        out[f"val_acc/{f}"] = m.val_accuracy[:, i]
        out[f"val_loss/{f}"] = m.val_loss[:, i]
        out[f"train_loss/{f}"] = m.train_loss[:, i]
        out[f"gap/{f}"] = m.train_loss[:, i] - m.val_loss[:, i]
        out[f"delta_acc/{f}"] = m.val_accuracy[:, i] - previous_accuracy[:, i]
        out[f"loss_spread/{f}"] = m.loss_spread[:, i]
    for j, g in enumerate(group_names):
        out[f"log_weight_rms/{g}"] = torch.log10(m.weight_rms[:, j] + 1e-8)
        out[f"log_grad_norm/{g}"] = torch.log10(m.grad_norm[:, j] + 1e-8)
    out["log10_lr"] = torch.log10(lr)
    out["optimizer_adamw"] = adamw.float()
    out["kept_fraction"] = kept_fraction
    out["steps_used"] = steps_used
    out["below_best"] = below_best
    out["since_best"] = since_best
    out["compute_used"] = compute_used
    out["sparsity"] = m.sparsity
    out["diverged"] = m.crashed.float()
    return out

"""The batched state of N repair environments: one object, every tensor with the env axis first.

A ``RepairState`` holds everything that changes during an episode: the models' parameters, their
optimizer state and settings, each env's training pool with its noisy-label and filter masks, the best
snapshot so far, the random streams and the episode's bookkeeping. ``clone`` copies it (for ``fork``),
``tensors``/``load_tensors`` flatten it for saving and restoring.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from llm_repair_gym.lm.optim import OptimizerState
from llm_repair_gym.repair.rng import BatchedRNG


@dataclass
class RepairState:
    """Batched episode state. Shapes: N envs, P parameters (flat), S pool examples per family, K facts, F families."""

    params: torch.Tensor  # [N, P] flat parameters (``ParamLayout.views`` names them)
    opt: OptimizerState
    lr_level: torch.Tensor  # [N] long: lr = base_lr * 10 ** (lr_level / 2)
    fact_tables: torch.Tensor  # [N, K]: the true facts (what validation and the training pool use)
    pool_ids: dict[str, torch.Tensor]  # family -> [N, S] example ids from the train split
    corrupt: dict[str, torch.Tensor]  # family -> [N, S] bool: label is wrong (label_noise fault)
    keep: dict[str, torch.Tensor]  # family -> [N, S] bool: not filtered out
    snapshot: torch.Tensor  # [N, P] best parameters seen this episode
    snapshot_score: torch.Tensor  # [N]: mean validation accuracy of the snapshot
    since_best: torch.Tensor  # [N] long: steps since the snapshot last improved
    rng: BatchedRNG
    steps: torch.Tensor  # [N] long: actions taken this episode
    flops: torch.Tensor  # [N] float64: compute spent this episode
    episode_cost: torch.Tensor  # [N]: accumulated safety cost
    accuracy: torch.Tensor  # [N, F]: last measured validation accuracy
    reset_accuracy: torch.Tensor  # [N, F]: validation accuracy right after the fault
    healthy_accuracy: torch.Tensor  # [N, F]: validation accuracy of the zoo model before the fault
    crashed: torch.Tensor  # [N] bool: parameters or loss are non-finite
    fault_type: torch.Tensor  # [N] long: index into faults.FAULTS
    fault_target: torch.Tensor  # [N] long: family or block index, -1 when the fault has none
    fault_severity: torch.Tensor  # [N] float
    zoo_model: torch.Tensor  # [N] long: which zoo model the env started from
    instance: torch.Tensor  # [N] long: the instance-bank entry the episode started from, -1 for a live fault

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state under a flat, stable name."""
        out: dict[str, torch.Tensor] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                out[field.name] = value
            elif isinstance(value, dict):
                out |= {f"{field.name}.{k}": v for k, v in value.items()}
            elif isinstance(value, OptimizerState):
                out |= {f"opt.{k}": v for k, v in value.tensors().items()}
            elif isinstance(value, BatchedRNG):
                out |= {"rng.seeds": value.seeds, "rng.counters": value.counters}
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Overwrite this state in place with ``tensors`` (as produced by :meth:`tensors`)."""
        mine = self.tensors()
        missing = sorted(set(mine) - set(tensors))
        extra = sorted(set(tensors) - set(mine))
        if missing or extra:
            raise ValueError(f"state tensors do not match: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, target in mine.items():
            source = tensors[name]
            if source.shape != target.shape or source.dtype != target.dtype:
                raise ValueError(f"state tensor {name}: expected {tuple(target.shape)} {target.dtype}, "
                                 f"got {tuple(source.shape)} {source.dtype}")
        for name, target in mine.items():
            target.copy_(tensors[name])

    def clone(self) -> RepairState:
        """A deep copy (same device)."""
        def copy(value):
            if isinstance(value, torch.Tensor):
                return value.clone()
            if isinstance(value, dict):
                return {k: v.clone() for k, v in value.items()}
            if isinstance(value, OptimizerState):
                return dataclasses.replace(value, **{k: v.clone() for k, v in value.tensors().items()})
            if isinstance(value, BatchedRNG):
                rng = BatchedRNG(value.seeds)
                rng.counters = value.counters.clone()
                return rng
            return value

        return type(self)(**{f.name: copy(getattr(self, f.name)) for f in dataclasses.fields(self)})


@dataclass
class RepairStateV1(RepairState):
    """LLMRepair-v1's batched state: v0's, plus compound faults, hidden settings, the episode's prices, the
    agent's checkpoint and the probe slots. ``snapshot`` holds the checkpoint the agent took (if any).
    K fault types, Q probe values, R probes."""

    faults: torch.Tensor  # [N, K] bool: which v1 faults the instance holds
    fault_targets: torch.Tensor  # [N, K] long: block or family of each, -1 when none
    fault_severities: torch.Tensor  # [N, K]
    noise_rate: torch.Tensor  # [N, F]: fraction of wrong answers in each family's data source (label_noise)
    lr_scale: torch.Tensor  # [N]: effective lr / configured lr (hidden_lr; 1 when healthy)
    price: torch.Tensor  # [N]: this episode's compute price (reward per train_all of compute)
    budget: torch.Tensor  # [N] long: this episode's step budget
    has_checkpoint: torch.Tensor  # [N] bool: the agent took a checkpoint (``snapshot``) this episode
    probe_values: torch.Tensor  # [N, Q]: the last result of every probe (0 where never measured)
    probe_step: torch.Tensor  # [N, R] long: the step each probe last ran at, -1 when not this episode
    val_loss: torch.Tensor  # [N, F]: the last free measurement's validation loss (with ``accuracy``, ``crashed``,
    train_loss: torch.Tensor  # [N, F]  ``train_loss``, ``weight_rms`` and ``sparsity``: what an inert action
    weight_rms: torch.Tensor  # [N, W]  observes again; W weight groups)
    sparsity: torch.Tensor  # [N]
    test_start: torch.Tensor  # [N, F]: test-split accuracy at reset
    test_accuracy: torch.Tensor  # [N, F]: test-split accuracy at the last test measurement (reset, episode end)
    val_start: torch.Tensor  # [N]: mean validation accuracy measured at reset
    crashes: torch.Tensor  # [N] long: times the model newly diverged this episode
    objective: torch.Tensor  # [N]: the episode's objective, set when it ends

"""LLMRepair-v1's instances: a zoo model with a drawn fault set injected, made live or copied from a bank.

As in v0 (:mod:`llm_repair_gym.repair.instances`), instance ``k`` of a split is made from the stream seeded
with ``instance_seed(config, split, k, attempt)`` and a bank is built once in batched runs and cached
(safetensors, manifest, checksums). A draw is kept when it holds no fault, or when its worst family lost
at least ``min_drop`` validation accuracy; a train-split draw that holds a held-out pair
(:data:`~llm_repair_gym.repair.faults_v1.HELD_OUT_PAIRS`) is drawn again, so those combinations appear only
in the test split. Optimizer poison is not stored: it is drawn afresh from the episode's stream at reset. Each
instance stores its test-split accuracy (a function of its parameters), so a reset from the bank scores nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from pathlib import Path

import torch
from tqdm.auto import tqdm

from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import RepairContext, reset_optimizer, validation_accuracy
from llm_repair_gym.repair.faults_v1 import (
    FAULT_NAMES_V1,
    FAULTS_V1,
    HELD_OUT_PAIRS,
    draw_fault_sets,
    holds_held_out_pair,
    inject_fault_sets,
)
from llm_repair_gym.repair.instances import (
    MAX_ATTEMPTS,
    BankConfig,
    blank_state,
    copy_instances,
    instance_seed,
    start_healthy,
)
from llm_repair_gym.repair.measure_v1 import test_accuracy
from llm_repair_gym.repair.rng import BatchedRNG
from llm_repair_gym.repair.state import RepairStateV1
from llm_repair_gym.runtime.cache import cache_root, config_hash, load_or_build

BANK_V1_FORMAT = 2  # bump when an injection's code changes what an instance holds (the hash sees only the table)
DEFAULT_BANK_V1 = BankConfig(min_drop=0.15)
_FIELDS = ("params", "lr_scale", "faults", "fault_targets", "fault_severities", "noise_rate", "zoo_model",
           "test_accuracy")
_FAMILY_FIELDS = ("pool_ids", "corrupt")
_GENERATIVE = ("name", "target_kind", "severity_low", "severity_high", "integer_severity", "inject_steps", "inject_lr")
"""The fault-row fields that decide what an instance holds (its texts and documented repair do not)."""


def blank_state_v1(ctx: RepairContext, n: int, n_probe_values: int, n_probes: int) -> RepairStateV1:
    """A v1 state for ``n`` envs, every tensor allocated and zero (reset fills it)."""
    base = blank_state(ctx, n)
    dev, k, f = ctx.device, len(FAULTS_V1), len(FAMILIES)
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    zeros = torch.zeros(n, device=dev)
    return RepairStateV1(
        **fields, faults=torch.zeros(n, k, dtype=torch.bool, device=dev),
        fault_targets=torch.full((n, k), -1, dtype=torch.long, device=dev),
        fault_severities=torch.zeros(n, k, device=dev), noise_rate=torch.zeros(n, f, device=dev),
        lr_scale=torch.ones(n, device=dev), price=zeros.clone(), budget=torch.zeros(n, dtype=torch.long, device=dev),
        has_checkpoint=torch.zeros(n, dtype=torch.bool, device=dev),
        probe_values=torch.zeros(n, n_probe_values, device=dev),
        probe_step=torch.full((n, n_probes), -1, dtype=torch.long, device=dev),
        val_loss=torch.zeros(n, f, device=dev), train_loss=torch.zeros(n, f, device=dev),
        weight_rms=torch.zeros(n, ctx.preset.model.n_layer + 1, device=dev), sparsity=zeros.clone(),
        test_start=torch.zeros(n, f, device=dev), test_accuracy=torch.zeros(n, f, device=dev), val_start=zeros.clone(),
        crashes=torch.zeros(n, dtype=torch.long, device=dev), objective=zeros.clone(),
    )


def start_live_v1(ctx: RepairContext, state: RepairStateV1, env_ids: torch.Tensor,
                  sets: torch.Tensor | None = None, models: torch.Tensor | None = None) -> None:
    """Fresh v1 instances for ``env_ids`` from their (seeded) streams: zoo model, pools, fault set (drawn, or
    exactly ``sets [n, K]``), injected."""
    start_healthy(ctx, state, env_ids, models)
    state.noise_rate[env_ids] = 0.0
    state.lr_scale[env_ids] = 1.0
    draw_fault_sets(ctx, state, env_ids, sets)
    inject_fault_sets(ctx, state, env_ids)
    reset_optimizer(ctx, state, env_ids)
    state.instance[env_ids] = -1


class InstanceBankV1:
    """One split of a v1 bank on the env's device; draws are uniform over the instances a view allows."""

    def __init__(self, split: str, tensors: dict[str, torch.Tensor], manifest: dict, path: Path) -> None:
        self.split, self.tensors, self.manifest, self.path = split, tensors, manifest, path
        self.size = tensors["params"].shape[0]
        self.allowed = torch.arange(self.size, device=tensors["params"].device)

    def restricted(self, instance_ids: list[int]) -> InstanceBankV1:
        """This bank with draws limited to ``instance_ids`` (shares the tensors)."""
        ids = torch.as_tensor(instance_ids, dtype=torch.long, device=self.allowed.device)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= self.size:
            raise ValueError(f"restricted needs instance ids in [0, {self.size}), got {len(instance_ids)} of them")
        view = copy.copy(self)
        view.allowed = ids
        return view

    def with_faults(self, allowed: list[int]) -> InstanceBankV1:
        """This bank with draws limited to instances whose faults are all in ``allowed`` (fault indices)."""
        outside = torch.ones(len(FAULTS_V1), dtype=torch.bool, device=self.allowed.device)
        outside[allowed] = False
        ok = ~(self.tensors["faults"][self.allowed] & outside).any(1)
        if not ok.any():
            raise ValueError(f"the {self.split} bank holds no instance with faults only from "
                             f"{[FAULT_NAMES_V1[k] for k in allowed]}")
        view = copy.copy(self)
        view.allowed = self.allowed[ok]
        return view

    def draw(self, rng: BatchedRNG, env_ids: torch.Tensor) -> torch.Tensor:
        """Instance ids ``[n]``, uniform over the allowed ones."""
        return self.allowed[rng.integers(env_ids, self.allowed.numel())]

    def load(self, state: RepairStateV1, env_ids: torch.Tensor, instance_ids: torch.Tensor) -> None:
        """Copy instances into some envs' entries of ``state`` (filters cleared)."""
        copy_instances(self.tensors, _FIELDS, _FAMILY_FIELDS, state, env_ids, instance_ids)


def _bank_hash(ctx: RepairContext, config: BankConfig, split: str, zoo_hash: str) -> str:
    faults = [{k: getattr(f, k) for k in _GENERATIVE} for f in FAULTS_V1]
    return config_hash({"format": BANK_V1_FORMAT, "zoo": zoo_hash, "dynamics": dataclasses.asdict(ctx.dynamics),
                        "faults": faults, "held_out": HELD_OUT_PAIRS, "bank": dataclasses.asdict(config),
                        "split": split})


def build_instances_v1(ctx: RepairContext, config: BankConfig, split: str,
                       progress: bool = True) -> dict[str, torch.Tensor]:
    """Every instance of one v1 split, ``config.build_batch`` at a time (redrawn as the module says)."""
    size = config.size(split)
    healthy = validation_accuracy(ctx, ctx.zoo_params, ctx.zoo_fact_tables)
    out: list[dict[str, torch.Tensor]] = []
    bar = tqdm(total=size, desc=f"v1 instance bank {ctx.preset.name}/{split}", disable=not progress, unit="inst")
    for start in range(0, size, config.build_batch):
        index = torch.arange(start, min(start + config.build_batch, size), device=ctx.device)
        attempt = torch.zeros_like(index)
        kept: dict[str, torch.Tensor] = {}
        todo = torch.ones_like(index, dtype=torch.bool)
        while todo.any():
            if int(attempt.max()) >= MAX_ATTEMPTS:
                raise RuntimeError(f"instances {index[todo].tolist()} of the v1 {split} bank were redrawn "
                                   f"{MAX_ATTEMPTS} times: the fault table is miscalibrated")
            ids = index[todo]
            state = blank_state_v1(ctx, ids.numel(), 0, 0)
            env_ids = torch.arange(ids.numel(), device=ctx.device)
            seeds = torch.tensor([instance_seed(config, split, int(k), int(a)) for k, a in zip(ids, attempt[todo])],
                                 device=ctx.device)
            state.rng.reseed(env_ids, seeds)
            start_live_v1(ctx, state, env_ids)
            state.test_accuracy[env_ids] = test_accuracy(ctx, state, env_ids)
            tensors = {name: getattr(state, name)[env_ids] for name in _FIELDS}
            for name in _FAMILY_FIELDS:
                tensors |= {f"{name}.{f}": getattr(state, name)[f][env_ids] for f in FAMILIES}
            accuracy = validation_accuracy(ctx, state.params[env_ids], state.fact_tables[env_ids])
            tensors |= {"seed": seeds, "attempt": attempt[todo], "accuracy": accuracy}
            drop = (healthy[tensors["zoo_model"]] - accuracy).max(1).values
            faulted = tensors["faults"].any(1)
            good = ~faulted | (drop >= config.min_drop)
            if split == "train":
                good &= ~holds_held_out_pair(tensors["faults"])
            rows = todo.nonzero()[:, 0]
            if not kept:
                kept = {k: torch.zeros((index.numel(), *v.shape[1:]), dtype=v.dtype, device=v.device)
                        for k, v in tensors.items()}
            for name, value in tensors.items():
                kept[name][rows[good]] = value[good]
            todo[rows[good]] = False
            attempt[todo] += 1
            bar.update(int(good.sum()))
        out.append({k: v.cpu() for k, v in kept.items()})
    bar.close()
    return {k: torch.cat([c[k] for c in out]) for k in out[0]}


_OPEN_BANKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def load_bank_v1(ctx: RepairContext, config: BankConfig, split: str, zoo_hash: str,
                 cache_dir: str | Path | None = None, progress: bool = True) -> InstanceBankV1:
    """One split of the v1 bank for ``ctx``: loaded when cached and valid, else built (shared in a process)."""
    digest = _bank_hash(ctx, config, split, zoo_hash)
    path = cache_root(cache_dir) / f"bank-v1-{ctx.preset.name}-{digest}-{split}"
    key = (str(path.resolve()), str(ctx.device))
    if key in _OPEN_BANKS:
        return _OPEN_BANKS[key]
    size, k, f, pool = config.size(split), len(FAULTS_V1), len(FAMILIES), ctx.dynamics.pool_size
    shapes = {"params": (size, ctx.layout.size), "lr_scale": (size,), "faults": (size, k), "fault_targets": (size, k),
              "fault_severities": (size, k), "noise_rate": (size, f), "zoo_model": (size,), "seed": (size,),
              "attempt": (size,), "accuracy": (size, f), "test_accuracy": (size, f),
              **{f"{name}.{fam}": (size, pool) for name in _FAMILY_FIELDS for fam in FAMILIES}}

    def check(tensors: dict[str, torch.Tensor]) -> None:
        for name, shape in shapes.items():
            if name not in tensors or tuple(tensors[name].shape) != shape:
                raise ValueError(f"v1 bank tensor {name} missing or not of shape {shape}")
        if tensors["zoo_model"].max() >= len(ctx.zoo_params):
            raise ValueError("v1 bank zoo models out of range")

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        tensors = build_instances_v1(ctx, config, split, progress)
        return tensors, {"faults_per_instance": torch.bincount(tensors["faults"].sum(1), minlength=4).tolist()}

    manifest = {"format": BANK_V1_FORMAT, "env": "LLMRepair-v1", "preset": ctx.preset.name, "split": split,
                "size": size, "zoo": zoo_hash, "bank": dataclasses.asdict(config),
                "dynamics": dataclasses.asdict(ctx.dynamics), "config_hash": digest}
    tensors, manifest = load_or_build(path, manifest, build, check, "v1 instance bank")
    bank = InstanceBankV1(split, {k: v.to(ctx.device) for k, v in tensors.items()}, manifest, path)
    _OPEN_BANKS[key] = bank
    return bank

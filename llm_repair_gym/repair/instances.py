"""Instances: the faulted starting points of episodes, made live or copied from a cached instance bank.

An *instance* is what a reset hands the agent: a zoo model with a fault injected (its parameters after
the injection), a training pool with its noisy-label flags, a learning-rate level, and the fault's type,
target and severity. ``start_live`` makes one from a random stream: it draws the zoo model, the pool and
the fault, and injects it (fine-tuning for most faults: up to 200 steps, so a live reset costs far more
than a step).

An :class:`InstanceBank` makes them once instead. Instance ``k`` of a split is ``start_live`` on the stream
seeded with ``instance_seed(config, split, k)``, with fault type ``k mod (number of faults)``, so every
fault is equally represented (a draw whose fault did too little damage is drawn again, see
:func:`build_instances`); a bank is built in large batched runs and cached like the zoo (safetensors,
manifest, checksums; :mod:`llm_repair_gym.runtime.cache`), and a reset is a copy. Banks have two splits, ``train``
and ``test``, generated from disjoint seeds: agents train on one and are evaluated on the other, the way
Procgen holds out levels. Each instance keeps a stable id, its index in its split, which evaluation
suites name.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from llm_repair_gym.lm import optim
from llm_repair_gym.lm.tasks import FAMILIES
from llm_repair_gym.repair.dynamics import RepairContext, measure, reset_optimizer, validation_accuracy
from llm_repair_gym.repair.faults import FAULT_NAMES, FAULTS, sample_and_inject
from llm_repair_gym.repair.rng import BatchedRNG
from llm_repair_gym.repair.state import RepairState
from llm_repair_gym.runtime.cache import cache_root, config_hash, load_or_build

BANK_FORMAT = 2  # bump when what an instance of a given config contains changes
BANK_SPLITS: tuple[str, ...] = ("train", "test")
INSTANCE_MODES: tuple[str, ...] = (*BANK_SPLITS, "live")


@dataclass(frozen=True)
class BankConfig:
    """Sizes and seed of an instance bank. Every split holds each fault type ``size / n_faults`` times."""

    train_size: int = 512
    test_size: int = 256
    seed: int = 0
    min_drop: float = 0.25  # a draw of a fault (not `none`) whose worst family lost less accuracy is drawn again
    build_batch: int = 128  # instances injected in one batched run while building

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size", "build_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BankConfig.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**20:
            raise ValueError(f"BankConfig.seed must be an int in [0, 2**20), got {self.seed!r}")
        if not 0 <= self.min_drop < 1:
            raise ValueError(f"BankConfig.min_drop must lie in [0, 1), got {self.min_drop!r}")

    def size(self, split: str) -> int:
        return {"train": self.train_size, "test": self.test_size}[_check_split(split)]


MAX_ATTEMPTS = 16  # draws per instance before a bank build gives up


def instance_seed(config: BankConfig, split: str, index: int, attempt: int = 0) -> int:
    """The seed of the stream that makes instance ``index`` of ``split`` at its ``attempt``-th draw (disjoint
    across splits, bank seeds, attempts and indices below 2**32)."""
    return ((config.seed * len(BANK_SPLITS) + BANK_SPLITS.index(_check_split(split))) << 40) + (attempt << 32) + index


def blank_state(ctx: RepairContext, n: int) -> RepairState:
    """A state for ``n`` envs with every tensor allocated and zero (reset fills it)."""
    dev, dyn = ctx.device, ctx.dynamics
    params = torch.zeros(n, ctx.layout.size, device=dev)
    pool = {f: torch.zeros(n, dyn.pool_size, dtype=torch.long, device=dev) for f in FAMILIES}
    zeros_f = torch.zeros(n, len(FAMILIES), device=dev)
    long0 = torch.zeros(n, dtype=torch.long, device=dev)
    return RepairState(
        params=params, opt=optim.init_state(params, ctx.preset.model.n_groups, "adamw", dyn.base_lr),
        lr_level=long0.clone(), fact_tables=torch.zeros(n, ctx.zoo_fact_tables.shape[1], dtype=torch.long, device=dev),
        pool_ids=pool, corrupt={f: torch.zeros_like(v, dtype=torch.bool) for f, v in pool.items()},
        keep={f: torch.ones_like(v, dtype=torch.bool) for f, v in pool.items()},
        snapshot=params.clone(), snapshot_score=torch.zeros(n, device=dev), since_best=long0.clone(),
        rng=BatchedRNG(long0), steps=long0.clone(), flops=torch.zeros(n, dtype=torch.float64, device=dev),
        episode_cost=torch.zeros(n, device=dev), accuracy=zeros_f.clone(), reset_accuracy=zeros_f.clone(),
        healthy_accuracy=zeros_f.clone(), crashed=torch.zeros(n, dtype=torch.bool, device=dev),
        fault_type=long0.clone(), fault_target=long0.clone(), fault_severity=torch.zeros(n, device=dev),
        zoo_model=long0.clone(), instance=torch.full((n,), -1, dtype=torch.long, device=dev),
    )


def start_live(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor, allowed: torch.Tensor,
               kinds: torch.Tensor | None = None, models: torch.Tensor | None = None) -> None:
    """Make fresh instances for ``env_ids`` from their (already seeded) streams: a zoo model, a training pool
    and a fault from ``allowed`` (or exactly ``kinds``), injected. The optimizer starts fresh afterwards.
    ``models [n]`` (-1: draw) fixes the zoo model of some envs; the stream is advanced the same either way."""
    start_healthy(ctx, state, env_ids, models)
    sample_and_inject(ctx, state, env_ids, allowed, kinds)
    reset_optimizer(ctx, state, env_ids)
    state.instance[env_ids] = -1


def start_healthy(ctx: RepairContext, state: RepairState, env_ids: torch.Tensor,
                  models: torch.Tensor | None = None) -> None:
    """The healthy start every live instance is injected into, from the envs' streams: a zoo model (drawn, or
    ``models``' where >= 0), a training pool per family, AdamW at the base lr with fresh moments."""
    dyn = ctx.dynamics
    zoo_model = state.rng.integers(env_ids, ctx.zoo_fact_tables.shape[0])
    if models is not None:
        zoo_model = torch.where(models >= 0, models, zoo_model)
    state.zoo_model[env_ids] = zoo_model
    state.params[env_ids] = ctx.zoo_params[zoo_model]
    state.fact_tables[env_ids] = ctx.zoo_fact_tables[zoo_model]
    for family in FAMILIES:
        train_ids = ctx.task_suite.split_ids[family]["train"]
        state.pool_ids[family][env_ids] = train_ids[state.rng.integers(env_ids, train_ids.numel(), (dyn.pool_size,))]
        state.corrupt[family][env_ids] = False
        state.keep[family][env_ids] = True
    state.opt.optimizer[env_ids] = optim.ADAMW
    state.lr_level[env_ids] = 0
    state.opt.lr[env_ids] = dyn.base_lr
    reset_optimizer(ctx, state, env_ids)


# What an instance is made of: the state fields a bank stores (families expand to one tensor each).
_FIELDS = ("params", "lr_level", "fault_type", "fault_target", "fault_severity", "zoo_model")
_FAMILY_FIELDS = ("pool_ids", "corrupt")


def _instance_tensors(state: RepairState, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {name: getattr(state, name)[env_ids] for name in _FIELDS}
    for name in _FAMILY_FIELDS:
        out |= {f"{name}.{f}": getattr(state, name)[f][env_ids] for f in FAMILIES}
    return out


class InstanceBank:
    """One split of a bank on the env's device: ``size`` instances, drawn per fault type and copied in at reset."""

    def __init__(self, split: str, tensors: dict[str, torch.Tensor], manifest: dict, path: Path) -> None:
        self.split, self.manifest, self.path = split, manifest, path
        self.tensors = tensors
        self.size = tensors["params"].shape[0]
        kinds = tensors["fault_type"]
        self.order = torch.argsort(kinds, stable=True)  # instance ids grouped by fault type
        counts = torch.bincount(kinds, minlength=len(FAULT_NAMES))
        self.counts = counts
        self.offsets = torch.cumsum(counts, 0) - counts

    def restricted(self, instance_ids: list[int]) -> InstanceBank:
        """This bank with draws limited to ``instance_ids`` (a suite's split); it shares the tensors, and an
        explicit ``reset(options={"instance": k})`` may still name any instance of the split."""
        ids = torch.as_tensor(instance_ids, dtype=torch.long, device=self.order.device)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= self.size:
            raise ValueError(f"restricted needs instance ids in [0, {self.size}), got {len(instance_ids)} of them "
                             f"spanning {instance_ids[:1]}..{instance_ids[-1:]}")
        view = copy.copy(self)
        kinds = self.tensors["fault_type"][ids]
        view.order = ids[torch.argsort(kinds, stable=True)]
        view.counts = torch.bincount(kinds, minlength=len(FAULT_NAMES))
        view.offsets = torch.cumsum(view.counts, 0) - view.counts
        return view

    def check_faults(self, allowed: list[int]) -> None:
        """Refuse fault types this bank holds no instance of."""
        missing = [FAULT_NAMES[k] for k in allowed if int(self.counts[k]) == 0]
        if missing:
            raise ValueError(f"the {self.split} bank ({self.size} instances) holds no {missing} instance; "
                             "make it larger (BankConfig) or leave those faults out")

    def draw(self, rng: BatchedRNG, env_ids: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Instance ids ``[n]``: a fault type uniform over ``allowed``, then an instance of it uniformly."""
        kind = allowed[rng.integers(env_ids, allowed.numel())]
        return self.order[self.offsets[kind] + rng.integers(env_ids, self.counts[kind])]

    def load(self, state: RepairState, env_ids: torch.Tensor, instance_ids: torch.Tensor) -> None:
        """Copy instances into some envs' entries of ``state`` (filters cleared)."""
        copy_instances(self.tensors, _FIELDS, _FAMILY_FIELDS, state, env_ids, instance_ids)


def copy_instances(tensors: dict[str, torch.Tensor], fields: tuple[str, ...], family_fields: tuple[str, ...],
                   state: RepairState, env_ids: torch.Tensor, instance_ids: torch.Tensor) -> None:
    """Copy bank instances ``instance_ids`` into the entries ``env_ids`` of ``state``: the state ``fields`` and,
    per family, the ``family_fields`` (stored as ``<name>.<family>``); filters cleared."""
    for name in fields:
        getattr(state, name)[env_ids] = tensors[name][instance_ids]
    for name in family_fields:
        for f in FAMILIES:
            getattr(state, name)[f][env_ids] = tensors[f"{name}.{f}"][instance_ids]
    for f in FAMILIES:
        state.keep[f][env_ids] = True
    state.instance[env_ids] = instance_ids


def bank_path(ctx: RepairContext, config: BankConfig, split: str, zoo_hash: str, cache_dir: str | Path | None) -> Path:
    return cache_root(cache_dir) / f"bank-{ctx.preset.name}-{_bank_hash(ctx, config, split, zoo_hash)}-{split}"


def _bank_hash(ctx: RepairContext, config: BankConfig, split: str, zoo_hash: str) -> str:
    faults = [{k: v for k, v in dataclasses.asdict(f).items() if k != "inject"} for f in FAULTS]
    return config_hash({"format": BANK_FORMAT, "zoo": zoo_hash, "dynamics": dataclasses.asdict(ctx.dynamics),
                        "faults": faults, "bank": dataclasses.asdict(config), "split": split})


def build_instances(ctx: RepairContext, config: BankConfig, split: str,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Every instance of one split, injected ``config.build_batch`` at a time; tensors on the CPU.

    Instance ``k`` has fault type ``k mod n_faults``. A draw whose fault cost its worst family less than
    ``config.min_drop`` validation accuracy (a ``label_noise`` injection that ran out of steps, say) is drawn again
    from the next attempt's seed, so every instance has something to repair; ``attempt`` records the draw kept.
    """
    size = config.size(split)
    all_kinds = torch.arange(len(FAULT_NAMES), device=ctx.device)
    healthy = validation_accuracy(ctx, ctx.zoo_params, ctx.zoo_fact_tables)
    none = FAULT_NAMES.index("none")
    chunks: list[dict[str, torch.Tensor]] = []
    bar = tqdm(total=size, desc=f"instance bank {ctx.preset.name}/{split}", disable=not progress, unit="inst")
    for start in range(0, size, config.build_batch):
        index = torch.arange(start, min(start + config.build_batch, size), device=ctx.device)
        attempt = torch.zeros_like(index)
        kept: dict[str, torch.Tensor] | None = None
        todo = torch.ones_like(index, dtype=torch.bool)
        while todo.any():
            if int(attempt.max()) >= MAX_ATTEMPTS:
                raise RuntimeError(f"instances {index[todo].tolist()} of the {split} bank did not reach a drop of "
                                   f"{config.min_drop} in {MAX_ATTEMPTS} draws: the fault table is miscalibrated")
            ids = index[todo]
            state = blank_state(ctx, ids.numel())
            env_ids = torch.arange(ids.numel(), device=ctx.device)
            seeds = torch.tensor([instance_seed(config, split, int(k), int(a)) for k, a in zip(ids, attempt[todo])],
                                 device=ctx.device)
            state.rng.reseed(env_ids, seeds)
            start_live(ctx, state, env_ids, all_kinds, kinds=ids % len(FAULT_NAMES))
            tensors = _instance_tensors(state, env_ids)
            tensors |= {"seed": seeds, "attempt": attempt[todo], "accuracy": measure(ctx, state, env_ids).val_accuracy}
            drop = (healthy[tensors["zoo_model"]] - tensors["accuracy"]).max(1).values
            good = (tensors["fault_type"] == none) | (drop >= config.min_drop)
            if kept is None:
                kept = tensors
            else:
                rows = todo.nonzero()[:, 0]
                for name, value in tensors.items():
                    kept[name][rows[good]] = value[good]
            done_now = todo.nonzero()[:, 0][good]
            todo[done_now] = False
            attempt[todo] += 1
            bar.update(int(good.sum()))
        chunks.append({k: v.cpu() for k, v in kept.items()})
    bar.close()
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


_OPEN_BANKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # (path, device) -> InstanceBank


def load_bank(ctx: RepairContext, config: BankConfig, split: str, zoo_hash: str, cache_dir: str | Path | None = None,
              progress: bool = True) -> InstanceBank:
    """One split of the bank for ``ctx`` (its preset, zoo and dynamics): loaded when cached and valid, else built.

    Envs of one process share a loaded bank (it is read-only), so N single envs hold it once.
    """
    path = bank_path(ctx, config, split, zoo_hash, cache_dir)
    key = (str(path.resolve()), str(ctx.device))
    if key in _OPEN_BANKS:
        return _OPEN_BANKS[key]
    size, n_params, pool = config.size(split), ctx.layout.size, ctx.dynamics.pool_size
    shapes = {"params": (size, n_params), "lr_level": (size,), "fault_type": (size,), "fault_target": (size,),
              "fault_severity": (size,), "zoo_model": (size,), "seed": (size,), "attempt": (size,),
              "accuracy": (size, len(FAMILIES)),
              **{f"{name}.{f}": (size, pool) for name in _FAMILY_FIELDS for f in FAMILIES}}

    def check(tensors: dict[str, torch.Tensor]) -> None:
        for name, shape in shapes.items():
            if name not in tensors or tuple(tensors[name].shape) != shape:
                raise ValueError(f"bank tensor {name} missing or not of shape {shape}")
        kinds = tensors["fault_type"]
        if kinds.min() < 0 or kinds.max() >= len(FAULT_NAMES) or tensors["zoo_model"].max() >= len(ctx.zoo_params):
            raise ValueError("bank fault types or zoo models out of range")

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        tensors = build_instances(ctx, config, split, progress)
        return tensors, {"drop": _drop_summary(ctx, tensors)}

    manifest = {"format": BANK_FORMAT, "preset": ctx.preset.name, "split": split, "size": size, "zoo": zoo_hash,
                "bank": dataclasses.asdict(config), "dynamics": dataclasses.asdict(ctx.dynamics),
                "config_hash": _bank_hash(ctx, config, split, zoo_hash)}
    tensors, manifest = load_or_build(path, manifest, build, check, "instance bank")
    bank = InstanceBank(split, {k: v.to(ctx.device) for k, v in tensors.items()}, manifest, path)
    _OPEN_BANKS[key] = bank
    return bank


def _drop_summary(ctx: RepairContext, tensors: dict[str, torch.Tensor]) -> dict:
    """Per fault type: how many instances, and the mean and least worst-family accuracy drop at reset."""
    healthy = validation_accuracy(ctx, ctx.zoo_params, ctx.zoo_fact_tables).cpu()[tensors["zoo_model"]]
    drop = (healthy - tensors["accuracy"]).max(1).values
    out = {}
    for k, name in enumerate(FAULT_NAMES):
        rows = tensors["fault_type"] == k
        if rows.any():
            out[name] = {"n": int(rows.sum()), "mean_drop": float(drop[rows].mean()),
                         "min_drop": float(drop[rows].min()), "redrawn": int((tensors["attempt"][rows] > 0).sum())}
    return out


def _check_split(split: str) -> str:
    if split not in BANK_SPLITS:
        raise ValueError(f"unknown bank split {split!r}; expected one of {BANK_SPLITS}")
    return split


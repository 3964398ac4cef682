"""The model zoo: healthy base models per preset, trained deterministically and cached on disk.

All models of a zoo train in one batched run from one seed. A built zoo is a folder
``<cache>/<preset>-<config hash>-seed<seed>/`` holding ``weights.safetensors`` (every parameter with the
model axis first, plus each model's fact table) and ``manifest.json`` (configs, seed, per-family metrics,
package and torch versions, sha256 of the weights). The cache root is ``$LLM_REPAIR_GYM_CACHE`` or the
user's cache directory; :mod:`llm_repair_gym.runtime.cache` verifies every load and keeps concurrent builders safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from llm_repair_gym.lm import optim
from llm_repair_gym.lm.metrics import evaluate
from llm_repair_gym.lm.model import ParamLayout, Params, init_params, param_shapes
from llm_repair_gym.lm.presets import Preset, get_preset
from llm_repair_gym.lm.tasks import FAMILIES, SPLITS, TaskSuite
from llm_repair_gym.lm.training import train_step, warmup_cosine
from llm_repair_gym.runtime.cache import cache_root, config_hash, load_or_build

ZOO_FORMAT = 3  # bump when training changes what a zoo of a given config contains
FACT_TABLES = "fact_tables"


def zoo_hash(preset: Preset, seed: int) -> str:
    """Short hash of everything that determines a zoo's weights."""
    return config_hash({"format": ZOO_FORMAT, "model": preset.model.to_dict(), "tasks": preset.tasks.to_dict(),
                        "zoo": preset.zoo.__dict__, "seed": seed})


@dataclass
class Zoo:
    """A loaded zoo: ``params`` and ``fact_tables`` carry the model axis first (``[M, ...]``)."""

    preset: Preset
    seed: int
    params: Params
    fact_tables: torch.Tensor
    manifest: dict
    path: Path

    @property
    def num_models(self) -> int:
        return self.fact_tables.shape[0]

    @property
    def flat(self) -> torch.Tensor:
        """Every model's parameters as one flat row ``[M, P]`` (see :class:`ParamLayout`)."""
        return ParamLayout.of(self.preset.model).flatten(self.params)

    def accuracy(self, split: str = "test") -> dict[str, list[float]]:
        """Exact-match accuracy of every model per family, as measured when the zoo was built."""
        return {f: self.manifest["metrics"][split][f]["accuracy"] for f in FAMILIES}

    def select(self, model_ids: torch.Tensor | list[int],
               device: torch.device | str = "cpu") -> tuple[Params, torch.Tensor]:
        """Copies of the chosen models' parameters and fact tables, stacked on a new env axis."""
        ids = torch.as_tensor(model_ids, dtype=torch.long)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_models):
            raise ValueError(f"zoo model ids must lie in [0, {self.num_models}), got {ids.tolist()}")
        params = {name: t[ids].to(device) for name, t in self.params.items()}
        return params, self.fact_tables[ids].to(device)

    def report(self) -> str:
        """A table of every model's test accuracy per family, with the time the (possibly cached) build took."""
        acc = self.accuracy("test")
        lines = [f"zoo {self.preset.name} seed={self.seed} models={self.num_models} "
                 f"(this cache took {self.manifest['build_seconds']:.1f}s to build) ({self.path})",
                 "model  " + "  ".join(f"{f:>7}" for f in FAMILIES)]
        lines += [f"{i:>5}  " + "  ".join(f"{acc[f][i]:7.4f}" for f in FAMILIES) for i in range(self.num_models)]
        lines.append("  min  " + "  ".join(f"{min(acc[f]):7.4f}" for f in FAMILIES))
        return "\n".join(lines)


def train_zoo(preset: str | Preset, seed: int = 0, device: torch.device | str = "cpu",
              progress: bool = True) -> tuple[Params, torch.Tensor, dict]:
    """Train a preset's zoo from ``seed`` in one batched run. Returns params, fact tables and metrics."""
    preset = get_preset(preset)
    cfg, train = preset.model, preset.zoo
    suite = TaskSuite(preset.tasks, device)
    init_gen = torch.Generator().manual_seed(seed)
    layout = ParamLayout.of(cfg)
    flat = layout.flatten(init_params(cfg, train.num_models, init_gen, device))
    params = layout.views(flat)
    fact_tables = suite.sample_fact_tables(train.num_models, init_gen)
    batch_gen = torch.Generator(device=device).manual_seed(seed + 1)
    state = optim.init_state(flat, cfg.n_groups, "adamw", train.lr, train.weight_decay)
    bar = tqdm(range(train.steps), desc=f"zoo {preset.name} x{train.num_models}", disable=not progress)
    for step in bar:
        state.lr.fill_(train.lr * warmup_cosine(step, train.steps, train.warmup_steps))
        parts = [suite.sample(f, "train", fact_tables, train.batch_per_family, batch_gen) for f in FAMILIES]
        loss = train_step(flat, cfg, state, parts)
        if step % 50 == 0 or step == train.steps - 1:
            bar.set_postfix(loss=f"{loss.mean().item():.4f}")
    metrics = {split: {family: {"accuracy": s.accuracy.tolist(), "loss": s.loss.tolist(),
                                "macro_f1": s.macro_f1.tolist()}
                       for family, s in evaluate(params, cfg, suite, split, fact_tables).items()}
               for split in SPLITS[1:]}
    return params, fact_tables, metrics


def zoo_path(preset: str | Preset, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """The folder a zoo is cached in."""
    preset = get_preset(preset)
    return cache_root(cache_dir) / f"{preset.name}-{zoo_hash(preset, seed)}-seed{seed}"


def _check(preset: Preset, tensors: dict[str, torch.Tensor]) -> None:
    n = preset.zoo.num_models
    for name, shape in param_shapes(preset.model).items():
        if name not in tensors or tuple(tensors[name].shape) != (n, *shape):
            raise ValueError(f"parameter {name} missing or of the wrong shape")
    if FACT_TABLES not in tensors or tuple(tensors[FACT_TABLES].shape) != (n, preset.tasks.fact_keys):
        raise ValueError("fact tables missing or of the wrong shape")


def load_zoo(preset: str | Preset = "tiny", seed: int = 0, cache_dir: str | Path | None = None,
             device: torch.device | str = "cpu", progress: bool = True, rebuild: bool = False) -> Zoo:
    """The zoo of ``preset`` and ``seed``: loaded from the cache when valid, else built (and cached).

    ``rebuild=True`` trains afresh even over a valid cache. Models are trained on ``device`` and the
    returned tensors live there.
    """
    preset = get_preset(preset)
    path = zoo_path(preset, seed, cache_dir)

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        params, fact_tables, metrics = train_zoo(preset, seed, device, progress)
        return {**params, FACT_TABLES: fact_tables}, {"metrics": metrics}

    manifest = {"format": ZOO_FORMAT, "preset": preset.name, "seed": seed, "config_hash": zoo_hash(preset, seed),
                "model": preset.model.to_dict(), "tasks": preset.tasks.to_dict(), "zoo": preset.zoo.__dict__,
                "num_models": preset.zoo.num_models}
    tensors, manifest = load_or_build(path, manifest, build, lambda t: _check(preset, t), "zoo", rebuild)
    # safetensors returns a hash-ordered dict: restore the canonical order, which fixes the order of
    # every per-parameter operation downstream (and so determinism).
    params = {name: tensors[name].to(device) for name in param_shapes(preset.model)}
    return Zoo(preset, seed, params, tensors[FACT_TABLES].to(device), manifest, path)

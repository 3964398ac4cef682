"""The model zoo: healthy base models per preset, trained deterministically and cached on disk.

All models of a zoo train in one batched run from one seed. A built zoo is a folder
``<cache>/<preset>-<config hash>-seed<seed>/`` holding ``weights.safetensors`` (every parameter with the
model axis first, plus each model's fact table) and ``manifest.json`` (configs, seed, per-family metrics,
package and torch versions, sha256 of the weights). The cache root is ``$LLM_REPAIR_GYM_CACHE`` or the
user's cache directory.

Loading verifies the manifest, the config hash and the checksum; a missing, corrupt, truncated or
mismatched zoo is rebuilt with a warning, never used. A file lock serialises builders, and a finished zoo
is moved into place with one atomic rename, so concurrent processes never see half a zoo.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load, save_file
from tqdm.auto import tqdm

from llm_repair_gym import __version__, optim
from llm_repair_gym.metrics import evaluate
from llm_repair_gym.model import Params, init_params, param_shapes
from llm_repair_gym.presets import Preset, get_preset
from llm_repair_gym.tasks import FAMILIES, SPLITS, Batch, TaskSuite
from llm_repair_gym.training import train_step, warmup_cosine

ZOO_FORMAT = 2  # bump when training changes what a zoo of a given config contains
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
FACT_TABLES = "fact_tables"
CACHE_ENV_VAR = "LLM_REPAIR_GYM_CACHE"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where zoos live: ``cache_dir``, else ``$LLM_REPAIR_GYM_CACHE``, else the user cache directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llm-repair-gym"))


def config_hash(preset: Preset, seed: int) -> str:
    """Short hash of everything that determines a zoo's weights."""
    blob = json.dumps({"format": ZOO_FORMAT, "model": preset.model.to_dict(), "tasks": preset.tasks.to_dict(),
                       "zoo": preset.zoo.__dict__, "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
    params = init_params(cfg, train.num_models, init_gen, device)
    fact_tables = suite.sample_fact_tables(train.num_models, init_gen)
    batch_gen = torch.Generator(device=device).manual_seed(seed + 1)
    state = optim.init_state(params, cfg.n_groups, "adamw", train.lr, train.weight_decay)
    bar = tqdm(range(train.steps), desc=f"zoo {preset.name} x{train.num_models}", disable=not progress)
    for step in bar:
        state.lr.fill_(train.lr * warmup_cosine(step, train.steps, train.warmup_steps))
        batch = Batch.cat([suite.sample(f, "train", fact_tables, train.batch_per_family, batch_gen)
                           for f in FAMILIES])
        loss = train_step(params, cfg, state, batch)
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
    return cache_root(cache_dir) / f"{preset.name}-{config_hash(preset, seed)}-seed{seed}"


def _load_verified(path: Path, preset: Preset, seed: int, device: torch.device | str) -> Zoo:
    """Load a cached zoo, raising ``ValueError`` with the reason when anything does not check out."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable manifest: {err}") from err
    if manifest.get("config_hash") != config_hash(preset, seed):
        raise ValueError(f"config hash {manifest.get('config_hash')} != expected {config_hash(preset, seed)}")
    expected_sha = manifest.get("files", {}).get(WEIGHTS_FILE)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{WEIGHTS_FILE} is missing")
    data = weights.read_bytes()  # hash and parse the same bytes; no mmap a later writer could pull away
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise ValueError(f"{WEIGHTS_FILE} checksum does not match the manifest")
    tensors = load(data)
    n = preset.zoo.num_models
    for name, shape in param_shapes(preset.model).items():
        if name not in tensors or tuple(tensors[name].shape) != (n, *shape):
            raise ValueError(f"parameter {name} missing or of the wrong shape")
    if FACT_TABLES not in tensors or tuple(tensors[FACT_TABLES].shape) != (n, preset.tasks.fact_keys):
        raise ValueError("fact tables missing or of the wrong shape")
    fact_tables = tensors[FACT_TABLES].to(device)
    # safetensors returns a hash-ordered dict: restore the canonical order, which fixes the order of
    # every per-parameter random draw downstream (and so determinism).
    params = {name: tensors[name].to(device) for name in param_shapes(preset.model)}
    return Zoo(preset, seed, params, fact_tables, manifest, path)


def _write(path: Path, preset: Preset, seed: int, params: Params, fact_tables: torch.Tensor,
           metrics: dict, build_seconds: float) -> None:
    """Write a zoo into a scratch folder beside ``path`` and rename it into place atomically."""
    scratch = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in params.items()}
    tensors[FACT_TABLES] = fact_tables.cpu().contiguous()
    save_file(tensors, scratch / WEIGHTS_FILE, metadata={"preset": preset.name, "seed": str(seed)})
    manifest = {
        "format": ZOO_FORMAT,
        "preset": preset.name,
        "seed": seed,
        "config_hash": config_hash(preset, seed),
        "model": preset.model.to_dict(),
        "tasks": preset.tasks.to_dict(),
        "zoo": preset.zoo.__dict__,
        "num_models": preset.zoo.num_models,
        "metrics": metrics,
        "build_seconds": build_seconds,
        "package_version": __version__,
        "torch_version": torch.__version__,
        "files": {WEIGHTS_FILE: hashlib.sha256((scratch / WEIGHTS_FILE).read_bytes()).hexdigest()},
    }
    (scratch / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    if path.exists():
        shutil.rmtree(path)
    os.replace(scratch, path)


def load_zoo(preset: str | Preset = "tiny", seed: int = 0, cache_dir: str | Path | None = None,
             device: torch.device | str = "cpu", progress: bool = True, rebuild: bool = False) -> Zoo:
    """The zoo of ``preset`` and ``seed``: loaded from the cache when valid, else built (and cached).

    ``rebuild=True`` trains afresh even over a valid cache. Models are trained on ``device`` and the
    returned tensors live there.
    """
    preset = get_preset(preset)
    path = zoo_path(preset, seed, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not rebuild and path.exists():
            try:
                return _load_verified(path, preset, seed, device)
            except ValueError as err:
                warnings.warn(f"zoo cache {path} is invalid ({err}); rebuilding it", stacklevel=2)
        start = time.perf_counter()
        params, fact_tables, metrics = train_zoo(preset, seed, device, progress)
        _write(path, preset, seed, params, fact_tables, metrics, time.perf_counter() - start)
        return _load_verified(path, preset, seed, device)

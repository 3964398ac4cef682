"""A meta-learned initialization of a preset's language model: MAML over the meta-train task variants.

Each meta-update draws ``meta_batch`` meta-train variants (:mod:`llm_repair_gym.meta.tasks`), gives each a
support set of ``shots`` examples per family and a query set of ``query`` examples per family from the
variant's train split, adapts the batched model (its env axis is the task axis) with ``inner_steps`` steps
of Meta-SGD and takes an Adam step on the query loss (:mod:`llm_repair_gym.meta.maml`). The result is cached
like the zoo, as ``<cache>/maml-<preset>-<hash>-seed<seed>/`` holding ``weights.safetensors`` (the
initialization ``theta [P]`` and the learned inner rates ``inner_lr [P]``, flat in
:class:`~llm_repair_gym.lm.model.ParamLayout` order) and ``manifest.json``.

:func:`train_union` trains the comparison the MAML paper uses: one model fitted to the pooled data of the same
meta-train variants (same draws, same number of updates, plain Adam).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from llm_repair_gym.lm.model import ModelConfig, ParamLayout, init_params
from llm_repair_gym.lm.presets import Preset, get_preset
from llm_repair_gym.lm.tasks import FAMILIES, Batch, TaskSuite
from llm_repair_gym.lm.training import batch_loss
from llm_repair_gym.meta.maml import MAML, MAMLConfig
from llm_repair_gym.meta.tasks import META_TASKS_VERSION, meta_tasks, task_tables
from llm_repair_gym.runtime.cache import cache_root, config_hash, load_or_build

META_INIT_FORMAT = 1


@dataclass(frozen=True)
class MetaInitConfig:
    """How the meta-learned initialization is trained."""

    iterations: int = 2000
    meta_batch: int = 16
    shots: int = 8
    query: int = 16
    inner_lr: float = 0.1
    inner_steps: int = 1
    outer_lr: float = 1e-3
    first_order: bool = False
    meta_sgd: bool = True

    def __post_init__(self) -> None:
        if min(self.iterations, self.meta_batch, self.shots, self.query) < 1:
            raise ValueError("iterations, meta_batch, shots and query must be >= 1")
        self.maml()  # validates the MAML fields

    def maml(self) -> MAMLConfig:
        return MAMLConfig(inner_lr=self.inner_lr, inner_steps=self.inner_steps, outer_lr=self.outer_lr,
                          first_order=self.first_order, meta_sgd=self.meta_sgd)

    def to_dict(self) -> dict:
        return asdict(self)


def lm_loss(config: ModelConfig):
    """``loss(flat [T, P], parts) -> [T]``: each task's answer-token loss under its own parameters."""
    layout = ParamLayout.of(config)

    def loss(flat: torch.Tensor, parts: list[Batch]) -> torch.Tensor:
        return batch_loss(layout.views(flat), config, parts)

    return loss


def gpt2_start(preset: Preset, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One model's GPT-2 initialisation ``[P]`` drawn from ``seed``: where MAML, the union model and the random
    baseline all start."""
    return ParamLayout.of(preset.model).flatten(
        init_params(preset.model, 1, torch.Generator().manual_seed(seed), device))[0]


class VariantSampler:
    """Draws meta-batches of meta-train variants and their support and query sets (one generator)."""

    def __init__(self, suite: TaskSuite, split: str, seed: int) -> None:
        self.suite, self.tasks = suite, meta_tasks(split)
        self.facts, self.maps = task_tables(self.tasks, suite)
        self.gen = torch.Generator(device=suite.device).manual_seed(seed)

    def draw(self, meta_batch: int, sizes: tuple[int, ...]) -> list[list[Batch]]:
        """``meta_batch`` random variants and, for each entry of ``sizes``, a set of that many examples per
        family from each variant's train split."""
        pick = torch.randint(len(self.tasks), (meta_batch,), generator=self.gen, device=self.suite.device)
        facts, maps = self.facts[pick], self.maps[pick]
        return [[self.suite.sample(f, "train", facts, k, self.gen, token_maps=maps) for f in FAMILIES]
                for k in sizes]


def train_meta_init(preset: str | Preset, seed: int = 0, config: MetaInitConfig | None = None,
                    device: torch.device | str = "cpu", progress: bool = True) -> tuple[MAML, list[float]]:
    """Meta-train from GPT-2's initialisation; returns the :class:`MAML` module and its meta-loss curve."""
    preset, config = get_preset(preset), config or MetaInitConfig()
    suite = TaskSuite(preset.tasks, device)
    maml = MAML(lm_loss(preset.model), gpt2_start(preset, seed, device), config.maml())
    sampler = VariantSampler(suite, "train", seed + 1)
    curve = []
    bar = tqdm(range(config.iterations), desc=f"MAML init {preset.name}", disable=not progress, mininterval=2)
    for _ in bar:
        support, query = sampler.draw(config.meta_batch, (config.shots, config.query))
        with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention kernels have no double backward
            curve.append(maml.step(support, query, config.meta_batch))
        bar.set_postfix(query_loss=f"{curve[-1]:.3f}", refresh=False)
    return maml, curve


def train_union(preset: str | Preset, seed: int = 0, config: MetaInitConfig | None = None,
                device: torch.device | str = "cpu", progress: bool = True) -> torch.Tensor:
    """One model ``[P]`` trained with Adam on the pooled support and query sets MAML sees (same draws)."""
    preset, config = get_preset(preset), config or MetaInitConfig()
    suite = TaskSuite(preset.tasks, device)
    theta = torch.nn.Parameter(gpt2_start(preset, seed, device))
    opt = torch.optim.Adam([theta], lr=config.outer_lr)
    loss_fn = lm_loss(preset.model)
    sampler = VariantSampler(suite, "train", seed + 1)
    for _ in tqdm(range(config.iterations), desc=f"union {preset.name}", disable=not progress, mininterval=2):
        support, query = sampler.draw(config.meta_batch, (config.shots, config.query))
        pooled = [_pool(Batch.cat([s, q])) for s, q in zip(support, query)]
        opt.zero_grad(set_to_none=True)
        loss_fn(theta[None], pooled).mean().backward()
        opt.step()
    return theta.detach()


def _pool(batch: Batch) -> Batch:
    """The examples of every env of ``batch [N, B, T]`` as one env's batch ``[1, N * B, T]``."""
    return Batch(*(t.reshape(1, -1, t.shape[-1]) for t in (batch.inputs, batch.targets, batch.answer_mask)))


@dataclass
class MetaInit:
    """A loaded meta-learned initialization: ``theta [P]`` and the learned inner rates ``inner_lr [P]``."""

    preset: Preset
    seed: int
    theta: torch.Tensor
    inner_lr: torch.Tensor
    manifest: dict
    path: Path


def meta_init_path(preset: str | Preset, seed: int, config: MetaInitConfig,
                   cache_dir: str | Path | None = None) -> tuple[Path, str]:
    preset = get_preset(preset)
    digest = config_hash({"format": META_INIT_FORMAT, "model": preset.model.to_dict(),
                          "tasks": preset.tasks.to_dict(), "meta_tasks": META_TASKS_VERSION,
                          "config": config.to_dict(), "seed": seed})
    return cache_root(cache_dir) / f"maml-{preset.name}-{digest}-seed{seed}", digest


def load_meta_init(preset: str | Preset = "tiny", seed: int = 0, config: MetaInitConfig | None = None,
                   cache_dir: str | Path | None = None, device: torch.device | str = "cpu",
                   progress: bool = True, rebuild: bool = False) -> MetaInit:
    """The meta-learned initialization of ``preset``: loaded from the cache when valid, else trained (on the
    CPU, deterministically) and cached."""
    preset, config = get_preset(preset), config or MetaInitConfig()
    path, digest = meta_init_path(preset, seed, config, cache_dir)
    size = ParamLayout.of(preset.model).size

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        maml, curve = train_meta_init(preset, seed, config, "cpu", progress)
        tensors = {"theta": maml.theta.detach()[None], "inner_lr": maml.inner_lr.detach()[None]}
        return tensors, {"meta_loss_first_100": sum(curve[:100]) / len(curve[:100]),
                         "meta_loss_last_100": sum(curve[-100:]) / len(curve[-100:])}

    def check(tensors: dict[str, torch.Tensor]) -> None:
        for name in ("theta", "inner_lr"):
            if name not in tensors or tuple(tensors[name].shape) != (1, size):
                raise ValueError(f"{name} missing or not of shape [1, {size}]")

    manifest = {"format": META_INIT_FORMAT, "preset": preset.name, "seed": seed, "config_hash": digest,
                "model": preset.model.to_dict(), "meta_tasks_version": META_TASKS_VERSION,
                "config": config.to_dict()}
    tensors, manifest = load_or_build(path, manifest, build, check, "meta-learned initialization", rebuild)
    return MetaInit(preset, seed, tensors["theta"][0].to(device), tensors["inner_lr"][0].to(device), manifest, path)

"""Named presets: the model architecture, the task sizes and how the healthy zoo models are trained.

==========  =================================  ===========================================================
preset      model (layers x width, heads)       meant for
==========  =================================  ===========================================================
``nano``    2 x 32, 4 heads, 16-token context  LLMRepair-v1's default: tiny's tasks at a quarter of the
                                               block FLOPs, so CPU studies run millions of steps
``tiny``    2 x 64, 4 heads, 16-token context  v0's default: the zoo of 8 builds in minutes on 2 cores
``small``   4 x 128, 4 heads, 24-token context  a fast CPU or any GPU
``base``    6 x 256, 8 heads, 24-token context  a GPU
==========  =================================  ===========================================================

``tiny`` and ``nano`` are measured against the zoo accuracy bar (``benchmarks/zoo_report.py``); ``nano``
needs three times tiny's zoo steps to close its Dyck-2 brackets as reliably. The larger presets train the
same way with more steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llm_repair_gym.lm.model import ModelConfig
from llm_repair_gym.lm.tasks import TaskConfig


@dataclass(frozen=True)
class ZooTrainConfig:
    """How the healthy base models of a preset are trained (all of them in one batched run)."""

    num_models: int = 8
    steps: int = 800
    batch_per_family: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.num_models < 1 or self.steps < 1 or self.batch_per_family < 1:
            raise ValueError("num_models, steps and batch_per_family must be >= 1")
        if not self.lr > 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0, warmup_steps and weight_decay >= 0")


@dataclass(frozen=True)
class Preset:
    """Everything a preset fixes. ``model.vocab_size`` always equals ``tasks.vocab_size``."""

    name: str
    model: ModelConfig
    tasks: TaskConfig
    zoo: ZooTrainConfig

    def __post_init__(self) -> None:
        if self.model.vocab_size != self.tasks.vocab_size:
            raise ValueError(f"model vocab {self.model.vocab_size} != task vocab {self.tasks.vocab_size}")
        if self.model.n_ctx < self.tasks.seq_len:
            raise ValueError(f"model context {self.model.n_ctx} < task sequence length {self.tasks.seq_len}")

    def replace(self, **changes) -> Preset:
        """A copy with some fields of ``zoo`` (or whole ``model``/``tasks``/``zoo``/``name``) changed."""
        zoo_fields = {f.name for f in dataclasses.fields(ZooTrainConfig)}
        zoo_changes = {k: changes.pop(k) for k in list(changes) if k in zoo_fields}
        new = dataclasses.replace(self, **changes)
        return dataclasses.replace(new, zoo=dataclasses.replace(new.zoo, **zoo_changes)) if zoo_changes else new


def _preset(name: str, tasks: TaskConfig, n_layer: int, n_head: int, n_embd: int, n_ctx: int,
            zoo: ZooTrainConfig) -> Preset:
    model = ModelConfig(vocab_size=tasks.vocab_size, n_ctx=n_ctx, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    return Preset(name, model, tasks, zoo)


_LARGER_TASKS = TaskConfig(syntax_max_len=12, logic_list_len=5, fact_keys=128, fact_values=32)

PRESETS: dict[str, Preset] = {
    "nano": _preset("nano", TaskConfig(), 2, 4, 32, 16, ZooTrainConfig(steps=2400)),
    "tiny": _preset("tiny", TaskConfig(), 2, 4, 64, 16, ZooTrainConfig()),
    "small": _preset("small", _LARGER_TASKS, 4, 4, 128, 24,
                     ZooTrainConfig(num_models=16, steps=3000, batch_per_family=64, lr=2e-3, warmup_steps=200)),
    "base": _preset("base", _LARGER_TASKS, 6, 8, 256, 24,
                    ZooTrainConfig(num_models=32, steps=6000, batch_per_family=128, lr=1e-3, warmup_steps=400)),
}


def get_preset(preset: str | Preset) -> Preset:
    """The preset named ``preset`` (a ``Preset`` passes through)."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset]

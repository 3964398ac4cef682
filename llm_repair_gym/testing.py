"""The ``micro`` settings: LLMRepair's full mechanics at a fraction of the cost, for tests and fuzzing.

The tiny architecture, its zoo trained for 3 steps (so accuracies mean nothing), pools of 40 examples, a
12 + 6 instance bank with no minimum drop (LLMRepair-v0 and -v1; LLMMetaRepair-v0: a MAML initialization of 2
meta-updates), a filter whose judge is tuned for 2 steps on 12 trusted examples.
Every code path of the env runs, at a fraction of a tiny step's cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_repair_gym.lm.presets import Preset, get_preset
from llm_repair_gym.meta.initialization import MetaInitConfig
from llm_repair_gym.repair.dynamics import DynamicsConfig
from llm_repair_gym.repair.instances import BankConfig


def micro_preset() -> Preset:
    """The tiny architecture with a zoo of two models trained for three steps."""
    return get_preset("tiny").replace(name="micro", num_models=2, steps=3, warmup_steps=1, batch_per_family=4)


MICRO_META = MetaInitConfig(iterations=2, meta_batch=2, shots=2, query=2)
"""A meta-learned initialization that builds in a second (for LLMMetaRepair-v0's ``init="maml"``)."""


def micro_env_kwargs(cache_dir: str | Path | None = None, env_id: str = "LLMRepair-v0") -> dict[str, Any]:
    """Constructor kwargs that make a registered env micro (its zoo, bank or MAML init build in seconds)."""
    bank = BankConfig(train_size=12, test_size=6, min_drop=0.0, build_batch=12)
    per_env = {"LLMRepair-v0": {"bank": bank}, "LLMRepair-v1": {"bank": bank},
               "LLMMetaRepair-v0": {"meta_config": MICRO_META}}  # its instances are live: no bank
    name = env_id.split(":")[-1]
    if name not in per_env:
        raise ValueError(f"no micro settings for {env_id!r}; known: {sorted(per_env)}")
    return {"preset": micro_preset(), "cache_dir": None if cache_dir is None else str(cache_dir), "progress": False,
            "dynamics": DynamicsConfig(pool_size=40, batch_size=12, train_steps=2, eval_size=16, spread_size=16,
                                          trusted_size=12, trusted_steps=2),
            **per_env[name]}

"""The registered env ids, and their registration with Gymnasium (done when the package is imported)."""

import warnings

from gymnasium.envs.registration import register, registry

ENVS = {"LLMRepair-v0": "repair:LLMRepair", "LLMMetaRepair-v0": "meta_repair:LLMMetaRepair",
        "LLMRepair-v1": "repair_v1:LLMRepairV1"}
"""Registered id -> ``<module in llm_repair_gym.envs>:<class prefix>`` of its single (``Env``) and vector
(``VectorEnv``) implementations."""

CURRENT = ("LLMRepair-v0",)
"""Ids Gymnasium would call "out of date" because a later version is registered, which are not: LLMRepair-v0 is a
frozen benchmark with published boards, kept beside v1 (a harder problem, not a fix of v0)."""


def register_envs() -> None:
    """Register every id in :data:`ENVS` with ``gym.make`` and ``gym.make_vec`` (ids already there are left)."""
    for env_id, where in ENVS.items():
        if env_id not in registry:
            module, prefix = where.split(":")
            register(id=env_id, entry_point=f"llm_repair_gym.envs.{module}:{prefix}Env",
                     vector_entry_point=f"llm_repair_gym.envs.{module}:{prefix}VectorEnv", max_episode_steps=32)
    for env_id in CURRENT:  # only Gymnasium's "is out of date" notice for these ids, nothing else
        warnings.filterwarnings("ignore", message=f".*The environment {env_id} is out of date",
                                category=DeprecationWarning)

"""The registered env ids, and their registration with Gymnasium (done when the package is imported)."""

from gymnasium.envs.registration import register, registry

ENVS = {"LLMRepair-v0": "repair:LLMRepair", "LLMMetaRepair-v0": "meta_repair:LLMMetaRepair",
        "LLMRepair-v1": "repair_v1:LLMRepairV1"}
"""Registered id -> ``<module in llm_repair_gym.envs>:<class prefix>`` of its single (``Env``) and vector
(``VectorEnv``) implementations."""


def register_envs() -> None:
    """Register every id in :data:`ENVS` with ``gym.make`` and ``gym.make_vec`` (ids already there are left)."""
    for env_id, where in ENVS.items():
        if env_id not in registry:
            module, prefix = where.split(":")
            register(id=env_id, entry_point=f"llm_repair_gym.envs.{module}:{prefix}Env",
                     vector_entry_point=f"llm_repair_gym.envs.{module}:{prefix}VectorEnv", max_episode_steps=32)

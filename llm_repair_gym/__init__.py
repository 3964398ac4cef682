"""llm-repair-gym: Gymnasium environments in which a small language model with something wrong with it is
the environment and the agent is its repair process.

Importing the package registers ``LLMRepair-v0`` and ``LLMMetaRepair-v0`` (``gym.make`` and ``gym.make_vec``)
and makes processes forked from this one run torch on one thread (see :mod:`llm_repair_gym.threads`). In a
process that has not imported the package (a ``spawn`` or ``forkserver`` worker), make the env as
``"llm_repair_gym:LLMRepair-v0"``.
"""

from gymnasium.envs.registration import register, registry

from llm_repair_gym.threads import install_fork_handler

__version__ = "0.7.0"

ENVS = {"LLMRepair-v0": "repair:LLMRepair", "LLMMetaRepair-v0": "meta_repair:LLMMetaRepair"}
"""Registered id -> ``<module in llm_repair_gym.envs>:<class prefix>`` of its single (``Env``) and vector
(``VectorEnv``) implementations."""


def _register() -> None:
    for env_id, where in ENVS.items():
        if env_id not in registry:
            module, prefix = where.split(":")
            register(id=env_id, entry_point=f"llm_repair_gym.envs.{module}:{prefix}Env",
                     vector_entry_point=f"llm_repair_gym.envs.{module}:{prefix}VectorEnv", max_episode_steps=32)


_register()
install_fork_handler()

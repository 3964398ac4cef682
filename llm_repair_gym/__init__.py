"""llm-repair-gym: Gymnasium environments in which a small language model with something wrong with it is
the environment and the agent is its repair process.

Importing the package registers ``LLMRepair-v0`` and ``LLMMetaRepair-v0`` (``gym.make`` and ``gym.make_vec``)
and makes processes forked from this one run torch on one thread (see :mod:`llm_repair_gym.threads`). In a
process that has not imported the package (a ``spawn`` or ``forkserver`` worker), make the env as
``"llm_repair_gym:LLMRepair-v0"``.
"""

from gymnasium.envs.registration import register, registry

from llm_repair_gym.threads import install_fork_handler

__version__ = "0.5.0"

if "LLMRepair-v0" not in registry:
    register(
        id="LLMRepair-v0",
        entry_point="llm_repair_gym.envs.repair:LLMRepairEnv",
        vector_entry_point="llm_repair_gym.envs.repair:LLMRepairVectorEnv",
        max_episode_steps=32,
    )
if "LLMMetaRepair-v0" not in registry:
    register(
        id="LLMMetaRepair-v0",
        entry_point="llm_repair_gym.envs.meta_repair:LLMMetaRepairEnv",
        vector_entry_point="llm_repair_gym.envs.meta_repair:LLMMetaRepairVectorEnv",
        max_episode_steps=32,
    )
install_fork_handler()

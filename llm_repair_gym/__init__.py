"""llm-repair-gym: Gymnasium environments in which a small language model with something wrong with it is
the environment and the agent is its repair process.

Importing the package registers ``LLMRepair-v0`` (``gym.make`` and ``gym.make_vec``).
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.2.0"

if "LLMRepair-v0" not in registry:
    register(
        id="LLMRepair-v0",
        entry_point="llm_repair_gym.envs.repair:LLMRepairEnv",
        vector_entry_point="llm_repair_gym.envs.repair:LLMRepairVectorEnv",
        max_episode_steps=32,
    )

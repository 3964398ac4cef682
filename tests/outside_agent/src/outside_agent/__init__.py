"""An agent from outside the repository: one ``train_all``, then ``stop``, in every episode."""

import numpy as np

from llm_repair_gym.rl.agent_spec import AgentSpec


class TrainOncePolicy:
    """Plays ``train_all`` on an episode's first step and ``stop`` on every later one."""

    def __init__(self, action_names: list[str]) -> None:
        self.train, self.stop = action_names.index("train_all"), action_names.index("stop")
        self.started: np.ndarray | None = None

    def reset(self, env_mask: np.ndarray) -> None:
        if self.started is None:
            self.started = np.zeros(len(env_mask), dtype=bool)
        self.started[env_mask] = False

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        actions = np.where(self.started, self.stop, self.train)
        self.started[:] = True
        return actions


SPEC = AgentSpec("reference", "one train_all, then stop",
                 policy=lambda actions, features, seed: TrainOncePolicy(actions),
                 env_ids=("LLMRepair-v0",))

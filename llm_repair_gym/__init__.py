"""llm-repair-gym: Gymnasium environments in which a small language model with something wrong with it is
the environment and the agent is its repair process."""

__version__ = "0.1.0"

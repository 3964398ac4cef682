"""Hand-written and baseline agents for llm-repair-gym and Gymnasium classics.

``load_policy(folder)`` loads a saved agent (see :mod:`agents.loading`) as a policy that
``llm_repair_gym.rl.episodes.run_episodes`` can play.
"""

from agents.loading import load_policy, save_checkpoint

__all__ = ["load_policy", "save_checkpoint"]

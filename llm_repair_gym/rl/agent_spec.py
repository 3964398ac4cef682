"""How an agent presents itself to the runner: an :class:`AgentSpec`, registered as an entry point.

An agent joins ``llm-repair-gym run`` (and the leaderboards) by naming a spec in the ``llm_repair_gym.agents``
entry-point group of its distribution's ``pyproject.toml``; the entry point's name is the agent's name::

    [project.entry-points."llm_repair_gym.agents"]
    train_then_stop = "my_package.agent:SPEC"

Our own agents register the same way (``agents/registry.py``, listed in this repository's ``pyproject.toml``),
so the runner imports no agent code by name. Three kinds:

* ``reference``: ``policy(action_names, feature_names, run_seed)`` builds the policy to play;
* ``trained``: ``train(argv)`` is a command-line main that trains on the suite's train split; the runner calls it
  (in a fresh process) with ``script[1:]`` followed by its own flags (``--env-id``, ``--seed``, ``--num-envs``,
  ``--total-steps``, ``--eval-episodes``, ``--threads``, ``--env-kwargs``, ``--out-dir``), then
  ``load(out_dir)`` gives the policy. ``script`` names the recipe as the command line that runs it from a clone;
  it is recorded (and hashed) in every results line;
* ``checkpoint``: ``load(root / checkpoint)`` gives the policy of a carried folder; ``checkpoint`` is recorded
  in results lines, with the folder's sha256.

A policy has ``reset(env_mask)`` and ``act(obs, info)`` (:class:`llm_repair_gym.rl.episodes.VectorPolicy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AGENT_GROUP = "llm_repair_gym.agents"
"""The entry-point group the runner reads agents from."""
KINDS = ("reference", "trained", "checkpoint")
REQUIRED = {"reference": ("policy",), "trained": ("train", "load", "script"),
            "checkpoint": ("load", "checkpoint", "root")}
"""The fields each kind must set."""


@dataclass(frozen=True)
class AgentSpec:
    """What the runner needs to get one agent's policy; see the module docstring for the three kinds."""

    kind: str
    description: str
    policy: Callable[[list[str], list[str], int], Any] | None = None
    train: Callable[[list[str]], Any] | None = None
    script: tuple[str, ...] = ()
    load: Callable[[Path], Any] | None = None
    checkpoint: str | None = None
    root: Path | None = None
    env_ids: tuple[str, ...] = ("LLMRepair-v0", "LLMMetaRepair-v0")  # the envs it plays
    env_kwargs: dict = field(default_factory=dict)  # env settings that belong to the agent (training and play)
    rank: int = 1000  # listing order, which also fixes the agent's colour on boards; ties sort by name

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"AgentSpec kind must be one of {KINDS}, got {self.kind!r}")
        missing = [name for name in REQUIRED[self.kind] if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind} AgentSpec needs {', '.join(REQUIRED[self.kind])}; missing: "
                             f"{', '.join(missing)}")
        if not self.description or not self.env_ids:
            raise ValueError("an AgentSpec needs a description and at least one env id")

    @property
    def checkpoint_dir(self) -> Path:
        """The carried folder of a ``checkpoint`` agent."""
        return Path(self.root) / self.checkpoint

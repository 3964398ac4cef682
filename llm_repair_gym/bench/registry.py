"""The agents the runner knows: every :class:`~llm_repair_gym.rl.agent_spec.AgentSpec` registered in the
``llm_repair_gym.agents`` entry-point group by an installed distribution (ours in ``agents/registry.py``)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from llm_repair_gym.rl.agent_spec import AGENT_GROUP, AgentSpec


@functools.cache
def registered_agents() -> dict[str, AgentSpec]:
    """Every registered agent by name, in rank order (then by name). An entry point that does not load, or that
    names something other than an ``AgentSpec``, is an error that names it; two with one name are refused."""
    found: dict[str, AgentSpec] = {}
    for point in entry_points(group=AGENT_GROUP):
        if point.name in found:
            raise RuntimeError(f"two installed distributions register the agent {point.name!r} in {AGENT_GROUP}")
        try:
            spec = point.load()
        except Exception as err:
            raise RuntimeError(f"agent {point.name!r} ({point.value}) failed to load: {err}") from err
        if not isinstance(spec, AgentSpec):
            raise TypeError(f"agent {point.name!r} ({point.value}) is a {type(spec).__name__}, not an AgentSpec")
        found[point.name] = spec
    if not found:
        raise RuntimeError(f"no agents are registered in the {AGENT_GROUP!r} entry-point group: install the "
                           "package (pip install -e .) so that its agents register")
    return dict(sorted(found.items(), key=lambda item: (item[1].rank, item[0])))


def agent_spec(name: str) -> AgentSpec:
    """The spec of agent ``name``; ``ValueError`` naming the known agents when there is none."""
    agents = registered_agents()
    if name not in agents:
        raise ValueError(f"unknown agent {name!r}; known: {sorted(agents)}")
    return agents[name]


def agents_for(env_id: str) -> list[str]:
    """The agents that play ``env_id``, in rank order."""
    return [name for name, spec in registered_agents().items() if env_id in spec.env_ids]

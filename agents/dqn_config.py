"""Every DQN hyperparameter in one dataclass, the tuned LLMRepair settings, and one ``--flag`` per field."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass


@dataclass
class DQNConfig:
    """Every DQN hyperparameter. Defaults train CartPole-v1 stably within 100k environment steps.

    (RL Zoo's CartPole settings -- lr 2.3e-3, 128 gradient steps every 256 env steps -- reach 500 quickly
    but then oscillate between good and poor greedy policies, in Stable-Baselines3's DQN as in this one.)
    """

    learning_rate: float = 1e-3
    """Adam learning rate (the initial one when ``anneal_lr``)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over each :meth:`agents.dqn.DQNAgent.learn` call."""
    buffer_size: int = 100_000
    """Replay buffer capacity in transitions."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 1.0
    """Target update rate: 1.0 copies the online network, below 1.0 is a soft (Polyak) update."""
    target_network_frequency: int = 500
    """Environment steps between target network updates."""
    batch_size: int = 128
    """Transitions per gradient step."""
    start_e: float = 1.0
    """Initial exploration rate."""
    end_e: float = 0.02
    """Final exploration rate."""
    exploration_fraction: float = 0.2
    """Fraction of ``total_steps`` over which the exploration rate decays linearly."""
    learning_starts: int = 1_000
    """Environment steps collected before the first gradient step."""
    train_frequency: int = 4
    """Environment steps between training rounds."""
    gradient_steps: int = 1
    """Gradient steps per training round."""
    max_grad_norm: float = 10.0
    """Gradient norm clipping threshold."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the Q-network's hidden layers."""
    double_q: bool = True
    """Select next actions with the online network (double DQN) rather than the target network."""
    n_step: int = 1
    """Rewards summed before bootstrapping (n-step returns; 1 is one-step DQN)."""
    dueling: bool = False
    """Q = V(s) + A(s, a) - mean_a A(s, a): separate value and advantage heads on the shared hidden layers."""
    demo_fraction: float = 0.25
    """Share of every batch drawn from the demonstrations, once the agent has some (DQfD)."""
    demo_margin: float = 0.05
    """Margin by which a demonstrated action's value should exceed every other action's (in reward units)."""
    demo_weight: float = 1.0
    """Weight of the large-margin loss on demonstrated transitions."""
    scale_obs: bool = False
    """Map every observation feature with finite ``Box`` bounds affinely onto [-1, 1] inside the network
    (:meth:`agents.dqn.DQNAgent.for_env` reads them); for envs whose features differ in scale, like LLMRepair."""
    seed: int = 1
    """Seeds network initialisation, exploration, replay sampling and environment resets."""
    device: str = "cpu"
    """Torch device of the networks and the replay buffer, e.g. ``"cpu"`` or ``"cuda"``."""

    def __post_init__(self) -> None:
        counts = (
            "buffer_size",
            "target_network_frequency",
            "batch_size",
            "train_frequency",
            "gradient_steps",
            "n_step",
        )
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {self.demo_fraction}")
        if self.demo_margin < 0 or self.demo_weight < 0:
            raise ValueError(f"demo_margin and demo_weight must be >= 0, got {self.demo_margin}, {self.demo_weight}")


REPAIR_DQN = DQNConfig(
    learning_rate=5e-4,
    buffer_size=50_000,
    gamma=0.98,
    target_network_frequency=256,
    batch_size=128,
    end_e=0.05,
    exploration_fraction=0.5,
    learning_starts=512,
    train_frequency=16,
    gradient_steps=16,
    hidden_sizes=(128, 128),
    scale_obs=True,
)
"""DQN settings for LLMRepair-v0: env steps are dear, gradient steps cheap, so every transition is replayed
(one gradient step per env step) and the target network follows every 256 env steps."""

REPAIR_DQFD = dataclasses.replace(
    REPAIR_DQN,
    learning_rate=2.5e-4,
    buffer_size=100_000,
    target_network_frequency=1_000,
    start_e=0.1,
    end_e=0.01,
    exploration_fraction=0.3,
    hidden_sizes=(256, 256),
    n_step=3,
    dueling=True,
)
"""DQfD settings for LLMRepair-v0 (with :data:`agents.demonstrations.REPAIR_DEMONSTRATIONS`): the agent
starts from the heuristic's behaviour, so it explores little (10% -> 1%) and learns gently; 3-step returns
and a dueling head on a wider network."""


def add_config_arguments(parser: argparse.ArgumentParser, defaults: DQNConfig | None = None) -> None:
    """Add one ``--flag`` per :class:`DQNConfig` field (``--learning-rate``, ``--no-double-q``, ...),
    defaulting to the field's value in ``defaults`` (``DQNConfig()`` if omitted)."""
    defaults = defaults if defaults is not None else DQNConfig()
    for field in dataclasses.fields(DQNConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="*", default=list(default))
        else:
            parser.add_argument(flag, type=type(default), default=default)


def config_from_args(args: argparse.Namespace, **overrides: object) -> DQNConfig:
    """The :class:`DQNConfig` described by flags parsed after :func:`add_config_arguments`, with ``overrides``."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(DQNConfig)}
    values["hidden_sizes"] = tuple(values["hidden_sizes"])
    values.update(overrides)
    return DQNConfig(**values)

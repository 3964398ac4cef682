"""The trace of one episode: what each step did and what the env measured after it, as text, figure or JSON.

A :class:`Trace` holds one :class:`TraceStep` per step, the episode's start first. An env made with a
``render_mode`` appends to one trace per env and renders it (:data:`RENDERERS`);
:func:`llm_repair_gym.bench.explain.explain_episode` builds one from a replayed episode. The figures are drawn on
matplotlib's Agg canvas (no display, no pyplot state) at a size fixed by their panels, so every frame of an
episode, and of every episode, has the same shape.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llm_repair_gym.lm.tasks import FAMILIES

WIDTH_IN, PANEL_IN, AXIS_IN, DPI = 6.4, 1.6, 1.6, 100  # inches: width, per panel, title + x labels (2 panels: 640x480)


@dataclass(frozen=True)
class TraceStep:
    """One row of a trace: the action taken (None for the episode's start) and what the env measured after it."""

    action: str | None
    accuracy: dict[str, float]  # per family
    cost: float  # the safety cost of the step (accuracy lost on families that worked at reset)
    reward: float
    features: dict[str, float]  # the observation, by feature name


@dataclass
class Trace:
    """The steps of one episode so far. ``instance`` is the bank instance (-1: live); ``horizon`` the number of
    steps the figures leave room for; ``origin`` names the first row ("reset", or "restored" after
    ``set_state``)."""

    instance: int
    horizon: int
    origin: str = "reset"
    steps: list[TraceStep] = field(default_factory=list)

    def cumulative_cost(self) -> list[float]:
        """The episode's cost up to and including each step."""
        return list(itertools.accumulate(s.cost for s in self.steps))

    def labels(self) -> list[str]:
        """Each row's name: the origin, then the actions."""
        return [s.action or self.origin for s in self.steps]

    def ansi(self) -> str:
        """One line per row: step, action, per-family accuracy, the step's cost and reward (the fault is not
        shown: it is privileged)."""
        width = max(map(len, self.labels()))
        lines = []
        for t, (label, s) in enumerate(zip(self.labels(), self.steps)):
            accuracy = "  ".join(f"{f} {s.accuracy[f]:.3f}" for f in FAMILIES)
            if s.action is None:
                instance = "live" if self.instance < 0 else str(self.instance)
                lines.append(f"step {t:>2}  {label:<{width}}  {accuracy}  instance {instance}")
            else:
                lines.append(f"step {t:>2}  {label:<{width}}  {accuracy}  cost {s.cost:.3f}  reward {s.reward:+.4f}")
        return "\n".join(lines) + "\n"

    def figure(self, panels: tuple[str, ...] = ("accuracy", "cost")) -> Figure:
        """A figure with one row per panel (keys of :data:`PANELS`) over the steps, actions along the x axis."""
        unknown = [p for p in panels if p not in PANELS]
        if unknown:
            raise ValueError(f"unknown panels {unknown}; known: {list(PANELS)}")
        fig = Figure(figsize=(WIDTH_IN, AXIS_IN + PANEL_IN * len(panels)), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, panel in zip(axes, panels):
            PANELS[panel](ax, self)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        last = max(self.horizon, len(self.steps) - 1)
        axes[-1].set_xlim(-0.5, last + 0.5)
        axes[-1].set_xticks(range(len(self.steps)), self.labels(), rotation=90, fontsize=7)
        instance = f"instance {self.instance}" if self.instance >= 0 else "live instance"
        axes[0].set_title(f"{instance}, return {sum(s.reward for s in self.steps):+.4f}", fontsize=9)
        return fig

    def rgb_array(self) -> np.ndarray:
        """The default figure as an ``uint8`` array of shape ``[480, 640, 3]``."""
        fig = self.figure()
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()

    def to_json(self) -> list[dict]:
        """The rows as JSON-able dicts: the observation grouped per family, per layer and the rest, by name."""
        out = []
        for t, (s, total) in enumerate(zip(self.steps, self.cumulative_cost())):
            per_family: dict[str, dict[str, float]] = {f: {} for f in FAMILIES}
            per_layer: dict[str, dict[str, float]] = {}
            other: dict[str, float] = {}
            for name, value in s.features.items():
                kind, _, where = name.partition("/")
                if not where:
                    other[name] = float(value)
                else:
                    (per_family if where in per_family else per_layer).setdefault(where, {})[kind] = float(value)
            out.append({"step": t, "action": s.action, "accuracy": {f: float(s.accuracy[f]) for f in FAMILIES},
                        "family_features": per_family, "layer_features": per_layer, "other_features": other,
                        "cost": float(s.cost), "reward": float(s.reward), "cumulative_cost": float(total)})
        return out


def _legend(ax: Axes) -> None:
    """The panel's legend right of its axes: it never hides a line, and stays put from frame to frame."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def _accuracy_panel(ax: Axes, trace: Trace) -> None:
    for f in FAMILIES:
        ax.plot([s.accuracy[f] for s in trace.steps], marker="o", markersize=3, label=f)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy", fontsize=8)
    _legend(ax)


LAYER_SERIES = {"log_grad_norm/": "log10 grad norm", "log_weight_rms/": "log10 weight RMS"}
"""Per-layer features the layer panel draws, the first an env observes (v1 measures gradients only in a probe)."""


def _grad_norm_panel(ax: Axes, trace: Trace) -> None:
    names = trace.steps[0].features
    prefix = next(p for p in [*LAYER_SERIES, ""] if not p or any(n.startswith(p) for n in names))
    layers = [name[len(prefix):] for name in names if prefix and name.startswith(prefix)]
    for layer in layers:
        ax.plot([s.features[prefix + layer] for s in trace.steps], marker="o", markersize=3, label=layer)
    ax.set_ylabel(LAYER_SERIES.get(prefix, "per-layer"), fontsize=8)
    if layers:
        _legend(ax)


def _cost_panel(ax: Axes, trace: Trace) -> None:
    steps = range(len(trace.steps))
    ax.bar(steps, [s.cost for s in trace.steps], color="tab:red", alpha=0.4, label="step cost")
    total = trace.cumulative_cost()
    ax.plot(steps, total, color="tab:red", marker="o", markersize=3, label="cumulative cost")
    ax.set_ylim(0, max(0.1, 1.15 * total[-1]))
    ax.set_ylabel("cost", fontsize=8)
    _legend(ax)


PANELS = {"accuracy": _accuracy_panel, "grad_norm": _grad_norm_panel, "cost": _cost_panel}
"""Panel name -> how it draws a trace on its axes."""

RENDERERS = {"ansi": Trace.ansi, "rgb_array": Trace.rgb_array}
"""Render mode -> the frame of a trace it returns (an env's ``metadata["render_modes"]``)."""


def record_steps(traces: list[Trace | None], host: np.ndarray, fresh: np.ndarray, actions: np.ndarray | None,
                 action_names: list[str], feature_names: list[str], max_steps: int, origin: str) -> None:
    """Start a fresh trace (from ``origin``) for the envs in ``fresh`` and append the step of ``actions`` to the
    others', from ``host [N, features + families + 3]``: each env's observation, per-family accuracy, reward,
    cost and instance (one copy to the host)."""
    n = len(feature_names)
    for i in np.flatnonzero(fresh if actions is None else np.ones_like(fresh)):
        row = host[i]
        if fresh[i]:  # an autoreset env's reward and cost are its last episode's: the start has none
            traces[i] = Trace(int(row[-1]), max_steps, origin)
        action, reward, cost = (None, 0.0, 0.0) if fresh[i] else \
            (action_names[actions[i]], float(row[-3]), float(row[-2]))
        traces[i].steps.append(TraceStep(action, dict(zip(FAMILIES, row[n:n + len(FAMILIES)].tolist())),
                                         cost, reward, dict(zip(feature_names, row[:n].tolist()))))

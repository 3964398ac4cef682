"""The leaderboard's plots: score intervals, performance profiles and learning curves, each agent in one colour."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from llm_repair_gym.bench.registry import registered_agents
from llm_repair_gym.bench.scores import COLUMNS, REPS
from llm_repair_gym.rl.training_log import LOG_FILE, learning_curves

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THRESHOLDS = np.linspace(-0.5, 1.25, 71)  # performance-profile thresholds


def agent_colors(agents: list[str]) -> dict[str, tuple]:
    """A colour per agent, fixed by the registered agents' order (:func:`registered_agents`) rather than by rank,
    so an agent keeps its colour on both boards and when rows are added: tab20's dark shades for the first ten,
    its light ones after; agents not registered here follow, in name order."""
    palette = matplotlib.colormaps["tab20"].colors
    known = registered_agents()
    order = [*known, *sorted(set(agents) - set(known))]
    index = {agent: order.index(agent) for agent in agents}
    return {agent: palette[(2 * i + i // 10 % 2) % 20] for agent, i in index.items()}


def plot_intervals(stats: dict, path: Path) -> Path:
    """Each agent's point estimate and 95% interval of every :data:`COLUMNS` metric, one panel per metric."""
    ranked = stats["ranking"]
    colors = agent_colors(ranked)
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 0.45 * len(ranked) + 1.2), sharey=True)
    for k, (ax, metric) in enumerate(zip(axes, COLUMNS)):
        for row, agent in enumerate(ranked):
            m = stats["metrics"][agent][metric]
            ax.plot(m["ci95"], [row, row], color=colors[agent], linewidth=6, alpha=0.6)
            ax.plot([m["point"]], [row], "k|", markersize=14)
        ax.set_title(metric)
        ax.tick_params(labelleft=k == 0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("normalized score")
    axes[0].set_yticks(range(len(ranked)), ranked)  # the axes share y: one call labels every panel's rows
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_profiles(scores: dict, ranked: list[str], path: Path, seed: int) -> Path:
    """rliable's performance profiles with 95% bootstrap bands."""
    from rliable import library as rly

    profiles, cis = {}, {}
    for agent in ranked:  # as in aggregate: each agent's bands from the seed, whatever else the board holds
        np.random.seed(seed)  # create_performance_profile bootstraps from numpy's global generator
        p, ci = rly.create_performance_profile({agent: scores[agent]}, THRESHOLDS, reps=REPS // 4)
        profiles[agent], cis[agent] = p[agent], ci[agent]
    colors = agent_colors(ranked)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for agent in ranked:
        ax.plot(THRESHOLDS, profiles[agent], label=agent, color=colors[agent])
        ax.fill_between(THRESHOLDS, cis[agent][0], cis[agent][1], color=colors[agent], alpha=0.15)
    ax.set_xlabel(r"normalized score $\tau$")
    ax.set_ylabel(r"fraction of runs x entries with score > $\tau$")
    ax.set_title("performance profiles (95% bootstrap bands)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(paths: list[str | Path], ranked: list[str], path: Path, bin_steps: int = 500) -> Path | None:
    """Mean training episode return per ``bin_steps`` env steps over seeds, for trained runs beside the results."""
    roots = sorted({Path(p).resolve().parent for p in paths if Path(p).is_dir()})
    curves = {}
    for agent in ranked:
        ends, returns = learning_curves([log for root in roots
                                         for log in sorted((root / "train").glob(f"{agent}_seed*/{LOG_FILE}"))],
                                        bin_steps)
        if len(returns):  # the agent has trained runs that finished an episode
            curves[agent] = ends, returns
    if not curves:
        return None
    colors = agent_colors(list(curves))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for agent, (ends, returns) in curves.items():
        ax.plot(ends, np.nanmean(returns, 0), label=f"{agent} ({len(returns)} runs)", color=colors[agent])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training env steps")
    ax.set_ylabel(f"training episode return (mean per {bin_steps} steps)")
    ax.set_title("learning curves of the trained agents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The training log every learner writes: a CSV of ``global_step,metric,value`` rows.

``metric`` is ``episodic_return`` or ``episodic_length`` (one pair per finished training episode, at the env
step it finished on) or a learner's own scalar (``loss``). Tabular Q, our DQN and the Stable-Baselines3 runs
all write it (``<run>/train.csv``), and the leaderboard's and benchmarks' learning curves read it back with
:func:`read_episode_returns` and bin it with :func:`learning_curves`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

LOG_FILE = "train.csv"
HEADER = ("global_step", "metric", "value")


class TrainingLog:
    """Rows of one training run's log (see the module docstring)."""

    def __init__(self, file) -> None:
        self._writer = csv.writer(file)
        self._writer.writerow(HEADER)

    def episode(self, step: int, episodic_return: float, length: int) -> None:
        """A training episode that finished at env step ``step``."""
        self._writer.writerow([int(step), "episodic_return", float(episodic_return)])
        self._writer.writerow([int(step), "episodic_length", int(length)])

    def scalar(self, step: int, metric: str, value: float) -> None:
        """A learner's own scalar (a loss) at env step ``step``."""
        self._writer.writerow([int(step), metric, float(value)])


@contextmanager
def training_log(path: str | Path | None) -> Iterator[TrainingLog]:
    """A :class:`TrainingLog` writing to ``path`` (to nowhere when ``None``), closed on exit."""
    with open(os.devnull if path is None else path, "w", newline="") as file:
        yield TrainingLog(file)


def read_episode_returns(path: str | Path) -> np.ndarray:
    """``[episodes, 2]``: the env step each training episode of the log at ``path`` finished on, and its return."""
    rows = [line.split(",") for line in Path(path).read_text().splitlines()[1:]]
    return np.array([(float(r[0]), float(r[2])) for r in rows if r[1] == "episodic_return"]).reshape(-1, 2)


def learning_curves(paths: list[str | Path], bin_steps: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Binned training returns of several runs: ``(ends [bins], returns [runs, bins])``.

    The bin that ends at step ``e`` (a multiple of ``bin_steps``) holds the training episodes that finished
    after step ``e - bin_steps`` and at or before ``e``, so a run of 4000 steps fills eight whole bins.
    ``returns`` is each run's mean return per bin, NaN where that run finished no episode in the bin; a bin
    where no run finished one is left out, so every bin has a value to average. Runs whose log holds no
    episode are left out.
    """
    if bin_steps < 1:
        raise ValueError(f"bin_steps must be a positive number of env steps, got {bin_steps}")
    runs = [points for points in map(read_episode_returns, paths) if len(points)]
    if not runs:
        return np.zeros(0), np.zeros((0, 0))
    n_bins = max(int(np.ceil(points[:, 0].max() / bin_steps)) for points in runs)
    ends = bin_steps * np.arange(1, max(n_bins, 1) + 1)
    returns = np.full((len(runs), len(ends)), np.nan)
    for row, (steps, values) in zip(returns, (points.T for points in runs)):
        index = np.searchsorted(ends, steps, side="left")
        for k in np.unique(index):
            row[k] = values[index == k].mean()
    filled = ~np.isnan(returns).all(0)
    return ends[filled], returns[:, filled]

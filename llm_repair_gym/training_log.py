"""The training log every learner writes: a CSV of ``global_step,metric,value`` rows.

``metric`` is ``episodic_return`` or ``episodic_length`` (one pair per finished training episode, at the env
step it finished on) or a learner's own scalar (``loss``). Tabular Q, our DQN and the Stable-Baselines3 runs
all write it (``<run>/train.csv``), and the leaderboard's and benchmarks' learning curves read it back with
:func:`read_episode_returns`.
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

"""The training log's binned learning curves: right-closed bins, NaN for a run's empty bin, no empty bins."""

import numpy as np
import pytest

from llm_repair_gym.rl.training_log import learning_curves, read_episode_returns, training_log


def _log(path, episodes):
    with training_log(path) as log:
        for step, episodic_return in episodes:
            log.episode(step, episodic_return, length=4)
            log.scalar(step, "loss", 99.0)
    return path


def test_episodes_fall_in_the_bin_they_finish_in_and_the_last_step_closes_the_last_bin(tmp_path):
    a = _log(tmp_path / "a.csv", [(10, 1.0), (10, 3.0), (20, 5.0), (40, 7.0)])
    b = _log(tmp_path / "b.csv", [(9, -1.0), (40, 1.0)])
    np.testing.assert_array_equal(read_episode_returns(a), [[10, 1.0], [10, 3.0], [20, 5.0], [40, 7.0]])
    ends, returns = learning_curves([a, b], bin_steps=10)
    # Bins (0, 10], (10, 20], (30, 40]: (20, 30] holds no episode of either run and is left out.
    np.testing.assert_array_equal(ends, [10, 20, 40])
    np.testing.assert_array_equal(returns, [[2.0, 5.0, 7.0], [-1.0, np.nan, 1.0]])


def test_runs_without_episodes_are_left_out_and_bad_bins_are_refused(tmp_path):
    empty = _log(tmp_path / "empty.csv", [])
    ends, returns = learning_curves([empty])
    assert ends.shape == (0,) and returns.shape == (0, 0)
    ends, returns = learning_curves([empty, _log(tmp_path / "one.csv", [(4000, 0.5)])], bin_steps=500)
    np.testing.assert_array_equal(ends, [4000])
    np.testing.assert_array_equal(returns, [[0.5]])
    with pytest.raises(ValueError, match="bin_steps must be a positive"):
        learning_curves([empty], bin_steps=0)

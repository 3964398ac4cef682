"""The benchmark: results files, the runner, verification, episode explanations and the leaderboard."""

"""The leaderboard: per-instance normalized scores, rliable aggregates, and the table and plots that show them.

    llm-repair-gym leaderboard results/leaderboard/episodes --out-dir results/leaderboard

What the board computes is in :mod:`llm_repair_gym.bench.scores`, how it is drawn in
:mod:`llm_repair_gym.bench.plots` and how it is written in :mod:`llm_repair_gym.bench.render`.

Outputs in ``--out-dir``: ``leaderboard.md`` (the table, then the runner's agents for the suite's env that
the results hold no runs of), ``leaderboard.json`` (every figure), ``leaderboard.html`` (a static page with
the table and the plots embedded, viewable offline; the page marks ``<body data-images-loaded=K>`` once its K
images have decoded, which ``tests/test_leaderboard.py`` checks in headless Chromium), and the plots as PNG:
``intervals.png``, ``profiles.png`` and, when the results directory has trained runs beside it
(``<results>/../train/<agent>_seed<s>/train.csv``), ``curves.png``. Every plot draws an agent in the same
colour (:func:`~llm_repair_gym.bench.plots.agent_colors`), whatever its rank and whichever board it is on.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from llm_repair_gym.bench.plots import plot_curves, plot_intervals, plot_profiles
from llm_repair_gym.bench.registry import agents_for
from llm_repair_gym.bench.render import html_page, markdown_table
from llm_repair_gym.bench.results import read_many
from llm_repair_gym.bench.scores import MIN_GAP, REPS, aggregate, score_matrices
from llm_repair_gym.envs.suites import load_suite


def write_leaderboard(paths: list[str | Path], out_dir: str | Path, seed: int = 0) -> dict:
    """Read results, rank the agents, write ``leaderboard.{md,json,html}`` and the plots; return the JSON."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, facts = score_matrices(read_many(paths))
    with warnings.catch_warnings():  # arch, under rliable, announces its RandomState deprecation on every call
        warnings.simplefilter("ignore", FutureWarning)
        stats = aggregate(scores, seed)
        profiles = plot_profiles(scores, stats["ranking"], out_dir / "profiles.png", seed)
    board = {**facts, **stats, "min_gap": MIN_GAP, "bootstrap_reps": REPS,
             "agents_without_runs": [a for a in agents_for(load_suite(facts["suite"]).env_id) if a not in scores]}
    images = {"intervals.png": plot_intervals(stats, out_dir / "intervals.png"),
              "profiles.png": profiles}
    curves = plot_curves(paths, stats["ranking"], out_dir / "curves.png")
    if curves:
        images["curves.png"] = curves
    board["plots"] = list(images)
    (out_dir / "leaderboard.json").write_text(json.dumps(board, indent=1) + "\n")
    (out_dir / "leaderboard.md").write_text(markdown_table(board) + "\n")
    (out_dir / "leaderboard.html").write_text(html_page(board, images))
    return board

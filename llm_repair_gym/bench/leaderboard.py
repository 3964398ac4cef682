"""The leaderboard: per-instance normalized scores, rliable aggregates, and the table and plots that show them.

    llm-repair-gym leaderboard results/leaderboard/episodes --out-dir results/leaderboard

Scores. For suite entry ``i``, an episode's normalized score is ``(R - low_i) / (high_i - low_i)``, where
``low_i`` and ``high_i`` are the mean returns on that entry, over the results' runs, of the suite's two
references: the no-op and the privileged oracle (on ``LLMMetaRepair-Suite-v0``, whose start models are not
healthy ones an oracle could return to, the no-op and the observation-only heuristic). So no-op = 0 and
oracle = 1, entry by entry. An entry where the upper reference gains less than :data:`MIN_GAP` over the
no-op (every ``none`` fault: the best repair of a healthy model is to stop) has no scale; it is left out of
the normalized aggregates, listed in the output, and the table's ``unscaled`` column shows the raw mean
return there (0 is best).

Aggregates over runs x entries, with rliable (Agarwal et al., 2021): the interquartile mean (IQM), the
mean and the optimality gap (1 - score, clipped at 1, averaged), each with a 95% stratified-bootstrap
interval over runs; the probability that an agent improves on the one ranked below it; performance profiles
(the fraction of runs x entries scoring above each threshold). Agents are ranked by IQM. Each agent's
bootstraps start from the same seed, so its figures depend on its own runs alone: adding an agent to the
results leaves every other row's intervals as they were (only the probability of improvement, which pairs
neighbours in the ranking, changes where the neighbours do).

rliable's stratified bootstrap draws a run for each entry on its own, as if one run's entries were
independent of each other. A trained agent's runs are not: a seed that trained badly is bad on every entry.
So the mean also gets a second interval, :data:`RUN_MEAN`, from resampling whole runs (each run's mean over
the entries), which is wider where training seeds differ and is the one to read when comparing learners.

Outputs in ``--out-dir``: ``leaderboard.md`` (the table, then the runner's agents for the suite's env that
the results hold no runs of), ``leaderboard.json`` (every figure), ``leaderboard.html`` (a static page with
the table and the plots embedded, viewable offline; the page marks ``<body data-images-loaded=K>`` once its K
images have decoded, which ``tests/test_leaderboard.py`` checks in headless Chromium), and the plots as PNG:
``intervals.png``, ``profiles.png`` and, when the results directory has trained runs beside it
(``<results>/../train/<agent>_seed<s>/train.csv``), ``curves.png``. Every plot draws an agent in the same
colour (:func:`agent_colors`), whatever its rank and whichever board it is on.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

from llm_repair_gym.bench.registry import agents_for, registered_agents
from llm_repair_gym.bench.results import read_many
from llm_repair_gym.envs.suites import load_suite
from llm_repair_gym.rl.training_log import LOG_FILE, learning_curves

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIN_GAP = 0.02  # an entry whose upper reference gains less than this over the no-op is not normalized
REPS = 2000  # bootstrap resamples
THRESHOLDS = np.linspace(-0.5, 1.25, 71)  # performance-profile thresholds
METRICS = ("IQM", "mean", "optimality gap")  # rliable's, with stratified-bootstrap intervals
RUN_MEAN = "mean, runs resampled"  # the mean with an interval from resampling whole runs
COLUMNS = ("IQM", "mean", RUN_MEAN, "optimality gap")  # as the table and the interval plot show them


def score_matrices(records: list[dict]) -> tuple[dict[str, np.ndarray], dict]:
    """``({agent: scores [runs, entries]}, facts)``: normalized scores over the entries the references scale.

    ``facts`` holds the suite, split, entries used and left out, and the per-agent raw figures. Every agent
    must cover the same entries in each of its runs; records of several suites or splits are refused.
    """
    keys, by_agent, entries, raw = _returns(records)
    suite, _, split = next(iter(keys))
    low_ref, high_ref = load_suite(suite).references
    low, high, scaled = _reference_bounds(raw, suite)
    scores = {agent: (x[:, scaled] - low[scaled]) / (high[scaled] - low[scaled]) for agent, x in raw.items()}
    faults = [sorted({run[i]["fault"] for run in by_agent[high_ref].values()}) for i in entries]
    facts = {"suite": suite, "suite_hash": next(iter(keys))[1], "split": split, "references": [low_ref, high_ref],
             "entries": len(entries),
             "normalized_entries": int(scaled.sum()),
             "unscaled_entries": [{"index": i, "faults": f} for i, f, s in zip(entries, faults, scaled) if not s],
             "agents": {}}
    known = registered_agents()
    for agent, runs in by_agent.items():
        flat = [r for run in runs.values() for r in run.values()]
        fault_of = np.array([[runs[s][i]["fault"] for i in entries] for s in sorted(runs)])[:, scaled]
        per_fault = {f: float(scores[agent][fault_of == f].mean()) for f in sorted(set(fault_of.ravel()))}
        unscaled = [k for k, s in enumerate(scaled) if not s]
        facts["agents"][agent] = {
            "runs": len(runs), "episodes": len(flat), "mean_return": float(raw[agent].mean()),
            "unscaled_mean_return": float(raw[agent][:, unscaled].mean()) if unscaled else None,
            "mean_steps": float(np.mean([r["steps"] for r in flat])),
            "mean_flops": float(np.mean([r["flops"] for r in flat])),
            "mean_safety_cost": float(np.mean([r["safety_cost"] for r in flat])),
            "crash_rate": float(np.mean([r["crashed"] for r in flat])),
            "stop_rate": float(np.mean([r["actions"][-1] == "stop" for r in flat])),
            "normalized_by_fault": per_fault, "config_hash": flat[0]["config_hash"],
            "package_version": flat[0]["package_version"],
            "git_commits": list(dict.fromkeys(r["git_commit"] for r in flat)),  # in run order
            "description": known[agent].description if agent in known else flat[0]["agent_config"].get(
                "description", ""),
        }
    return scores, facts


def entry_bounds(records: list[dict]) -> dict[int, tuple[float, float]]:
    """``{entry index: (low, high)}`` on every entry the references scale: the mean returns of the suite's two
    references there, which :func:`score_matrices` normalizes by (for episodes played outside the runner, as
    ``benchmarks/headroom.py`` does)."""
    keys, _, entries, raw = _returns(records)
    low, high, scaled = _reference_bounds(raw, next(iter(keys))[0])
    return {i: (float(a), float(b)) for i, a, b, s in zip(entries, low, high, scaled) if s}


def _returns(records: list[dict]) -> tuple[set, dict, list[int], dict[str, np.ndarray]]:
    """The records' (suite, hash, split), ``{agent: {seed: {entry: record}}}``, the entries, and each agent's
    returns ``[runs, entries]``; refuses records of several suites or splits and runs of other entries."""
    keys = {(r["suite"], r["suite_hash"], r["split"]) for r in records}
    if len(keys) != 1:
        raise ValueError(f"results mix suites or splits: {sorted(k[0::2] for k in keys)}; rank one at a time")
    by_agent: dict[str, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        by_agent[r["agent"]][r["seed"]][r["index"]] = r
    entries = sorted({i for runs in by_agent.values() for run in runs.values() for i in run})
    for agent, runs in by_agent.items():
        for seed, run in runs.items():
            if sorted(run) != entries:
                raise ValueError(f"{agent} seed {seed} covers {len(run)} of the {len(entries)} entries the results "
                                 "hold; every run must play the same entries")
    raw = {agent: np.array([[runs[s][i]["return"] for i in entries] for s in sorted(runs)]) for agent, runs in
           by_agent.items()}
    return keys, by_agent, entries, raw


def _reference_bounds(raw: dict[str, np.ndarray], suite: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entry: the mean returns of the suite's lower and upper references, and whether they scale it (the
    upper gains at least :data:`MIN_GAP`)."""
    low_ref, high_ref = load_suite(suite).references
    missing = [name for name in (low_ref, high_ref) if name not in raw]
    if missing:
        raise ValueError(f"no results for {missing}: the normalization needs runs of {[low_ref, high_ref]}")
    low, high = raw[low_ref].mean(0), raw[high_ref].mean(0)
    return low, high, high - low >= MIN_GAP


def aggregate(scores: dict[str, np.ndarray], seed: int = 0) -> dict:
    """IQM, mean and optimality gap with 95% stratified-bootstrap intervals, the mean with a whole-run
    interval (:func:`run_mean_interval`), ranked by IQM, and the probability of improvement of each agent over
    the next one down."""
    from rliable import library as rly
    from rliable import metrics

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])

    points, intervals = {}, {}
    for agent, x in scores.items():  # each agent's bootstrap starts from the seed: other rows never move its figures
        np.random.seed(seed)  # rliable's bootstraps draw (part of) their indices from numpy's global generator
        p, ci = rly.get_interval_estimates({agent: x}, func, reps=REPS, random_state=np.random.RandomState(seed))
        points[agent], intervals[agent] = p[agent], ci[agent]
    ranked = sorted(scores, key=lambda a: -points[a][0])
    board = {a: {m: {"point": float(points[a][k]), "ci95": [float(intervals[a][0, k]), float(intervals[a][1, k])]}
                 for k, m in enumerate(METRICS)} for a in ranked}
    for agent in ranked:
        board[agent][RUN_MEAN] = run_mean_interval(scores[agent], seed)
    improvement = []
    for upper, lower in zip(ranked, ranked[1:]):
        if scores[upper].shape[1] != scores[lower].shape[1]:
            continue
        np.random.seed(seed)
        p, ci = rly.get_interval_estimates({"pair": (scores[upper], scores[lower])},
                                           metrics.probability_of_improvement, reps=REPS // 4,
                                           random_state=np.random.RandomState(seed))
        low, high = np.ravel(ci["pair"])
        improvement.append({"agent": upper, "over": lower, "probability": float(np.ravel(p["pair"])[0]),
                            "ci95": [float(low), float(high)]})
    return {"ranking": ranked, "metrics": board, "probability_of_improvement": improvement}


def run_mean_interval(scores: np.ndarray, seed: int = 0) -> dict:
    """The mean of ``scores [runs, entries]`` with a 95% percentile interval from resampling whole runs
    (:data:`REPS` times): the spread a new set of training seeds would show."""
    per_run = scores.mean(1)
    draws = np.random.default_rng(seed).integers(0, len(per_run), (REPS, len(per_run)))
    low, high = np.percentile(per_run[draws].mean(1), [2.5, 97.5])
    return {"point": float(scores.mean()), "ci95": [float(low), float(high)]}


def write_leaderboard(paths: list[str | Path], out_dir: str | Path, seed: int = 0) -> dict:
    """Read results, rank the agents, write ``leaderboard.{md,json,html}`` and the plots; return the JSON."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, facts = score_matrices(read_many(paths))
    with warnings.catch_warnings():  # arch, under rliable, announces its RandomState deprecation on every call
        warnings.simplefilter("ignore", FutureWarning)
        stats = aggregate(scores, seed)
        profiles = _plot_profiles(scores, stats["ranking"], out_dir / "profiles.png", seed)
    board = {**facts, **stats, "min_gap": MIN_GAP, "bootstrap_reps": REPS,
             "agents_without_runs": [a for a in agents_for(load_suite(facts["suite"]).env_id) if a not in scores]}
    images = {"intervals.png": _plot_intervals(stats, out_dir / "intervals.png"),
              "profiles.png": profiles}
    curves = _plot_curves(paths, stats["ranking"], out_dir / "curves.png")
    if curves:
        images["curves.png"] = curves
    board["plots"] = list(images)
    (out_dir / "leaderboard.json").write_text(json.dumps(board, indent=1) + "\n")
    (out_dir / "leaderboard.md").write_text(markdown_table(board) + "\n")
    (out_dir / "leaderboard.html").write_text(_html(board, images))
    return board


def markdown_table(board: dict) -> str:
    """The ranked table: aggregates with intervals, raw return, raw return on unscaled entries, steps, FLOPs,
    safety cost, and the share of episodes that ended with ``stop``."""
    lines = [f"{board['suite']}, split `{board['split']}`: {board['entries']} entries "
             f"({board['normalized_entries']} normalized; {board['references'][0]} = 0, {board['references'][1]} "
             "= 1 per entry), runs per agent as "
             "listed. IQM, mean and optimality gap over runs x entries with 95% stratified-bootstrap intervals "
             f"(rliable); `{RUN_MEAN}`: the mean with a 95% interval from resampling whole runs.", "",
             "| rank | agent | runs | " + " | ".join(COLUMNS) + " | P(better than next) | return | unscaled | steps "
             "| GFLOPs | safety cost | stops |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    improvement = {p["agent"]: p for p in board["probability_of_improvement"]}
    for rank, agent in enumerate(board["ranking"], start=1):
        m, a = board["metrics"][agent], board["agents"][agent]
        cells = [_estimate(m[k]) for k in COLUMNS]
        poi = improvement.get(agent)
        none = "-" if a["unscaled_mean_return"] is None else f"{a['unscaled_mean_return']:.3f}"
        lines.append(f"| {rank} | {agent} | {a['runs']} | " + " | ".join(cells) + " | "
                     + (f"{poi['probability']:.2f} [{poi['ci95'][0]:.2f}, {poi['ci95'][1]:.2f}]" if poi else "-")
                     + f" | {a['mean_return']:.3f} | {none} | {a['mean_steps']:.1f} | {a['mean_flops'] / 1e9:.2f} | "
                     f"{a['mean_safety_cost']:.3f} | {a['stop_rate']:.2f} |")
    if board["agents_without_runs"]:
        lines += ["", _missing(board)]
    return "\n".join(lines)


def _missing(board: dict) -> str:
    """The sentence naming the runner's agents for this env that the results do not hold."""
    return f"Not on this board (the runner knows them; these results hold no runs of them): " \
           f"{', '.join(board['agents_without_runs'])}."


def _estimate(metric: dict) -> str:
    """A point estimate and its interval, as the table cells show them: ``0.45 [0.38, 0.53]``."""
    return f"{metric['point']:.2f} [{metric['ci95'][0]:.2f}, {metric['ci95'][1]:.2f}]"


def agent_colors(agents: list[str]) -> dict[str, tuple]:
    """A colour per agent, fixed by the registered agents' order (:func:`registered_agents`) rather than by rank,
    so an agent keeps its colour on both boards and when rows are added: tab20's dark shades for the first ten,
    its light ones after; agents not registered here follow, in name order."""
    palette = matplotlib.colormaps["tab20"].colors
    known = registered_agents()
    order = [*known, *sorted(set(agents) - set(known))]
    index = {agent: order.index(agent) for agent in agents}
    return {agent: palette[(2 * i + i // 10 % 2) % 20] for agent, i in index.items()}


def _plot_intervals(stats: dict, path: Path) -> Path:
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


def _plot_profiles(scores: dict, ranked: list[str], path: Path, seed: int) -> Path:
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


def _plot_curves(paths: list[str | Path], ranked: list[str], path: Path, bin_steps: int = 500) -> Path | None:
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


def _html(board: dict, images: dict[str, Path]) -> str:
    agents = board["agents"]
    head = ("rank", "agent", "runs", *COLUMNS, "return", "unscaled", "steps", "GFLOPs", "safety cost",
            "description")
    rows = []
    for rank, agent in enumerate(board["ranking"], start=1):
        m, a = board["metrics"][agent], agents[agent]
        none = "-" if a["unscaled_mean_return"] is None else f"{a['unscaled_mean_return']:.3f}"
        cells = [str(rank), agent, str(a["runs"]),
                 *(_estimate(m[k]) for k in COLUMNS),
                 f"{a['mean_return']:.3f}", none, f"{a['mean_steps']:.1f}", f"{a['mean_flops'] / 1e9:.2f}",
                 f"{a['mean_safety_cost']:.3f}", a["description"]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, path in images.items())
    if "curves.png" not in images:
        figures += "<p>No trained runs beside these results, so no learning curves.</p>"
    title = f"{board['suite']} leaderboard ({board['split']} split)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(2),td:last-child{{text-align:left}}
img{{max-width:100%}}</style></head>
<body data-images-loaded="pending">
<h1>{html.escape(title)}</h1>
<p>{board['entries']} entries, {board['normalized_entries']} normalized ({board['references'][0]} = 0,
{board['references'][1]} = 1 per entry);
IQM, mean and optimality gap over runs x entries with 95% stratified-bootstrap intervals (rliable,
{board['bootstrap_reps']} resamples); {html.escape(RUN_MEAN)}: the mean with a 95% interval from resampling
whole runs. Suite hash {html.escape(board['suite_hash'][:16])}.</p>
<table id="leaderboard"><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
{f"<p>{html.escape(_missing(board))}</p>" if board["agents_without_runs"] else ""}
{figures}
<script>
window.addEventListener("load", function () {{
  var images = Array.from(document.images);
  var ok = images.filter(function (img) {{ return img.complete && img.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + images.length);
}});
</script>
</body></html>
"""

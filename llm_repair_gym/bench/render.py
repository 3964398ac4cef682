"""The leaderboard written out: the Markdown table and the static HTML page (table and plots embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from llm_repair_gym.bench.scores import COLUMNS, RUN_MEAN


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
        poi = improvement.get(agent)
        better = f"{poi['probability']:.2f} [{poi['ci95'][0]:.2f}, {poi['ci95'][1]:.2f}]" if poi else "-"
        lead, figures = _row(board, rank, agent)
        lines.append("| " + " | ".join([*lead, better, *figures, f"{board['agents'][agent]['stop_rate']:.2f}"])
                     + " |")
    if board["agents_without_runs"]:
        lines += ["", _missing(board)]
    return "\n".join(lines)


def _missing(board: dict) -> str:
    """The sentence naming the runner's agents for this env that the results do not hold."""
    return f"Not on this board (the runner knows them; these results hold no runs of them): " \
           f"{', '.join(board['agents_without_runs'])}."


def _row(board: dict, rank: int, agent: str) -> tuple[list[str], list[str]]:
    """An agent's cells, as both the table and the page show them: rank, name, runs and the :data:`COLUMNS`
    estimates; then return, unscaled return, steps, GFLOPs and safety cost."""
    m, a = board["metrics"][agent], board["agents"][agent]
    unscaled = "-" if a["unscaled_mean_return"] is None else f"{a['unscaled_mean_return']:.3f}"
    return ([str(rank), agent, str(a["runs"]), *(_estimate(m[k]) for k in COLUMNS)],
            [f"{a['mean_return']:.3f}", unscaled, f"{a['mean_steps']:.1f}", f"{a['mean_flops'] / 1e9:.2f}",
             f"{a['mean_safety_cost']:.3f}"])


def _estimate(metric: dict) -> str:
    """A point estimate and its interval, as the table cells show them: ``0.45 [0.38, 0.53]``."""
    return f"{metric['point']:.2f} [{metric['ci95'][0]:.2f}, {metric['ci95'][1]:.2f}]"


def html_page(board: dict, images: dict[str, Path]) -> str:
    """The static page: the table with descriptions, the plots embedded as PNG, viewable offline."""
    agents = board["agents"]
    head = ("rank", "agent", "runs", *COLUMNS, "return", "unscaled", "steps", "GFLOPs", "safety cost",
            "description")
    rows = []
    for rank, agent in enumerate(board["ranking"], start=1):
        lead, figures = _row(board, rank, agent)
        cells = [*lead, *figures, agents[agent]["description"]]
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

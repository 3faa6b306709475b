"""The Pareto front of a multi-objective experiment: a figure and a table.

Its axes are the objectives and then the trade-off metrics (config ``tradeoffs``: recorded,
not optimised), :attr:`ExperimentResults.front_goals`. Every COMPLETE trial with finite values
of them is a point; the front (the feasible trials
no other feasible trial beats in every objective, :meth:`ExperimentResults.pareto_front`) is
drawn on top and, for each pair of objectives, joined in order of the first. Trials that broke
a constraint after training are crosses; those never trained (design check) or stopped
(silent network) have no objective values and are counted in the caption instead.
"""

from __future__ import annotations

import html
from itertools import combinations
from pathlib import Path

from spiketune._values import flatten
from spiketune.engine.outcome import Outcome
from spiketune.engine.results import ExperimentResults
from spiketune.report._html import fmt
from spiketune.report._plotting import literal_text, new_figure, save_png

_MAX_PANELS = 3
#: A positive objective spread over more than this ratio is drawn on a log axis: a network
#: whose activity ran away (10^28 synaptic operations) would otherwise flatten the front.
_LOG_RATIO = 1e3


@literal_text
def plot_pareto(results: ExperimentResults, path: Path) -> Path | None:
    """One panel per pair of objectives (at most three); None without a complete trial."""
    goals = results.front_goals
    points = [(r, results.objective_values(r, tradeoffs=True)) for r in results.records
              if r.outcome == Outcome.COMPLETE]
    points = [(r, v) for r, v in points if v is not None]
    if len(goals) < 2 or not points:
        return None
    front = {r.number for r in results.pareto_front(tradeoffs=True)}
    pairs = list(combinations(range(len(goals)), 2))[:_MAX_PANELS]
    fig = new_figure(figsize=(5.6 * len(pairs), 4.6))
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (i, j) in zip(axes, pairs, strict=True):
        feasible = [(r, v) for r, v in points if r.feasible is not False and r.number not in front]
        broken = [(r, v) for r, v in points if r.feasible is False]
        ours = sorted(((r, v) for r, v in points if r.number in front), key=lambda p: p[1][i])
        if feasible:
            ax.scatter([v[i] for _, v in feasible], [v[j] for _, v in feasible], s=26,
                       color="#9ecae1", edgecolors="#3182bd", label="complete trial", zorder=2)
        if broken:
            ax.scatter([v[i] for _, v in broken], [v[j] for _, v in broken], s=34, marker="x",
                       color="#d62728", label="infeasible (constraints)", zorder=2)
        if ours:
            xs, ys = [v[i] for _, v in ours], [v[j] for _, v in ours]
            ax.plot(xs, ys, color="#ff7f0e", lw=1.2, zorder=3)
            ax.scatter(xs, ys, s=46, color="#ff7f0e", edgecolors="black", lw=0.6,
                       label="Pareto front", zorder=4)
            for (r, _), x, y in zip(ours, xs, ys, strict=True):
                ax.annotate(str(r.number), (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        for axis, k in (("x", i), ("y", j)):
            getattr(ax, f"set_{axis}scale")(axis_scale([v[k] for _, v in points]))
        ax.set_xlabel(f"{goals[i][0]} ({goals[i][1]})")
        ax.set_ylabel(f"{goals[j][0]} ({goals[j][1]})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    complete = sum(1 for r in results.records if r.outcome == Outcome.COMPLETE)
    drawn = "" if len(points) == complete else f", {len(points)} drawn"
    fig.suptitle(f"Pareto front: {len(front)} of {complete} complete trials{drawn}",
                 fontsize=11)
    return save_png(fig, path)


def axis_scale(values: list[float]) -> str:
    """"log" for positive values spread over more than :data:`_LOG_RATIO`, else "linear"."""
    if not values or min(values) <= 0:
        return "linear"
    return "log" if max(values) / min(values) > _LOG_RATIO else "linear"


def pareto_caption(results: ExperimentResults) -> str:
    """What the figure leaves out: trials without objective values, by why."""
    design = sum(1 for r in results.records
                 if r.outcome == Outcome.FAILED and (r.reason or "").startswith("infeasible"))
    silent = sum(1 for r in results.records
                 if r.outcome == Outcome.EARLY_STOPPED and r.feasible is False)
    bits = []
    if design:
        bits.append(f"{design} trial{'s' if design != 1 else ''} not trained (the hardware "
                    "design check found them infeasible)")
    if silent:
        bits.append(f"{silent} stopped as silent or saturated networks")
    # complete, but a trade-off metric missing or not a finite number: off the front, said
    lacking = [r.number for r in results.records if r.outcome == Outcome.COMPLETE
               and results.objective_values(r) is not None
               and results.objective_values(r, tradeoffs=True) is None]
    if lacking:
        keys = ", ".join(k for k, _ in results.tradeoffs)
        bits.append(f"{len(lacking)} complete trial{'s' if len(lacking) != 1 else ''} without a "
                    f"finite {keys} (trial{'s' if len(lacking) != 1 else ''} "
                    f"{', '.join(map(str, lacking))})")
    goals = ", ".join(f"{d} {k}" for k, d in results.goals)
    traded = ", ".join(f"{d} {k}" for k, d in results.tradeoffs)
    against = f" Set against them, not optimised: {traded}." if traded else ""
    return (f"Objectives: {goals}.{against}"
            + (f" Not drawn: {'; '.join(bits)}." if bits else ""))


def pareto_table(results: ExperimentResults) -> str:
    """The front's trials: objective values, then parameters (HTML)."""
    front = results.pareto_front(tradeoffs=True)
    if not front:
        return "<p>No complete feasible trial yet.</p>"
    keys = [k for k, _ in results.front_goals]
    params = list(dict.fromkeys(p for r in front for p in flatten(r.parameters)))
    head = ["#", *keys, *params]
    out = ["<div class='scroll'><table class='sortable'><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in front:
        flat = flatten(r.parameters)
        cells = [r.number, *(results.objective_values(r, tradeoffs=True) or []),
                 *(flat.get(p) for p in params)]
        out.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num" data-v="{float(value)!r}">{html.escape(fmt(value))}</td>'
    return f"<td>{html.escape(fmt(value))}</td>"

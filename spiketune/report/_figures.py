"""The smaller figures: optimisation history, parameter importance, intermediate curves."""

from __future__ import annotations

from pathlib import Path

from spiketune._values import is_finite
from spiketune.engine.outcome import Outcome
from spiketune.engine.results import ExperimentResults
from spiketune.report._axes import best_intermediate
from spiketune.report._importance import Importances
from spiketune.report._plotting import literal_text, new_figure, save_png

_OUTCOME_COLORS = {Outcome.EARLY_STOPPED: "#7f7f7f", Outcome.FAILED: "#d62728"}


def best_so_far(results: ExperimentResults) -> list[tuple[int, float]]:
    """``(trial number, best objective up to it)`` after each COMPLETE feasible trial, by
    number: an infeasible trial (a constraint > 0) is never the best, as for ``best``."""
    out: list[tuple[int, float]] = []
    best: float | None = None
    better = max if results.optimize_mode == "maximize" else min
    for r in sorted(results.records, key=lambda r: r.number):
        if r.outcome == Outcome.COMPLETE and is_finite(r.value) and r.feasible is not False:
            best = float(r.value) if best is None else better(best, float(r.value))  # type: ignore[arg-type]
            out.append((r.number, best))
    return out


def _legend_corner(results: ExperimentResults) -> str:
    """Where the history's and the curves' legend goes: the late, bad corner (lower right
    when maximising), which the trials leave emptiest (a tuner's late trials, and the curves
    that go on to late steps, are near the best). A fixed place, not matplotlib's
    ``loc="best"``, which tests every drawn point against every place: seconds with
    thousands of trials."""
    return "lower right" if results.optimize_mode == "maximize" else "upper right"


@literal_text
def plot_history(results: ExperimentResults, path: Path) -> Path | None:
    """Objective per trial and the best so far (PNG), failed trials as ticks along the
    bottom; ``None`` without a finished trial."""
    from matplotlib.ticker import MaxNLocator

    done = [r for r in results.records if r.outcome.finished]
    if not done:
        return None
    fig = new_figure(figsize=(8.0, 4.6))
    ax = fig.add_subplot()
    complete = [r for r in done if r.outcome == Outcome.COMPLETE and is_finite(r.value)]
    infeasible = [r for r in complete if r.feasible is False]
    complete = [r for r in complete if r.feasible is not False]
    ax.scatter([r.number for r in complete], [r.value for r in complete], s=28, color="#1f77b4",
               label=f"objective ({results.objective_key})", zorder=3)
    if infeasible:
        ax.scatter([r.number for r in infeasible], [r.value for r in infeasible], s=30,
                   marker="x", color="#7f7f7f", label="infeasible (a constraint > 0)", zorder=3)
    tests = [r for r in complete if r.metrics and is_finite(r.metrics.get("test"))]
    if tests:
        ax.scatter([r.number for r in tests], [r.metrics["test"] for r in tests],  # type: ignore[index]
                   s=26, marker="^", color="#ff7f0e", label="test", zorder=3)
    stopped = [(r.number, best_intermediate(r, results.optimize_mode)) for r in done
               if r.outcome == Outcome.EARLY_STOPPED]
    stopped = [(n, v) for n, v in stopped if v is not None]
    if stopped:
        ax.scatter([n for n, _ in stopped], [v for _, v in stopped], s=28, facecolors="none",
                   edgecolors=_OUTCOME_COLORS[Outcome.EARLY_STOPPED],
                   label="early stopped (best reported)", zorder=3)
    curve = best_so_far(results)
    if curve:
        last = max(r.number for r in done)
        xs = [n for n, _ in curve] + [last]
        ys = [v for _, v in curve] + [curve[-1][1]]
        ax.step(xs, ys, where="post", color="#2ca02c", lw=2, label="best so far", zorder=2)
    failed = [r.number for r in done if r.outcome == Outcome.FAILED]
    if failed:  # a rug of ticks along the bottom: a line across the plot per failure would
        # cover it in red once failures are in the hundreds
        ax.plot(failed, [0.0] * len(failed), transform=ax.get_xaxis_transform(), ls="none",
                marker="|", markersize=10, markeredgewidth=1.0,
                color=_OUTCOME_COLORS[Outcome.FAILED], label="failed", zorder=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective")
    ax.set_title(f"Optimisation history ({results.optimize_mode})", fontsize=11)
    ax.grid(alpha=0.3)
    corner = _legend_corner(results)
    lowest = 0.03 if failed else 0.0  # in a lower corner: above the rug of failed trials
    ax.legend(fontsize=8, loc=corner,
              bbox_to_anchor=(1.0, lowest if corner.startswith("lower") else 1.0))
    return save_png(fig, path)


@literal_text
def plot_importance(importances: Importances, path: Path) -> Path:
    """Horizontal bars, most important on top; the method and what was left out in the title."""
    names = list(importances.values)
    fig = new_figure(figsize=(7.5, max(2.6, 0.42 * (len(names) + len(importances.left_out))
                                       + 1.6)))
    ax = fig.add_subplot()
    if names:
        ax.barh(names[::-1], [importances.values[n] for n in names[::-1]], color="#1f77b4")
        ax.set_xlim(0, max(1.0, max(importances.values.values()) * 1.05))
        for i, n in enumerate(names[::-1]):
            ax.text(importances.values[n] + 0.01, i, f"{importances.values[n]:.2f}",
                    va="center", fontsize=8)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "not enough trials to rank parameters", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("importance (sums to 1)")
    title = f"Hyperparameter importance: {importances.method}, {importances.trials} trials"
    if importances.left_out:
        by_reason: dict[str, list[str]] = {}
        for name, why in importances.left_out.items():
            by_reason.setdefault(why, []).append(name)
        title += "\nnot ranked: " + "; ".join(
            f"{', '.join(names)} ({why})" for why, names in by_reason.items()
        )
    ax.set_title(title, fontsize=9, wrap=True)
    return save_png(fig, path)


def _runs(xs: list[int], ys: list[float]) -> list[list[tuple[int, float]]]:
    """The finite stretches of one curve, as points: what a line through ``ys`` draws (a
    non-finite report breaks it, as in ``ax.plot``)."""
    runs: list[list[tuple[int, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if is_finite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if len(r) > 1]


@literal_text
def plot_intermediate(results: ExperimentResults, path: Path) -> Path | None:
    """Each trial's reported ``default`` over its reports (PNG); ``None`` when none reported.

    The curves of each kind are one collection (complete ones coloured by their objective;
    early stopped and failed ones dashed, with a cross at their last report): one artist
    per trial would take seconds to draw with thousands of trials."""
    import matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    curves = []
    for r in results.records:
        ys = [float(i["default"]) if is_finite(i.get("default")) else float("nan")
              for i in r.intermediate]
        if ys:
            curves.append((r, list(range(1, len(ys) + 1)), ys))
    if not curves:
        return None
    fig = new_figure(figsize=(8.0, 4.6))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"]
    values = [float(r.value) for r, _, _ in curves
              if r.outcome == Outcome.COMPLETE and is_finite(r.value)]
    norm = Normalize(min(values, default=0.0), max(values, default=1.0))
    best = results.best
    complete: list[list[tuple[int, float]]] = []
    colors = []
    others: dict[str, tuple[list[list[tuple[int, float]]], list[tuple[int, float]]]] = {}
    for r, xs, ys in curves:
        if r.outcome == Outcome.COMPLETE and is_finite(r.value):
            runs = _runs(xs, ys)
            complete += runs
            colors += [cmap(norm(float(r.value)))] * len(runs)
        else:
            color = _OUTCOME_COLORS.get(r.outcome, "#bcbd22")
            lines, ends = others.setdefault(color, ([], []))
            lines += _runs(xs, ys)
            ends.append((xs[-1], ys[-1]))
    if complete:
        ax.add_collection(LineCollection(complete, colors=colors, linewidths=1.3, alpha=0.9,
                                         zorder=2))
    for color, (lines, ends) in others.items():
        if lines:
            ax.add_collection(LineCollection(lines, colors=color, linewidths=1.0,
                                             linestyles="--", alpha=0.8, zorder=1))
        ax.scatter([x for x, _ in ends], [y for _, y in ends], marker="x", color=color,
                   linewidths=1.0, s=36, zorder=1)  # ax.plot's cross: 6 pt, 1 pt thick
    if best is not None:
        for r, xs, ys in curves:
            if r.number == best.number:
                ax.plot(xs, ys, color="#d62728", lw=2.6, zorder=3)
    ax.autoscale_view()
    handles = [Line2D([], [], color=cmap(0.7), lw=1.3, label="complete (colour: objective)")]
    if best is not None:
        handles.append(Line2D([], [], color="#d62728", lw=2.6, label=f"best trial ({best.number})"))
    for outcome, color in _OUTCOME_COLORS.items():
        if any(r.outcome == outcome for r, _, _ in curves):
            handles.append(Line2D([], [], color=color, ls="--", marker="x",
                                  label=outcome.value.lower().replace("_", " ")))
    ax.legend(handles=handles, fontsize=8, loc=_legend_corner(results))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("intermediate report (step)")
    ax.set_ylabel("default (validation)")
    ax.set_title("Intermediate results", fontsize=11)
    ax.grid(alpha=0.3)
    return save_png(fig, path)

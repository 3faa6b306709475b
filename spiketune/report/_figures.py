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


@literal_text
def plot_history(results: ExperimentResults, path: Path) -> Path | None:
    """Objective per trial and the best so far (PNG); ``None`` without a finished trial."""
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
    if failed:
        for n in failed:
            ax.axvline(n, color=_OUTCOME_COLORS[Outcome.FAILED], lw=0.8, ls=":", zorder=1)
        ax.plot([], [], color=_OUTCOME_COLORS[Outcome.FAILED], lw=0.8, ls=":", label="failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective")
    ax.set_title(f"Optimisation history ({results.optimize_mode})", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
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


@literal_text
def plot_intermediate(results: ExperimentResults, path: Path) -> Path | None:
    """Each trial's reported ``default`` over its reports (PNG); ``None`` when none reported."""
    import matplotlib
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
    for r, xs, ys in curves:
        if r.outcome == Outcome.COMPLETE and is_finite(r.value):
            ax.plot(xs, ys, color=cmap(norm(float(r.value))), lw=1.3, alpha=0.9, zorder=2)
        else:
            color = _OUTCOME_COLORS.get(r.outcome, "#bcbd22")
            ax.plot(xs, ys, color=color, lw=1.0, ls="--", alpha=0.8, zorder=1)
            ax.plot(xs[-1:], ys[-1:], marker="x", color=color, zorder=1)
    if best is not None:
        for r, xs, ys in curves:
            if r.number == best.number:
                ax.plot(xs, ys, color="#d62728", lw=2.6, zorder=3)
    handles = [Line2D([], [], color=cmap(0.7), lw=1.3, label="complete (colour: objective)")]
    if best is not None:
        handles.append(Line2D([], [], color="#d62728", lw=2.6, label=f"best trial ({best.number})"))
    for outcome, color in _OUTCOME_COLORS.items():
        if any(r.outcome == outcome for r, _, _ in curves):
            handles.append(Line2D([], [], color=color, ls="--", marker="x",
                                  label=outcome.value.lower().replace("_", " ")))
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("intermediate report (step)")
    ax.set_ylabel("default (validation)")
    ax.set_title("Intermediate results", fontsize=11)
    ax.grid(alpha=0.3)
    return save_png(fig, path)

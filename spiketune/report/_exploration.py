"""The exploration figure: one line per trial across parameter and accuracy axes.

Drawn twice from the same :class:`~spiketune.report._axes.Exploration`: a PNG with matplotlib
and an interactive plotly ``Parcoords`` (drag along an axis to keep only the lines crossing it
there). Lines are coloured by test accuracy (or the objective without one); grey lines have no
such value (early-stopped trials); the best trial is drawn thick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spiketune.report._axes import Exploration
from spiketune.report._plotting import literal_text, new_figure, save_png

CMAP = "viridis"
GREY = "#b0b0b0"


def _color_range(ex: Exploration) -> tuple[float, float]:
    values = [c for c in ex.colors if c is not None]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


@literal_text
def plot_exploration_png(ex: Exploration, path: Path, title: str) -> Path:
    """Draw the exploration figure as a PNG at ``path``."""
    import matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    n = len(ex.axes)
    fig = new_figure(figsize=(max(7.0, 1.35 * n + 2.5), 6.2))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[CMAP]
    norm = Normalize(*_color_range(ex))
    xs = list(range(n))
    metric_start = next((j for j, a in enumerate(ex.axes) if a.group == "metric"), None)
    if metric_start is not None:
        ax.axvspan(metric_start - 0.35, n - 1 + 0.35, color="#eef2f7", zorder=0)

    def points(i: int) -> list[tuple[float, float]]:
        return [(x, a.normalised(i)) for x, a in zip(xs, ex.axes, strict=True)]

    # Grey lines first, then by colour value, so the best trials are drawn on top.
    order = sorted(range(len(ex.lines)), key=lambda i: (ex.colors[i] is not None,
                                                        ex.colors[i] or 0.0))
    if ex.color_key is None:  # nothing to colour by: one colour for all
        grey, coloured = [], []
        ax.add_collection(LineCollection([points(i) for i in order], colors="#1f77b4",
                                         linewidths=1.4, alpha=0.85, zorder=2))
    else:
        grey = [points(i) for i in order if ex.colors[i] is None]
        coloured = [i for i in order if ex.colors[i] is not None]
    if grey:
        ax.add_collection(LineCollection(grey, colors=GREY, linewidths=1.0, linestyles="--",
                                         alpha=0.8, zorder=1))
    if coloured:
        colors = [cmap(norm(ex.colors[i])) for i in coloured]
        ax.add_collection(LineCollection([points(i) for i in coloured], colors=colors,
                                         linewidths=1.4, alpha=0.85, zorder=2))
    if ex.best is not None:
        pts = points(ex.best)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#d62728", lw=3.0, zorder=3)

    for x, a in zip(xs, ex.axes, strict=True):
        ax.plot([x, x], [0, 1], color="#333333", lw=1.0, zorder=4)
        for v, text in zip(a.tickvals, a.ticktext, strict=True):
            y = (v - a.lo) / (a.hi - a.lo)
            ax.plot([x - 0.03, x], [y, y], color="#333333", lw=0.8, zorder=4)
            ax.text(x - 0.05, y, text, ha="right", va="center", fontsize=7, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.7})
    ax.set_xlim(-0.6, n - 1 + 0.4 if n > 1 else 0.6)
    ax.set_ylim(-0.04, 1.04)
    ax.set_yticks([])
    ax.set_xticks(xs, [a.label for a in ex.axes], rotation=25 if n > 5 else 0,
                  ha="right" if n > 5 else "center", fontsize=9)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(title, fontsize=11)
    if ex.color_key is not None:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=ex.color_label,
                     fraction=0.03, pad=0.02)
    handles = []
    if ex.best is not None:
        handles.append(Line2D([], [], color="#d62728", lw=3,
                              label=f"best trial ({ex.lines[ex.best].number})"))
    if grey:
        handles.append(Line2D([], [], color=GREY, ls="--", label=f"no {ex.color_label} value"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12 if n > 5 else
                  -0.08), ncol=2, fontsize=8, frameon=False)
    return save_png(fig, path)


def exploration_figure(ex: Exploration, title: str) -> Any:
    """The interactive plotly figure (a ``Parcoords`` with a leading trial-number axis)."""
    import plotly.colors
    import plotly.graph_objects as go

    numbers = [float(line.number) for line in ex.lines]
    dims: list[dict[str, Any]] = [{"label": "trial", "values": numbers}]
    for a in ex.axes:
        dims.append({
            "label": a.label,
            "values": a.positions,
            "range": [a.lo, a.hi],
            "tickvals": a.tickvals,
            "ticktext": a.ticktext,
        })
    lo, hi = _color_range(ex)
    # Lines without a colour value sit just below the range, on a grey band of the scale.
    below = lo - 0.05 * (hi - lo)
    values = [below if c is None else c for c in ex.colors]
    scale = plotly.colors.get_colorscale(CMAP.capitalize())
    split = (lo - below) / (hi - below)
    colorscale = [[0.0, GREY], [split, GREY]] + [
        [split + (1 - split) * float(p), c] for p, c in scale
    ]
    line: dict[str, Any] = {"color": values, "colorscale": colorscale, "cmin": below, "cmax": hi}
    if ex.color_key is not None:
        line.update(showscale=True, colorbar={"title": {"text": ex.color_label}})
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line, labelangle=-20,
                                 labelside="bottom"))
    fig.update_layout(
        title={"text": title},
        width=max(900, 120 * (len(dims) + 1)),
        height=560,
        margin={"l": 70, "r": 90, "t": 80, "b": 110},
        font={"size": 12},
    )
    return fig


def write_exploration_html(fig: Any, path: Path) -> Path:
    """A standalone page for the interactive figure; plotly.js is ``plotly.min.js`` beside it."""
    html = fig.to_html(include_plotlyjs="directory", full_html=True, div_id="exploration",
                       config={"displaylogo": False})
    path.write_text(html, encoding="utf-8")
    return path


def exploration_div(fig: Any) -> str:
    """The interactive figure as an HTML fragment (the page must load ``plotly.min.js``)."""
    return str(fig.to_html(include_plotlyjs=False, full_html=False,
                           div_id="exploration", config={"displaylogo": False}))

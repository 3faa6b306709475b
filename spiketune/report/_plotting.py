"""Matplotlib without pyplot: every figure gets its own Agg canvas.

No global backend is switched and no window can open, so reports build on headless machines,
in threads and beside other code that uses pyplot.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

DPI = 120


def new_figure(figsize: tuple[float, float]) -> Any:
    """A figure drawn by the Agg (raster, no display) backend, laid out to fit its labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG, through a temporary file so a reader never sees half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI)
    os.replace(tmp, path)
    return path


def literal_text(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Draw with matplotlib's maths parsing off. A figure's labels are the user's text
    (parameter names, metric keys, choice values, class names), where a ``$`` would turn
    into maths or, as ``$_^$``, into a parse error that ends the whole report. The figures'
    own ticks are plain numbers, which need no maths."""

    @functools.wraps(draw)
    def drawn(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return drawn


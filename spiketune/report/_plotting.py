"""Matplotlib without pyplot: every figure gets its own Agg canvas.

No global backend is switched and no window can open, so reports build on headless machines,
in threads and beside other code that uses pyplot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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

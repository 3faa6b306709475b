"""Reading a NIR file: :func:`read`, with one clean error for a missing or foreign file, and a
warning (not a failure) for a graph that NIR's own type check rejects."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np

from spiketune.errors import ExportError

__all__ = ["GraphTypeWarning", "check_step", "graph_step", "read"]


class GraphTypeWarning(UserWarning):
    """A graph was read although ``nir.read``'s type check rejects it: the shapes written on
    two connected nodes disagree (Rockpool 3.1 writes a LIF population's output as ``[[1]]``
    where its neighbour says ``[[1 1 1]]``). The weights and parameters are read as written;
    spiketune's simulator takes node sizes from the parameters, not from these shapes."""


def read(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """The NIR graph stored in ``path`` (an HDF5 file written by :func:`spiketune.nir.export`
    or any other NIR writer).

    When ``nir.read`` rejects the file on its type check only (connected nodes whose written
    shapes disagree), the graph is read without that check and a :class:`GraphTypeWarning`
    names the mismatch. Raises ExportError naming the path when the file does not exist or is
    not a NIR file (the ``nir`` package reports these as several kinds of OSError, KeyError or
    ValueError).
    """
    file = Path(path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise ExportError(f"{file}: {what}; expected a NIR file (HDF5)")
    try:
        return nir.read(file)
    except ValueError as err:
        if "type mismatch" not in str(err) and "type length mismatch" not in str(err):
            raise ExportError(f"{file}: not a readable NIR file (ValueError: {err})") from None
        mismatch = str(err)
    except (OSError, KeyError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ExportError(f"{file}: not a readable NIR file ({reason})") from None
    try:
        graph = nir.read(file, type_check=False)
    except (OSError, KeyError, ValueError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ExportError(f"{file}: not a readable NIR file ({reason})") from None
    warnings.warn(
        f"{file}: NIR's type check rejects this graph ({mismatch}); read without it, as "
        "written",
        GraphTypeWarning,
        stacklevel=2,
    )
    return graph


def graph_step(graph: nir.NIRGraph, dt: float | None, what: str = "its time constants") -> float:
    """The step in seconds that ``graph``'s ``what`` are read against: ``dt`` when given,
    else the graph's ``metadata["dt"]`` (spiketune's exports write one, most other writers
    do not); an ExportError when there is none, or when it is not a number of seconds > 0
    (a zero, negative or NaN step would give a simulation without meaning, not an error)."""
    if dt is None:
        value = (graph.metadata or {}).get("dt")
        if value is None:
            raise ExportError(
                f"the graph's metadata has no 'dt' (the integration step {what} are read "
                "against): pass dt=<seconds>, e.g. dt=1e-4 for a graph made for snnTorch, "
                "dt=1e-3 for Norse's default"
            )
        try:
            dt = float(np.asarray(value))
        except (TypeError, ValueError):
            raise ExportError(f"the graph's metadata 'dt' = {value!r} is not a number of "
                              "seconds") from None
    return check_step(dt)


def check_step(dt: Any) -> float:
    """``dt`` as a step in seconds: a finite number > 0, else an ExportError saying so."""
    if isinstance(dt, bool) or not (isinstance(dt, int | float) and np.isfinite(dt) and dt > 0):
        raise ExportError(f"dt={dt!r}: the integration step must be a number of seconds > 0")
    return float(dt)

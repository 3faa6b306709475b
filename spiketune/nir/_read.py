"""Reading a NIR file: :func:`read`, with one clean error for a missing or foreign file, and a
warning (not a failure) for a graph that NIR's own type check rejects."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nir

from spiketune.errors import ExportError

__all__ = ["GraphTypeWarning", "read"]


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

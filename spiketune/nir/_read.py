"""Reading a NIR file back: :func:`read`, with one clean error for a missing or foreign file."""

from __future__ import annotations

import os
from pathlib import Path

import nir

from spiketune.errors import ExportError

__all__ = ["read"]


def read(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """The NIR graph stored in ``path`` (an HDF5 file written by :func:`spiketune.nir.export` or
    any other NIR writer).

    Raises ExportError naming the path when the file does not exist or is not a NIR file (the
    ``nir`` package reports these as several kinds of OSError, KeyError or ValueError).
    """
    file = Path(path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise ExportError(f"{file}: {what}; expected a NIR file (HDF5)")
    try:
        return nir.read(file)
    except (OSError, KeyError, ValueError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ExportError(f"{file}: not a readable NIR file ({reason})") from None

"""The Braille letters as analog frames: the raw 40 Hz taxel readings, resampled to time steps.

Besides the event files, the Braille archive holds the recordings the events were made from:
per sample a letter, a ``[T, 12]`` array of taxel readings (``taxel_data``, 12 taxels, 40 Hz)
and, in the tables the dataset's scripts read, the time of each reading. This module reads
such a table (a pickled pandas ``DataFrame`` or a list of dicts, through the allow-list of
``_safe_pickle``), checks it, and resamples each sample onto the time grid of a ``Dataset``.
Which letters become which labels is decided in ``_braille``, with the event data's rules.

Resampling rule (``resample``): step ``j`` takes the value of the recording at the instant
``t_j = j * bin_size`` seconds, linearly interpolated between the two readings around
``t_j``; after the last reading the last value is held. Why linear: the sigma-delta encoding
of the event files (and ``sigma_delta_encode``) takes the signal between two readings as a
straight line, so frames and events describe the same signal; and at ``bin_size`` = 25 ms the
readings come back unchanged. Why hold: the readings carry a baseline, so padding with zeros
would add a step that the sensor never made. Coarser bins than 25 ms pick values at
``t_j`` without averaging (no anti-aliasing), as the rule says.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spiketune.data._safe_pickle import safe_load
from spiketune.errors import DataError

#: Taxels of the iCub fingertip: the channels of a frame.
N_TAXELS = 12
#: Nominal sampling rate of the recordings, Hz (one reading every 25 ms).
BRAILLE_FRAME_RATE = 40.0
#: Names the frame table goes by. UNCONFIRMED for record 7050094: public scripts read the
#: member ``data/data_braille_letters_raw`` of an earlier version of the archive.
FRAME_FILE_NAMES: tuple[str, ...] = ("data_braille_letters_raw", "data_braille_letters_raw.pkl")
#: Base names of the archive member ``load_braille(kind="frame")`` extracts (regex, in full).
FRAME_MEMBER_PATTERN = r"data_braille_letters_raw(\.pkl)?"

_LETTER = "letter"
_TAXELS = "taxel_data"
#: Fraction of a reading interval within which a step's instant counts as the reading's.
_SNAP = 1e-9
#: How far (as a factor) the median reading interval may stray from ``1 / rate``.
_RATE_TOLERANCE = 2.0


def _table(obj: Any, path: Path) -> tuple[str, list[str], Callable[[str], list[Any]]]:
    """The word for a field (``column`` or ``key``), the field names, and a function giving
    one field's values per sample, for a pandas table or a list of dicts."""
    if type(obj).__module__.startswith("pandas") and hasattr(obj, "columns"):
        table = obj

        def column(name: str) -> list[Any]:
            return list(table[name].tolist())

        return "column", [str(c) for c in table.columns], column
    if isinstance(obj, list):
        records = obj
        if not records:
            raise DataError(f"{path}: the list of records is empty")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise DataError(f"{path}: record {i} is a {type(record).__name__}, not a dict")

        def key(name: str) -> list[Any]:
            for i, record in enumerate(records):
                if name not in record:
                    raise DataError(f"{path}: record {i} lacks the key {name!r}")
            return [record[name] for record in records]

        return "key", [str(k) for k in records[0]], key
    raise DataError(
        f"{path}: expected a table (pandas DataFrame) or a list of dicts with "
        f"{_LETTER!r} and {_TAXELS!r}, got {type(obj).__name__}"
    )


def _time_field(names: Sequence[str], asked: bool | str, word: str, path: Path) -> str | None:
    """The field holding the reading times, or ``None`` to place reading ``k`` at ``k / rate``.

    ``asked=True`` looks for exactly one field whose name contains ``timestamp`` (any case),
    else one containing ``time``; none found is fine (``None``), several is an error.
    """
    if asked is False:
        return None
    if isinstance(asked, str):
        if asked not in names:
            raise DataError(
                f"{path}: timestamps={asked!r} names no {word}; the {word}s are {names}"
            )
        return asked
    others = [n for n in names if n not in (_LETTER, _TAXELS)]
    for part in ("timestamp", "time"):
        found = [n for n in others if part in n.lower()]
        if len(found) == 1:
            return found[0]
        if found:
            raise DataError(
                f"{path}: the {word}s {found} all look like timestamps; pass timestamps= "
                f"one {word} name, or timestamps=False to place reading k at k / rate"
            )
    return None


def check_letters(
    letters: Sequence[Any], known: Collection[str], where: str, source: str
) -> list[str]:
    """``letters`` as a list of str, each one of ``known`` (case as in the data files).

    ``where`` names an entry with ``{i}`` for its index (``"record {i}, column 'letter'"``);
    ``source`` (the file, or empty) comes first in a message.
    """
    prefix = f"{source}: " if source else ""
    out: list[str] = []
    for i, letter in enumerate(letters):
        if not isinstance(letter, str):
            raise DataError(f"{prefix}{where.format(i=i)}: a letter must be text, got {letter!r}")
        if letter not in known:
            raise DataError(
                f"{prefix}{where.format(i=i)}: unknown letter {str(letter)!r}; letters are "
                f"{', '.join(known)}"
            )
        out.append(str(letter))
    return out


def _readings(value: Any, where: str, source: str) -> np.ndarray:
    """One sample's readings as float64 ``[T, 12]``, or ``DataError`` naming the rule."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise DataError(
            f"{source}: {where}: must be a [T, {N_TAXELS}] array of numbers (T readings of "
            f"{N_TAXELS} taxels), got a ragged {type(value).__name__}"
        ) from None
    if array.dtype.kind not in "uif":
        raise DataError(
            f"{source}: {where}: must hold numbers, got dtype {array.dtype} "
            f"({type(value).__name__})"
        )
    if array.ndim != 2 or array.shape[1] != N_TAXELS or array.shape[0] < 1:
        raise DataError(
            f"{source}: {where}: must be [T, {N_TAXELS}] with T >= 1 (T readings of "
            f"{N_TAXELS} taxels), got shape {tuple(array.shape)}"
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        t, c = (int(k) for k in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: {where}: values must be finite, found {array[t, c]} at reading {t}, "
            f"taxel {c}"
        )
    return array


def _times(value: Any, n: int, rate: float, where: str, source: str) -> np.ndarray:
    """Reading times in seconds from the first one, checked against ``n`` readings and
    the nominal ``rate`` (Hz). Numbers are taken as seconds; datetime64 and timedelta64
    are converted."""
    array = np.asarray(value)
    if array.ndim != 1 or array.shape[0] != n:
        raise DataError(
            f"{source}: {where}: must hold one time per reading ([{n}] for the {n} readings "
            f"of {_TAXELS!r}), got shape {tuple(array.shape)}; pass timestamps=False to "
            "place reading k at k / rate"
        )
    if array.dtype.kind in "mM":
        seconds = (array - array[0]) / np.timedelta64(1, "s")
    elif array.dtype.kind in "uif":
        seconds = array.astype(np.float64) - float(array[0])
    else:
        raise DataError(f"{source}: {where}: must hold numbers (seconds), got dtype {array.dtype}")
    if not np.isfinite(seconds).all():
        raise DataError(f"{source}: {where}: times must be finite, got {array.tolist()}")
    steps = np.diff(seconds)
    if (steps <= 0).any():
        k = int(np.argmax(steps <= 0))
        raise DataError(
            f"{source}: {where}: times must increase strictly, but reading {k + 1} is at "
            f"{seconds[k + 1]:g} s after reading {k} at {seconds[k]:g} s"
        )
    if n > 1:
        median = float(np.median(steps))
        if not 1 / (rate * _RATE_TOLERANCE) <= median <= _RATE_TOLERANCE / rate:
            raise DataError(
                f"{source}: {where}: the median interval between readings is {median:g}, "
                f"but at rate={rate:g} Hz it must be about {1 / rate:g} s (within a factor "
                f"{_RATE_TOLERANCE:g}); times must be in seconds. Pass rate= the true rate, "
                "or timestamps=False to place reading k at k / rate"
            )
    return seconds


def read_frame_table(
    path: Path, *, known: Collection[str], timestamps: bool | str, rate: float
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Letters, readings ``[T, 12]`` (float64) and reading times (seconds from the first
    reading) of every sample of a frame table, in file order.

    The table is a pandas ``DataFrame`` or a list of dicts with the fields ``letter`` (one of
    ``known``) and ``taxel_data`` (``[T, 12]``); the times come from the field chosen by
    ``timestamps`` (see ``_time_field``), else reading ``k`` is at ``k / rate`` seconds.
    """
    word, names, values = _table(safe_load(path), path)
    missing = [n for n in (_LETTER, _TAXELS) if n not in names]
    if missing:
        raise DataError(
            f"{path}: the table lacks the {word}(s) {missing}; a frame table needs "
            f"{_LETTER!r} and {_TAXELS!r} (it has {names})"
        )
    letters = check_letters(values(_LETTER), known, f"record {{i}}, {word} {_LETTER!r}", str(path))
    field = _time_field(names, timestamps, word, path)
    samples: list[np.ndarray] = []
    times: list[np.ndarray] = []
    stamps = None if field is None else values(field)
    for i, value in enumerate(values(_TAXELS)):
        readings = _readings(value, f"record {i}, {word} {_TAXELS!r}", str(path))
        samples.append(readings)
        n = readings.shape[0]
        if stamps is None:
            times.append(np.arange(n) / rate)
        else:
            where = f"record {i}, {word} {field!r}"
            times.append(_times(stamps[i], n, rate, where, str(path)))
    return letters, samples, times


def frames_array(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """A user's ``[N, T, 12]`` frames as float64, or ``DataError`` naming the rule."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    array = np.asarray(frames)
    if array.dtype.kind not in "uif":
        raise DataError(f"frames: must hold numbers, got dtype {array.dtype}")
    if array.ndim != 3 or array.shape[2] != N_TAXELS or 0 in array.shape:
        raise DataError(
            f"frames: must be [N, T, {N_TAXELS}] with N, T >= 1 (N samples of T readings of "
            f"{N_TAXELS} taxels), got shape {tuple(array.shape)}"
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        n, t, c = (int(k) for k in np.argwhere(bad)[0])
        raise DataError(
            f"frames: values must be finite, found {array[n, t, c]} in sample {n}, reading "
            f"{t}, taxel {c}"
        )
    return array


def resample(readings: np.ndarray, times: np.ndarray, bin_size: float, n_steps: int) -> np.ndarray:
    """Readings ``[..., T, C]`` taken at ``times`` ``[T]`` (seconds, from 0, increasing) as
    ``[..., n_steps, C]`` at ``t_j = j * bin_size`` seconds: linear interpolation between the
    two readings around ``t_j``, the last reading held after the end (see the module)."""
    t = np.arange(n_steps) * bin_size
    if times.shape[0] == 1:
        return np.repeat(readings, n_steps, axis=-2)
    right = np.clip(np.searchsorted(times, t, side="right"), 1, times.shape[0] - 1)
    left = right - 1
    w = np.clip((t - times[left]) / (times[right] - times[left]), 0.0, 1.0)
    # 3 * 0.025 and 3 / 40 differ by rounding: an instant that close to a reading takes it.
    w = np.where(w < _SNAP, 0.0, np.where(w > 1.0 - _SNAP, 1.0, w))[:, None]
    return readings[..., left, :] * (1.0 - w) + readings[..., right, :] * w

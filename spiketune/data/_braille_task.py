"""The tactile Braille letters as a trial reads them: from a threshold-1 pool file or from an
event file of the archive, in the encoding a trial's options name, split for training.

The options are those a search space may choose (``BRAILLE_TASK_DEFAULTS``): ``threshold``
(sigma-delta threshold of the event file: 1, 2, 5 or 10), ``channels`` (``"split"``: ON and
OFF as 24 channels, ``"merged"``: ON | OFF as 12), ``bin_size`` (seconds, also the network's
time step), ``letters`` (``"reduced"``: Space and the vowels with Y, or ``"full"``), ``clip``
(0/1 per bin rather than event counts), and optionally ``window`` (seconds of a sample).

A pool file (``braille_reduced_th1_pool.pt``: threshold 1, merged, reduced letters, 0/1 in
5 ms bins over 1.28 s) holds one encoding; the same encoding is made from the threshold-1
event file (``load_braille(preset="nir")``), so both sources give the same tensors.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spiketune.data._base import Dataset, validate_options
from spiketune.data._braille import (
    _POOL_FILE,
    BRAILLE_LETTERS,
    BRAILLE_PRESETS,
    BrailleOptions,
    load_braille,
    load_braille_pool,
)
from spiketune.data._download import CACHE_ENV, cache_dir
from spiketune.data._parts import SPLIT_SEED, SplitParts, data_location, split_parts
from spiketune.errors import DataError

#: Environment variable naming the Braille data (an event file, a pool file, or a directory
#: holding either) when a trial is given none.
BRAILLE_DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
#: A trial's data options for an event file of the archive, when its parameters give none.
BRAILLE_TASK_DEFAULTS: dict[str, Any] = {
    "threshold": 10,
    "channels": "split",
    "bin_size": 0.02,
    "letters": "reduced",
    "clip": False,
}
#: The encoding a pool file holds (its threshold, channels and letters).
_POOL_ENCODING = (("threshold", 1), ("channels", "merged"), ("letters", "reduced"))


def is_braille_pool(location: str | os.PathLike[str] | None) -> bool:
    """Whether ``location`` is threshold-1 pool data (a TensorDataset file, or a directory
    holding ``braille_reduced_th1_pool.pt``) rather than an event file of the archive (a
    pickle). A TensorDataset file is told by its ``.pt``/``.pth`` name or by what
    ``torch.save`` writes (a zip archive, or in torch's older format a pickle that opens with
    torch's magic number), so that one saved under another name is not read as a damaged
    event file."""
    if location is None:
        return False
    location = Path(location).expanduser()
    if location.is_file():
        return (location.suffix in (".pt", ".pth") or zipfile.is_zipfile(location)
                or _torch_legacy_file(location))
    return (location / _POOL_FILE).is_file()


#: torch's older (pre-zip) format opens with this number, pickled as a 10-byte long.
_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _torch_legacy_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return _TORCH_MAGIC in head


def load_braille_encoding(
    options: Mapping[str, Any],
    location: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> Dataset:
    """The whole Braille dataset (not yet split) in the encoding ``options`` name (the keys
    of :data:`BRAILLE_TASK_DEFAULTS`, ``window`` optional), read from ``location``: a pool
    file or its directory, an event file or its directory, or ``None`` for spiketune's cache
    (downloaded there on first use unless ``download=False``).

    Pool data are rebinned to ``bin_size`` (event counts, or 0/1 with ``clip``); options a
    pool cannot have (threshold 10, say) are a :class:`~spiketune.errors.DataError` naming
    the option. A missing or unreadable file is a DataError too.
    """
    missing = [key for key in BRAILLE_TASK_DEFAULTS if key not in options]
    if missing:
        raise DataError(f"the encoding {dict(options)} lacks {', '.join(missing)}: it needs "
                        f"{', '.join(BRAILLE_TASK_DEFAULTS)} (and optionally window)")
    path = None if location is None else Path(location).expanduser()
    bin_size, clip = float(options["bin_size"]), bool(options["clip"])
    if is_braille_pool(path):
        assert path is not None
        _check_pool_options(options, path)
        return load_braille_pool(path).rebin(bin_size, clip=clip)
    return _load_archive_encoding(options, options["letters"], path, download=download)


def _load_archive_encoding(
    options: Mapping[str, Any],
    letters: Any,
    path: Path | None,
    *,
    download: bool,
) -> Dataset:
    """``letters`` of an event file (or the cache) in the encoding ``options`` name. The
    task's pool encoding (threshold 1, merged, reduced letters) is made the pool's way, 5 ms
    0/1 bins over 1.28 s rebinned, so that both sources give the same tensors; the letters
    such a task leaves out are made the same way, so that they match its steps."""
    threshold, channels = int(options["threshold"]), options["channels"]
    bin_size, clip = float(options["bin_size"]), bool(options["clip"])
    if _is_pool_encoding(options):
        native = load_braille(path, preset="nir", letters=letters, download=download,
                              progress=False)
        return native.rebin(bin_size, clip=clip)
    window = {"window": float(options["window"])} if options.get("window") is not None else {}
    return load_braille(
        path,
        threshold=threshold,
        letters=letters,
        bin_size=bin_size,
        channels=channels,
        clip=clip,
        download=download,
        progress=False,
        **window,
    )


def load_braille_split(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    env: str = BRAILLE_DATA_ENV,
    per_class: int | None = None,
    download: bool = True,
    folds: int = 1,
) -> SplitParts:
    """Load the Braille letters in the encoding ``options`` name (see
    :func:`load_braille_encoding`), then split them (see
    :func:`~spiketune.data.split_parts`: 80/10/10 % per class, seed 0, ``folds`` re-splits,
    ``per_class`` samples of each class kept first for smoke runs).

    The data are found at ``path`` (a trial's ``--data``), else at the environment variable
    ``env``, else in spiketune's cache. When none gives the file, the DataError says where it
    was looked for and names all three ways to give it.
    """
    location = data_location(path, env)
    if location is not None and is_braille_pool(location):
        _check_pool_options(options, location)  # the option's error, not the data's
    try:
        dataset = load_braille_encoding(options, location, download=download)
    except DataError as err:
        raise DataError(
            f"no Braille data ({err}). Give the pool file, the event file (or a directory "
            f"holding either) with --data PATH, or set ${env}, or let spiketune download "
            f"the event file once into its cache {cache_dir() / 'braille'} (${CACHE_ENV} "
            f"moves the cache)"
        ) from None
    return split_parts(dataset, folds=folds, per_class=per_class, seed=SPLIT_SEED)


def load_braille_other_letters(
    options: Mapping[str, Any],
    location: str | os.PathLike[str] | None = None,
    *,
    threshold: int | None = None,
    download: bool = True,
) -> Dataset:
    """The archive's letters that the task of ``options`` leaves out, in the task's encoding:
    for the reduced task, the 20 letters other than Space and the vowels with Y (4,000
    samples), labelled 0..19 in alphabet order.

    Why: a network can learn the taxels' dynamics from these letters before it learns the
    task (pretraining), and none of their samples is in the task's split, so nothing of its
    validation or test parts leaks into the network. They have the same channels, bins and
    number of steps as the task's data (``load_braille_encoding(options, location)``), so
    the input and recurrent weights carry over unchanged.

    ``threshold``: read them at another sigma-delta threshold (from that threshold's event
    file) than the task's, in the task's channels, bins and window, so that they still have
    its shape: another encoding of the same taxels, for a task whose own threshold's file is
    not at hand (a threshold-1 pool task pretrained on the threshold-10 file, whose samples
    are about ten times sparser). None: the task's threshold.

    A pool file holds only the task's 7 letters, and ``letters="full"`` leaves none out:
    both are a :class:`~spiketune.errors.DataError` that says so.
    """
    path = None if location is None else Path(location).expanduser()
    if is_braille_pool(path):
        raise DataError(
            f"the pool file {path} holds only the task's letters; the other letters come from "
            "an event file of the archive (give one, or the directory holding it)"
        )
    task = validate_options(BrailleOptions, {"letters": options["letters"]}).classes
    others = tuple(letter for letter in BRAILLE_LETTERS if letter not in task)
    if not others:
        raise DataError(f"letters={options['letters']!r} leaves no other letter of the archive")
    if threshold is not None and threshold != int(options["threshold"]):
        if _is_pool_encoding(options):
            # Made the pool's way at the other threshold (nearest 5 ms bins over 1.28 s, then
            # rebinned), so that bins, edges and steps are the task's own.
            native = load_braille(path, preset="nir", threshold=threshold, letters=others,
                                  download=download, progress=False)
            return native.rebin(float(options["bin_size"]), clip=bool(options["clip"]))
        options = {**options, "threshold": threshold}
    return _load_archive_encoding(options, others, path, download=download)


def _is_pool_encoding(options: Mapping[str, Any]) -> bool:
    """Whether ``options`` name the pool's encoding (threshold 1, merged, reduced letters)."""
    return all(options[key] == wanted for key, wanted in _POOL_ENCODING)


def _check_pool_options(options: Mapping[str, Any], location: Path) -> None:
    """Pool data hold one encoding: asking for another is the option's error, not the data's."""
    for key, wanted in _POOL_ENCODING:
        if options[key] != wanted:
            raise DataError(
                f"{key}={options[key]!r}: the pool file {location} holds threshold-1, "
                f"merged, reduced letters; {key} must be {wanted!r} with it"
            )
    window, held = options.get("window"), BRAILLE_PRESETS["nir"]["window"]
    if window is not None and not math.isclose(float(window), held):
        raise DataError(f"window={window!r}: the pool file {location} holds {held:g} s per "
                        "sample; leave window out with it")

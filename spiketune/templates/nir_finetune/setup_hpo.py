"""What a trial sets up before it trains: the data, the device, the seeds, the CPU threads.

The data are the tactile Braille letters (Müller-Cleve et al., Frontiers in Neuroscience
16:951164, 2022; Zenodo record 7050094, CC BY 4.0), reduced 7-class task (Space, A, E, I, O,
U, Y), in one of two encodings:

- **threshold 1** (the published use case's): 12 channels (ON | OFF of each taxel), 5 ms bins,
  1.28 s (256 steps), read from a pool file (``braille_reduced_th1_pool.pt``, a TensorDataset)
  or made from the archive's threshold-1 event file the same way; rebinned here to
  ``bin_size`` (5, 10 or 20 ms) as event counts, or 0/1 with ``clip``;
- **threshold 10**, ON/OFF split (24 channels), from the archive's threshold-10 event file.

A pool file (a ``.pt`` file, or a directory holding ``braille_reduced_th1_pool.pt``) implies
threshold 1; an event file follows the ``threshold`` option.

**The split.** The test part is ``stratified_split(labels, (0.8, 0.1, 0.1), seed=0).test``,
fixed before any run and never changed; ``BrailleData.split_digest`` (the digest of that
split) names it in every result. ``load_data(folds=k)`` also makes k stratified re-splits of
the remaining samples (disjoint validation parts, ``stratified_resplits``; the first is the
split itself); this template's trial does not use them: it is judged on the split's
validation part alone.

Where the data are found, first hit wins:

1. the ``path`` given (``main.py --data PATH`` or ``main_hpo.py --data PATH``: a pool file, an
   event file, or a directory holding either);
2. ``$SPIKETUNE_BRAILLE_TH1_DATA`` (the same, from the environment);
3. spiketune's data cache (``$SPIKETUNE_DATA``, else ``~/.cache/spiketune``), where the event
   file is downloaded from Zenodo on first use (see ``spiketune.data.load_braille``).

When none of them gives the file, the error names all three.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiketune import DataError
from spiketune.data import (
    CACHE_ENV,
    Dataset,
    DatasetInfo,
    cache_dir,
    load_braille,
    load_braille_pool,
    stratified_resplits,
    stratified_split,
)

# The device, the CPU threads and the seeds are spiketune's; main_hpo.py calls them from here.
from spiketune.trial import seed_everything, trial_device, trial_threads  # noqa: F401

#: Environment variable naming the Braille event file or the directory holding it.
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"
SPLIT_SEED = 0
SPLIT_RATIOS = (0.8, 0.1, 0.1)

#: The dataset options a trial may receive as parameters, and their values when it does not,
#: for an event file of the archive. ``bin_size`` is in seconds: it is also the network's time
#: step ``dt``.
DATA_DEFAULTS: dict[str, Any] = {
    "threshold": 10,
    "channels": "split",
    "bin_size": 0.02,
    "letters": "reduced",
    "clip": False,
}
#: The same for threshold-1 data (a pool file): the encoding the pool holds, rebinned.
POOL_DEFAULTS: dict[str, Any] = {**DATA_DEFAULTS, "threshold": 1, "channels": "merged"}
#: The pool's file name, looked for in a directory given as the data.
POOL_FILE = "braille_reduced_th1_pool.pt"


@dataclass(frozen=True)
class BrailleData:
    """The three parts of the split, and the digest that identifies the split."""

    train: Dataset
    val: Dataset
    test: Dataset
    split_digest: str
    #: ``(train, val)`` of each re-split (``folds``); the first is ``(train, val)`` itself.
    folds: tuple[tuple[Dataset, Dataset], ...] = ()

    @property
    def info(self) -> DatasetInfo:
        return self.train.info


def data_location(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to read the data from: ``path``, else ``$SPIKETUNE_BRAILLE_TH1_DATA``; ``None``
    means spiketune's cache (the event file, downloaded there on first use)."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def is_pool(location: Path | None) -> bool:
    """Whether ``location`` is threshold-1 pool data (a ``.pt`` file or a directory holding
    :data:`POOL_FILE`) rather than an archive event file."""
    if location is None:
        return False
    location = location.expanduser()
    return (location.is_file() and location.suffix == ".pt") or (location / POOL_FILE).is_file()


def data_options(params: Mapping[str, Any], *, pool: bool = False) -> dict[str, Any]:
    """The dataset options of a trial: its parameters where given, the defaults elsewhere
    (:data:`POOL_DEFAULTS` for pool data, else :data:`DATA_DEFAULTS`)."""
    defaults = POOL_DEFAULTS if pool else DATA_DEFAULTS
    return {key: params.get(key, default) for key, default in defaults.items()}


def load_data(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    folds: int = 1,
) -> BrailleData:
    """Load, bin and split the Braille letters.

    ``options``: the keys of :data:`DATA_DEFAULTS`. ``path``: see :func:`data_location`.
    ``per_class``: keep only this many samples of each class (the first ones of a seeded
    shuffle) before splitting, for smoke tests. ``download=False`` never reaches the network
    (an offline machine). ``folds``: how many train/validation re-splits to make around the
    fixed test part. A missing or unreadable file is a DataError that says where the file was
    looked for and the three ways to give it; options the data cannot have (pool data at
    threshold 10, say) are a DataError naming the option.
    """
    location = data_location(path)
    if is_pool(location):
        assert location is not None
        _check_pool_options(options, location)
    try:
        dataset = _load(options, location, download)
    except DataError as err:
        raise DataError(
            f"no Braille data ({err}). Give the pool file, the event file (or a directory "
            f"holding either) with --data PATH, or set ${DATA_ENV}, or let spiketune download "
            f"the event file once into its cache {cache_dir() / 'braille'} (${CACHE_ENV} moves "
            f"the cache)"
        ) from None
    if per_class is not None:
        dataset = dataset.per_class(per_class, seed=SPLIT_SEED)
    split = stratified_split(dataset.labels, SPLIT_RATIOS, seed=SPLIT_SEED)
    train, val, test = dataset.split(split)
    resplits = stratified_resplits(dataset.labels, folds, SPLIT_RATIOS, seed=SPLIT_SEED)
    pairs = tuple(dataset.split(r)[:2] for r in resplits)
    return BrailleData(train, val, test, split.digest(), pairs)


def _check_pool_options(options: Mapping[str, Any], location: Path) -> None:
    """Pool data hold one encoding: asking for another is the option's error, not the data's."""
    for key, wanted in (("threshold", 1), ("channels", "merged"), ("letters", "reduced")):
        if options[key] != wanted:
            raise DataError(
                f"{key}={options[key]!r}: the pool file {location} holds threshold-1, "
                f"merged, reduced letters; {key} must be {wanted!r} with it"
            )


def _load(options: Mapping[str, Any], location: Path | None, download: bool) -> Dataset:
    """The whole dataset in the encoding ``options`` name (not yet split)."""
    threshold, channels = int(options["threshold"]), options["channels"]
    bin_size, clip = float(options["bin_size"]), bool(options["clip"])
    if is_pool(location):
        assert location is not None
        return load_braille_pool(location).rebin(bin_size, clip=clip)
    if threshold == 1 and channels == "merged" and options["letters"] == "reduced":
        # The pool's encoding made from the archive (5 ms, 0/1, 1.28 s), then rebinned the
        # same way, so that both sources give the same tensors.
        native = load_braille(location, preset="nir", download=download, progress=False)
        return native.rebin(bin_size, clip=clip)
    return load_braille(
        location,
        threshold=threshold,
        letters=options["letters"],
        bin_size=bin_size,
        channels=channels,
        clip=clip,
        download=download,
        progress=False,
    )

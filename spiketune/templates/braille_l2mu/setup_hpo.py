"""What a trial sets up before it trains: the data, the device, the seeds, the CPU threads.

The data are the tactile Braille letters (Müller-Cleve et al., Frontiers in Neuroscience
16:951164, 2022; Zenodo record 7050094, CC BY 4.0), as one of two tasks (``task``):

- **reduced** (the default): the 7 letters Space, A, E, I, O, U, Y at sigma-delta threshold 1,
  ON | OFF merged into 12 channels, 0/1 spikes in 5 ms bins over 1.28 s (256 steps): the
  encoding of the threshold-1 pool file ``braille_reduced_th1_pool.pt`` and of the NIR paper.
  Read from a pool file, or made the same way from the archive's threshold-1 event file
  (``load_braille(preset="nir")``); then rebinned to ``bin_size`` (10 or 20 ms) as event
  counts, or 0/1 with ``clip``.
- **full**: all 27 letters (Space, A..Z) from the archive's threshold-10 event file, ON and OFF
  as 24 channels, binned straight to ``bin_size`` over 1.35 s.

**The split.** The test part is ``stratified_split(labels, (0.8, 0.1, 0.1), seed=0).test``,
fixed before any run and never changed; ``BrailleData.split_digest`` names it in every
result. With ``folds=k`` a trial trains on k stratified re-splits of the other samples
(disjoint validation parts, ``stratified_resplits``; the first is the split itself) and is
judged by the mean of their validation accuracies.

Where the data are found, first hit wins:

1. the ``path`` given (``--data PATH``): reduced task, a pool file, a threshold-1 event file, or
   a directory holding either; full task, the threshold-10 event file or its directory;
2. the task's environment variable: ``$SPIKETUNE_BRAILLE_TH1_DATA`` (reduced),
   ``$SPIKETUNE_BRAILLE_DATA`` (full);
3. spiketune's data cache (``$SPIKETUNE_DATA``, else ``~/.cache/spiketune``), where the event
   file of the task's threshold is downloaded from Zenodo on first use.

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

#: The tasks, and the environment variable that names each one's data.
TASKS = ("reduced", "full")
DATA_ENVS: dict[str, str] = {"reduced": "SPIKETUNE_BRAILLE_TH1_DATA",
                             "full": "SPIKETUNE_BRAILLE_DATA"}
SPLIT_SEED = 0
SPLIT_RATIOS = (0.8, 0.1, 0.1)
#: Seconds of a sample, per task: the 256 steps of 5 ms of the threshold-1 encoding, and the
#: event files' default window for the full task.
DURATION: dict[str, float] = {"reduced": 1.28, "full": 1.35}

#: The dataset options a trial may receive as parameters, and their values when it does not.
#: ``bin_size`` is in seconds: it is also the network's time step ``dt``.
DATA_DEFAULTS: dict[str, Any] = {"task": "reduced", "bin_size": 0.02, "clip": False}
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


def data_location(task: str, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to read the task's data from: ``path``, else the task's environment variable;
    ``None`` means spiketune's cache (downloaded there on first use)."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENVS[task])
    return Path(env).expanduser() if env else None


def is_pool(location: Path | None) -> bool:
    """Whether ``location`` is a threshold-1 pool (a ``.pt`` file or a directory holding
    :data:`POOL_FILE`) rather than an event file of the archive."""
    if location is None:
        return False
    location = location.expanduser()
    return (location.is_file() and location.suffix == ".pt") or (location / POOL_FILE).is_file()


def data_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options of a trial (its parameters flattened by
    ``spiketune.trial.flat_parameters``):
    its parameters where given, the defaults elsewhere."""
    return {key: params.get(key, default) for key, default in DATA_DEFAULTS.items()}


def load_data(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    folds: int = 1,
) -> BrailleData:
    """Load, bin and split the Braille letters of ``options["task"]``.

    ``options``: the keys of :data:`DATA_DEFAULTS`. ``path``: see :func:`data_location`.
    ``per_class``: keep only this many samples of each class (the first ones of a seeded
    shuffle) before splitting, for smoke runs. ``download=False`` never reaches the network.
    ``folds``: how many train/validation re-splits to make around the fixed test part. A
    missing or unreadable file is a DataError that names the three ways to give it; an
    unknown task, or a pool file for the full task, is a DataError naming the option.
    """
    task = options["task"]
    if task not in TASKS:
        raise DataError(f"task={task!r}: the task must be one of {', '.join(TASKS)}")
    location = data_location(task, path)
    if task == "full" and is_pool(location):
        raise DataError(
            f"task='full': {location} is a threshold-1 pool of the 7 reduced letters; the full "
            f"task reads the threshold-10 event file of the archive (data_braille_letters_th10)"
        )
    try:
        dataset = _load(options, location, download)
    except DataError as err:
        env, threshold = DATA_ENVS[task], 1 if task == "reduced" else 10
        raise DataError(
            f"no Braille data for the {task} task ({err}). Give "
            f"{'the pool file, ' if task == 'reduced' else ''}the threshold-{threshold} event "
            f"file (or a directory holding it) with --data PATH, or set ${env}, or let "
            f"spiketune download the event file once into its cache "
            f"{cache_dir() / 'braille'} (${CACHE_ENV} moves the cache)"
        ) from None
    if per_class is not None:
        dataset = dataset.per_class(per_class, seed=SPLIT_SEED)
    split = stratified_split(dataset.labels, SPLIT_RATIOS, seed=SPLIT_SEED)
    train, val, test = dataset.split(split)
    resplits = stratified_resplits(dataset.labels, folds, SPLIT_RATIOS, seed=SPLIT_SEED)
    pairs = tuple(dataset.split(r)[:2] for r in resplits)
    return BrailleData(train, val, test, split.digest(), pairs)


def _load(options: Mapping[str, Any], location: Path | None, download: bool) -> Dataset:
    """The whole dataset of the task, binned (not yet split)."""
    bin_size, clip = float(options["bin_size"]), bool(options["clip"])
    if options["task"] == "reduced":
        if is_pool(location):
            assert location is not None
            return load_braille_pool(location).rebin(bin_size, clip=clip)
        # The pool's encoding made from the archive (5 ms, 0/1, 1.28 s), rebinned the same way.
        native = load_braille(location, preset="nir", download=download, progress=False)
        return native.rebin(bin_size, clip=clip)
    return load_braille(
        location, threshold=10, letters="full", bin_size=bin_size,
        window=DURATION["full"], channels="split", clip=clip, download=download,
        progress=False,
    )

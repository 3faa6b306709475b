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
from pathlib import Path
from typing import Any

from spiketune import DataError
from spiketune.data import (
    CACHE_ENV,
    SplitParts,
    cache_dir,
    is_braille_pool,
    load_braille_encoding,
    split_parts,
)
from spiketune.data import data_location as find_data

# The device, the CPU threads and the seeds are spiketune's: main_hpo.py sets them up with
# spiketune.trial.start_trial. Named here too, where the four-file pipeline looks for them.
from spiketune.trial import seed_everything, trial_device, trial_threads, with_defaults  # noqa: F401

#: The tasks, and the environment variable that names each one's data.
TASKS = ("reduced", "full")
DATA_ENVS: dict[str, str] = {"reduced": "SPIKETUNE_BRAILLE_TH1_DATA",
                             "full": "SPIKETUNE_BRAILLE_DATA"}
#: Seconds of a sample, per task: the 256 steps of 5 ms of the threshold-1 encoding, and the
#: event files' default window for the full task.
DURATION: dict[str, float] = {"reduced": 1.28, "full": 1.35}

#: The dataset options a trial may receive as parameters, and their values when it does not.
#: ``bin_size`` is in seconds: it is also the network's time step ``dt``.
DATA_DEFAULTS: dict[str, Any] = {"task": "reduced", "bin_size": 0.02, "clip": False}
#: The encoding of each task (``spiketune.data.load_braille_encoding``'s options besides
#: ``bin_size`` and ``clip``): the threshold-1 pool's, and all letters of the threshold-10
#: event file over :data:`DURATION`.
ENCODINGS: dict[str, dict[str, Any]] = {
    "reduced": {"threshold": 1, "channels": "merged", "letters": "reduced"},
    "full": {"threshold": 10, "channels": "split", "letters": "full",
             "window": DURATION["full"]},
}

#: The three parts of the split (``train``, ``val``, ``test``), its digest and its re-splits.
BrailleData = SplitParts
#: Whether a location is a threshold-1 pool (a ``.pt`` file or a directory holding
#: ``braille_reduced_th1_pool.pt``) rather than an event file of the archive.
is_pool = is_braille_pool


def data_location(task: str, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to read the task's data from: ``path``, else the task's environment variable;
    ``None`` means spiketune's cache (downloaded there on first use)."""
    return find_data(path, DATA_ENVS[task])


def data_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options of a trial (its parameters flattened by
    ``spiketune.trial.flat_parameters``):
    its parameters where given, the defaults elsewhere."""
    return with_defaults(params, DATA_DEFAULTS)


def encoding(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``options["task"]`` as ``spiketune.data.load_braille_encoding`` takes
    them (threshold, channels, letters, window, bins): what a checkpoint records, so that
    ``spiketune evaluate CHECKPOINT --data EVENT_FILE`` encodes the file as it was trained."""
    return {**ENCODINGS[options["task"]], "bin_size": options["bin_size"],
            "clip": options["clip"]}


def load_data(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    folds: int = 1,
) -> SplitParts:
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
        dataset = load_braille_encoding(encoding(options), location, download=download)
    except DataError as err:
        env, threshold = DATA_ENVS[task], ENCODINGS[task]["threshold"]
        raise DataError(
            f"no Braille data for the {task} task ({err}). Give "
            f"{'the pool file, ' if task == 'reduced' else ''}the threshold-{threshold} event "
            f"file (or a directory holding it) with --data PATH, or set ${env}, or let "
            f"spiketune download the event file once into its cache "
            f"{cache_dir() / 'braille'} (${CACHE_ENV} moves the cache)"
        ) from None
    # 80/10/10 % per class, seed 0; ``per_class`` samples kept first.
    return split_parts(dataset, folds=folds, per_class=per_class)

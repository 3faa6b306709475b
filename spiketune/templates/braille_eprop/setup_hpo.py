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
split) names it in every result. With ``folds=k`` a trial trains on k stratified re-splits
of the remaining samples (disjoint validation parts, ``stratified_resplits``) and is judged
by the mean of their validation accuracies: on 105-sample validation sets one split's
accuracy moves by a sample or two with luck alone, and a search that maximises it picks
the lucky. The first re-split is the split itself.

Where the data are found, first hit wins:

1. the ``path`` given (``main.py --data PATH`` or ``main_hpo.py --data PATH``: a pool file, an
   event file, or a directory holding either);
2. ``$SPIKETUNE_BRAILLE_DATA`` (the same, from the environment);
3. spiketune's data cache (``$SPIKETUNE_DATA``, else ``~/.cache/spiketune``), where the event
   file is downloaded from Zenodo on first use (see ``spiketune.data.load_braille``).

When none of them gives the file, the error names all three. Finding, reading, encoding and
splitting the letters is ``spiketune.data.load_braille_split``; this file holds the
template's choices (its environment variable, its data defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from spiketune.data import (
    BRAILLE_TASK_DEFAULTS,
    Dataset,
    SplitParts,
    braille_file_threshold,
    data_location,
    is_braille_pool,
    load_braille_other_letters,
    load_braille_split,
)

# The device, the CPU threads and the seeds are spiketune's: main_hpo.py sets them up with
# spiketune.trial.start_trial. Named here too, where the four-file pipeline looks for them.
from spiketune.trial import (  # noqa: F401
    ENV_CONCURRENCY,
    ENV_TRIAL_THREADS,
    seed_everything,
    trial_device,
    trial_threads,
    with_defaults,
)

#: Environment variable naming the Braille data (a pool file, an event file, or a directory
#: holding either).
DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
#: Environment variables that size a trial's CPU threads (see :func:`trial_threads`).
THREADS_ENV, CONCURRENCY_ENV = ENV_TRIAL_THREADS, ENV_CONCURRENCY

#: The dataset options a trial may receive as parameters, and their values when it does not,
#: for an event file of the archive: threshold 10, ON/OFF split, 20 ms bins of event counts,
#: the reduced letters. ``bin_size`` is in seconds: it is also the network's time step ``dt``.
DATA_DEFAULTS: dict[str, Any] = dict(BRAILLE_TASK_DEFAULTS)
#: The same for threshold-1 data (a pool file): the encoding the pool holds, rebinned.
POOL_DEFAULTS: dict[str, Any] = {**DATA_DEFAULTS, "threshold": 1, "channels": "merged"}

#: The three parts of the split (``train``, ``val``, ``test``), its digest and its re-splits.
BrailleData = SplitParts
#: Whether a location holds threshold-1 pool data (a ``.pt`` file, or a directory holding
#: ``braille_reduced_th1_pool.pt``) rather than an archive event file.
is_pool = is_braille_pool
#: Where to read the event file from: ``data_location(path)`` is ``path``, else
#: ``$SPIKETUNE_BRAILLE_DATA``; ``None`` means spiketune's cache (downloaded there on first use).
data_location = partial(data_location, env=DATA_ENV)
#: Load, encode and split the Braille letters: ``load_data(options, path=None, *,
#: per_class=None, download=True, folds=1)`` with ``options`` the keys of
#: :data:`DATA_DEFAULTS`, ``path`` as for :func:`data_location`, ``per_class`` samples of
#: each class kept (smoke runs), ``folds`` train/validation re-splits around the fixed test
#: part (80/10/10 % per class, seed 0). A missing file, or options
#: pool data cannot have, is a DataError that says what to do.
load_data = partial(load_braille_split, env=DATA_ENV)


def load_other_letters(options: Mapping[str, Any], path: str | None = None) -> Dataset:
    """The archive's letters the task leaves out, in the task's encoding, for pretraining
    (``pretrain_epochs``): ``path`` as for :func:`data_location`. None of their samples is in
    the task's split. A pool file holds only the task's letters: a DataError says so. An
    event file whose name gives another threshold than the task's (the threshold-10 file
    for the threshold-1 pool) is read at that threshold, in the task's channels, bins and
    window: another encoding of the same taxels, with the task's shape."""
    location = data_location(path)
    named = None
    if location is not None and Path(location).is_file():
        named = braille_file_threshold(location)
    return load_braille_other_letters(options, location, threshold=named)


def data_options(params: Mapping[str, Any], *, pool: bool = False) -> dict[str, Any]:
    """The dataset options of a trial: its parameters where given, the defaults elsewhere
    (:data:`POOL_DEFAULTS` for pool data, else :data:`DATA_DEFAULTS`)."""
    defaults = POOL_DEFAULTS if pool else DATA_DEFAULTS
    return with_defaults(params, defaults)

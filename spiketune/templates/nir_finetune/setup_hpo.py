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
fixed before any run and never changed; ``split_digest`` (the digest of that
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

When none of them gives the file, the error names all three. Finding, reading, encoding and
splitting the letters is ``spiketune.data.load_braille_split``; this file holds the
template's choices (its environment variable, its data defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from spiketune.data import BRAILLE_TASK_DEFAULTS, load_braille_split

# The device, the CPU threads and the seeds are spiketune's: main_hpo.py sets them up with
# spiketune.trial.start_trial. Named here too, where the four-file pipeline looks for them.
from spiketune.trial import seed_everything, trial_device, trial_threads, with_defaults  # noqa: F401

#: Environment variable naming the Braille data (a pool file, an event file, or a directory
#: holding either).
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"

#: The dataset options a trial may receive as parameters, and their values when it does not,
#: for an event file of the archive: threshold 10, ON/OFF split, 20 ms bins of event counts,
#: the reduced letters. ``bin_size`` is in seconds: it is also the network's time step ``dt``.
DATA_DEFAULTS: dict[str, Any] = dict(BRAILLE_TASK_DEFAULTS)
#: The same for threshold-1 data (a pool file): the encoding the pool holds, rebinned.
POOL_DEFAULTS: dict[str, Any] = {**DATA_DEFAULTS, "threshold": 1, "channels": "merged"}

#: ``load_data(options, path=None, *, per_class=None, download=True, folds=1)``: the letters
#: of ``data_options(..., pool=True)`` read from ``path``, else ``$SPIKETUNE_BRAILLE_TH1_DATA``,
#: else the cache, and split (``spiketune.data.load_braille_split``); this template's trial
#: is judged on the split's validation part alone, so it asks for no re-splits.
load_data = partial(load_braille_split, env=DATA_ENV)


def data_options(params: Mapping[str, Any], *, pool: bool = False) -> dict[str, Any]:
    """The dataset options of a trial: its parameters where given, the defaults elsewhere
    (:data:`POOL_DEFAULTS` for pool data, else :data:`DATA_DEFAULTS`)."""
    defaults = POOL_DEFAULTS if pool else DATA_DEFAULTS
    return with_defaults(params, defaults)

"""What a trial sets up before it trains: the data, the device, the seeds, the CPU threads.

The data are the tactile Braille letters (Müller-Cleve et al., Frontiers in Neuroscience
16:951164, 2022; Zenodo record 7050094, CC BY 4.0), reduced 7-class task by default
(Space, A, E, I, O, U, Y), sigma-delta threshold 10, split into train/validation/test
80/10/10 by a stratified split with seed 0. The split is fixed for every trial, so trials
differ only by their hyperparameters; ``BrailleData.split_digest`` names it in the results.

Where the event file is found, first hit wins:

1. the ``path`` given (``main.py --data PATH`` or ``main_hpo.py --data PATH``: the event file
   or the directory holding it);
2. ``$SPIKETUNE_BRAILLE_DATA`` (the same, from the environment);
3. spiketune's data cache (``$SPIKETUNE_DATA``, else ``~/.cache/spiketune``), where the file is
   downloaded from Zenodo on first use (see ``spiketune.data.load_braille``).

When none of them gives the file, the error names all three.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spiketune import DataError
from spiketune.data import (
    CACHE_ENV,
    Dataset,
    DatasetInfo,
    cache_dir,
    load_braille,
    stratified_split,
)
from spiketune.trial import experiment_dir_of_trial

#: Environment variable naming the Braille event file or the directory holding it.
DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
#: Environment variables that size a trial's CPU threads (see :func:`trial_threads`).
THREADS_ENV = "SPIKETUNE_TRIAL_THREADS"
CONCURRENCY_ENV = "SPIKETUNE_CONCURRENCY"

SPLIT_SEED = 0
SPLIT_RATIOS = (0.8, 0.1, 0.1)

#: The dataset options a trial may receive as parameters, and their values when it does not.
#: ``bin_size`` is in seconds: it is also the network's time step ``dt``.
DATA_DEFAULTS: dict[str, Any] = {
    "threshold": 10,
    "channels": "split",
    "bin_size": 0.02,
    "letters": "reduced",
    "clip": False,
}


@dataclass(frozen=True)
class BrailleData:
    """The three parts of the split, and the digest that identifies the split."""

    train: Dataset
    val: Dataset
    test: Dataset
    split_digest: str

    @property
    def info(self) -> DatasetInfo:
        return self.train.info


def data_location(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to read the event file from: ``path``, else ``$SPIKETUNE_BRAILLE_DATA``; ``None``
    means spiketune's cache (downloaded there on first use)."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def data_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options of a trial: its parameters where given, the defaults elsewhere."""
    return {key: params.get(key, default) for key, default in DATA_DEFAULTS.items()}


def load_data(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
) -> BrailleData:
    """Load, bin and split the Braille letters.

    ``options``: the keys of :data:`DATA_DEFAULTS`. ``path``: see :func:`data_location`.
    ``per_class``: keep only this many samples of each class (the first ones of a seeded
    shuffle) before splitting, for smoke tests. ``download=False`` never reaches the network
    (an offline machine). A missing or unreadable file is a DataError that says where the
    file was looked for and the three ways to give it.
    """
    location = data_location(path)
    try:
        dataset = load_braille(
            location,
            threshold=int(options["threshold"]),
            letters=options["letters"],
            bin_size=float(options["bin_size"]),
            channels=options["channels"],
            clip=bool(options["clip"]),
            download=download,
            progress=False,
        )
    except DataError as err:
        raise DataError(
            f"no Braille data ({err}). Give the event file (or its directory) with --data PATH, "
            f"or set ${DATA_ENV}, or let spiketune download it once into its cache "
            f"{cache_dir() / 'braille'} (${CACHE_ENV} moves the cache)"
        ) from None
    if per_class is not None:
        dataset = dataset.subset(_first_per_class(dataset.labels, per_class, SPLIT_SEED))
    split = stratified_split(dataset.labels, SPLIT_RATIOS, seed=SPLIT_SEED)
    train, val, test = dataset.split(split)
    return BrailleData(train, val, test, split.digest())


def _first_per_class(labels: torch.Tensor, n: int, seed: int) -> list[int]:
    """Indices of ``n`` samples of each class, drawn by a seeded shuffle, in ascending order."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    kept: list[int] = []
    counts: dict[int, int] = {}
    for i in order.tolist():
        label = int(labels[i])
        if counts.get(label, 0) < n:
            counts[label] = counts.get(label, 0) + 1
            kept.append(i)
    return sorted(kept)


def trial_device() -> torch.device:
    """CUDA when this trial was given a GPU and torch can use it, else the CPU.

    The engine sets ``CUDA_VISIBLE_DEVICES`` to the trial's GPU, or to ``""`` when the
    experiment gives trials no GPU; run by hand (variable unset), any visible GPU is used.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return torch.device("cpu")
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def trial_threads(explicit: int | None = None) -> int:
    """CPU threads for this trial: its share of the machine's cores, at least 1.

    ``explicit`` (``main_hpo.py --threads``) wins, then ``$SPIKETUNE_TRIAL_THREADS``; otherwise
    the cores this process may use divided by the experiment's concurrency, read from
    ``$SPIKETUNE_CONCURRENCY`` or from the experiment's ``experiment.json`` (1 when run by
    hand). Trials that each take every core slow each other down.
    """
    if explicit is not None:
        return max(1, explicit)
    env = os.environ.get(THREADS_ENV)
    if env:
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // _concurrency())


def _concurrency() -> int:
    env = os.environ.get(CONCURRENCY_ENV)
    if env:
        return max(1, int(env))
    directory = experiment_dir_of_trial()
    if directory is None:
        return 1
    try:
        meta = json.loads((directory / "experiment.json").read_text(encoding="utf-8"))
        return max(1, int(meta["config"]["concurrency"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

"""What a trial sets up before it trains: the data, the device, the seeds, the CPU threads.

The data are the WISDM smartwatch activities (G. M. Weiss, "WISDM Smartphone and Smartwatch
Activity and Biometrics Dataset", UCI Machine Learning Repository 507, 2019,
doi:10.24432/C5HK59, CC BY 4.0), as ``spiketune.data.load_wisdm`` reads them by default: the
watch's accelerometer and gyroscope paired by timestamp (6 channels at 20 Hz), the 7 hand
activities (typing, brushing teeth, playing catch, dribbling, writing, clapping, folding
clothes), non-overlapping windows of 2 s (40 steps of 50 ms). Each channel is standardised
with the mean and standard deviation of the training windows, then given to the network as
it is (``input="frame"``: 6 analog input currents) or as sigma-delta events (``input=
"events"``: ON and OFF of each channel, 12 inputs, at ``event_threshold`` standard
deviations; 0/1 per step with ``clip``, else counts).

**The split, by subject.** Windows of one recording are near copies of each other, so whole
subjects go to one part: the test part is the test subjects of ``load_wisdm``'s subject split
(ratios 0.8/0.1/0.1 of the subjects, seed 0), fixed before any run and never changed;
``WisdmParts.split_digest`` (the digest of the window index lists) names it in every result.
With ``folds=k`` a trial trains on k re-splits of the other subjects into training and
validation subjects (disjoint validation subjects, ``stratified_resplits`` over the subject
ids; the first is the split itself) and is judged by the mean of their validation
accuracies: one validation part of 5 subjects says as much about those 5 people as about the
network. The standardisation (and so the events) of each re-split is fitted on its own
training subjects.

Where the data are found, first hit wins:

1. the ``path`` given (``--data PATH``): the UCI archive, ``wisdm-dataset.zip``, or an extracted
   directory holding ``raw/`` or ``wisdm-dataset/raw/``;
2. ``$SPIKETUNE_WISDM_DATA`` (the same, from the environment);
3. spiketune's data cache (``$SPIKETUNE_DATA``, else ``~/.cache/spiketune``), where the UCI
   archive (about 310 MB) is downloaded on first use.

When none of them gives the data, the error names all three.
"""

from __future__ import annotations

import os
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
    Split,
    bin_events,
    cache_dir,
    load_wisdm,
    sigma_delta_encode,
    stratified_resplits,
)

# The device, the CPU threads and the seeds are spiketune's: main_hpo.py sets them up with
# spiketune.trial.start_trial. Named here too, where the four-file pipeline looks for them.
from spiketune.trial import seed_everything, trial_device, trial_threads, with_defaults  # noqa: F401

#: Environment variable naming the WISDM archive or its extracted directory.
DATA_ENV = "SPIKETUNE_WISDM_DATA"
SPLIT_SEED = 0
SPLIT_RATIOS = (0.8, 0.1, 0.1)
#: The WISDM sampling rate (Hz) and so the network's time step (seconds).
RATE = 20.0
DT = 1.0 / RATE

#: The dataset options a trial may receive as parameters, and their values when it does not.
#: ``input``: ``frame`` (standardised values as input currents) or ``events`` (sigma-delta);
#: ``event_threshold`` in standard deviations and ``clip`` apply to events only.
DATA_DEFAULTS: dict[str, Any] = {"input": "frame", "event_threshold": 0.5, "clip": True}
INPUTS = ("frame", "events")


@dataclass(frozen=True)
class WisdmParts:
    """The three parts of the subject split, its re-splits, and what identifies them."""

    train: Dataset
    val: Dataset
    test: Dataset
    split_digest: str
    #: ``(train, val)`` of each re-split (``folds``); the first is ``(train, val)`` itself.
    folds: tuple[tuple[Dataset, Dataset], ...]
    test_subjects: tuple[int, ...]
    #: The validation subjects of each re-split.
    val_subjects: tuple[tuple[int, ...], ...]
    #: Per channel, the mean and standard deviation fitted on the split's training windows
    #: (sensor units): what new data must be standardised with for the saved network.
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: tuple[str, ...]

    @property
    def info(self) -> DatasetInfo:
        return self.train.info


def data_location(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to read the data from: ``path``, else ``$SPIKETUNE_WISDM_DATA``; ``None`` means
    spiketune's cache (downloaded there on first use)."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def data_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options of a trial (its parameters flattened by
    ``spiketune.trial.flat_parameters``):
    its parameters where given, the defaults elsewhere.
    The event options are kept only for ``input="events"``, so that a frame trial records
    none."""
    options = with_defaults(params, DATA_DEFAULTS)
    if options["input"] != "events":
        return {"input": options["input"]}
    return options


def load_data(
    options: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    folds: int = 1,
) -> WisdmParts:
    """Read, window, split by subject, standardise and encode the WISDM hand activities.

    ``options``: the keys of :data:`DATA_DEFAULTS`. ``path``: see :func:`data_location`.
    ``per_class``: keep only this many windows of each activity of each subject (a seeded
    draw), for smoke runs; every subject stays. ``download=False`` never reaches the
    network. ``folds``: how many train/validation re-splits of the subjects to make around
    the fixed test subjects. Missing data are a DataError naming the three ways to give them;
    an unknown ``input`` is a DataError naming the option.
    """
    if options.get("input") not in INPUTS:
        raise DataError(f"input={options.get('input')!r}: the input must be one of "
                        f"{', '.join(INPUTS)}")
    location = data_location(path)
    try:
        wisdm = load_wisdm(location, kind="frame", split="subject", ratios=SPLIT_RATIOS,
                           seed=SPLIT_SEED, download=download, progress=False)
    except DataError as err:
        raise DataError(
            f"no WISDM data ({err}). Give the UCI archive, wisdm-dataset.zip or the extracted "
            f"directory with --data PATH, or set ${DATA_ENV}, or let spiketune download the "
            f"archive (about 310 MB) once into its cache {cache_dir() / 'wisdm'} "
            f"(${CACHE_ENV} moves the cache)"
        ) from None
    # The loader standardised every window with its training part's statistics; undone here,
    # so that each re-split is standardised with its own training subjects' (float32 values:
    # the round trip costs about 1e-7 of a standard deviation).
    mean, std = np.asarray(wisdm.mean), np.asarray(wisdm.std)
    windows = wisdm.dataset.inputs.double().numpy() * std + mean
    labels = wisdm.dataset.labels.numpy()
    subjects = np.asarray(wisdm.window_subjects)
    if per_class is not None:
        keep = _first_per_group(subjects, labels, per_class, SPLIT_SEED)
        windows, labels, subjects = windows[keep], labels[keep], subjects[keep]

    people = np.unique(subjects)
    resplits = [_by_subject(subjects, people, r)
                for r in stratified_resplits(np.zeros(len(people), np.int64), folds,
                                             SPLIT_RATIOS, seed=SPLIT_SEED)]
    split = resplits[0]
    test_subjects = tuple(int(s) for s in np.unique(subjects[split.test]))
    if test_subjects != wisdm.test_subjects:  # the same seeded draw over the same subjects
        raise DataError(f"the test subjects {test_subjects} differ from the loader's "
                        f"{wisdm.test_subjects}")
    base = wisdm.dataset.info

    def part(indices: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> Dataset:
        return _encode(windows[indices], stats, options, base, labels[indices])

    pairs = []
    for r in resplits:
        stats = _fit(windows[r.train])
        pairs.append((part(r.train, stats), part(r.val, stats)))
    fitted = _fit(windows[split.train])
    return WisdmParts(
        train=pairs[0][0], val=pairs[0][1], test=part(split.test, fitted),
        split_digest=split.digest(),
        folds=tuple(pairs), test_subjects=test_subjects,
        val_subjects=tuple(tuple(int(s) for s in np.unique(subjects[r.val])) for r in resplits),
        mean=tuple(float(m) for m in fitted[0]), std=tuple(float(s) for s in fitted[1]),
        channels=wisdm.channels,
    )


def _by_subject(subjects: np.ndarray, people: np.ndarray, split: Split) -> Split:
    """A split of the subject ids as a split of the windows: each window follows its subject."""
    return Split(*(np.flatnonzero(np.isin(subjects, people[part])).astype(np.int64)
                   for part in (split.train, split.val, split.test)))


def _fit(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the training windows (std 1 if constant)."""
    flat = train.reshape(-1, train.shape[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return mean, np.where(std > 1e-9, std, 1.0)


def _encode(
    windows: np.ndarray, stats: tuple[np.ndarray, np.ndarray], options: Mapping[str, Any],
    base: DatasetInfo, labels: np.ndarray,
) -> Dataset:
    """Every window standardised with ``stats``, as frames or as sigma-delta events (each
    window encoded on its own from its first sample, counted per 50 ms step: ON of the
    channels, then OFF)."""
    frames = (windows - stats[0]) / stats[1]
    if options["input"] == "events":
        threshold, clip = float(options["event_threshold"]), bool(options["clip"])
        events = [sigma_delta_encode(w, threshold, rate=RATE) for w in frames]
        inputs = bin_events(events, bin_size=DT, n_steps=frames.shape[1], channels="split",
                            clip=clip)
        name = f"{base.name.removesuffix('_frame')}_events_th{threshold:g}"
    else:
        inputs, name = torch.from_numpy(frames.astype(np.float32)), base.name
    info = DatasetInfo(name=name, classes=base.classes, n_inputs=int(inputs.shape[2]),
                       n_steps=base.n_steps, dt=base.dt)
    return Dataset(info, inputs, torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def _first_per_group(subjects: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` windows of each (subject, activity), by a seeded shuffle, ascending."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).numpy()
    counts: dict[tuple[int, int], int] = {}
    kept = []
    for i in order:
        key = (int(subjects[i]), int(labels[i]))
        if counts.get(key, 0) < n:
            counts[key] = counts.get(key, 0) + 1
            kept.append(int(i))
    return np.sort(np.asarray(kept, dtype=np.int64))

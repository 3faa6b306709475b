"""A dataset as a trial uses it: the fixed split's three parts and its train/validation
re-splits, and where a dataset's file is found.

The test part is ``stratified_split(labels, ratios, seed).test``, fixed before any run and
never changed; ``SplitParts.split_digest`` names that split in every result. With ``folds=k``
a trial trains on k stratified re-splits of the other samples (disjoint validation parts,
:func:`~spiketune.data.stratified_resplits`; the first is the split itself) and is judged by
the mean of their validation accuracies: on a validation part of a hundred samples one
split's accuracy moves by a sample or two with luck alone, and a search that maximises it
picks the lucky.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spiketune.data._base import Dataset, DatasetInfo
from spiketune.data._splits import stratified_resplits, stratified_split
from spiketune.errors import DataError

#: The split a trial's data get unless told otherwise: 80/10/10 % per class, seed 0.
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0


@dataclass(frozen=True)
class SplitParts:
    """The three parts of the split, the digest that identifies the split, and the
    ``(train, val)`` of each re-split."""

    train: Dataset
    val: Dataset
    test: Dataset
    split_digest: str
    #: ``(train, val)`` of each re-split (``folds``); the first is ``(train, val)`` itself.
    folds: tuple[tuple[Dataset, Dataset], ...] = ()

    @property
    def info(self) -> DatasetInfo:
        """The data's description (class names, channels, steps, step length in seconds)."""
        return self.train.info


def split_parts(
    dataset: Dataset,
    *,
    folds: int = 1,
    per_class: int | None = None,
    ratios: Sequence[float] = SPLIT_RATIOS,
    seed: int = SPLIT_SEED,
) -> SplitParts:
    """``dataset`` split in stratified train/validation/test parts (``ratios``, ``seed``),
    with ``folds`` train/validation re-splits around the same test part.

    ``per_class``: keep only this many samples of each class (drawn by a shuffle seeded with
    ``seed``) before splitting, for smoke runs. The same dataset, ratios and seed always give
    the same parts and the same ``split_digest``.
    """
    if per_class is not None:
        dataset = dataset.per_class(per_class, seed=seed)
    split = stratified_split(dataset.labels, ratios, seed=seed)
    train, val, test = dataset.split(split)
    if per_class is not None and not (len(val) and len(test)):
        # A few samples per class leave the small parts empty; no training could be judged.
        raise DataError(f"per_class (a trial's --subset): {per_class} samples per class leave "
                        f"no validation or test sample in a {'/'.join(map(str, ratios))} "
                        f"split; keep at least {_fewest_per_class(ratios, seed)}")
    resplits = stratified_resplits(dataset.labels, folds, ratios, seed=seed)
    pairs = tuple(dataset.split(r)[:2] for r in resplits)
    return SplitParts(train, val, test, split.digest(), pairs)


def _fewest_per_class(ratios: Sequence[float], seed: int) -> int:
    """The fewest samples of a class whose stratified split has a sample in every part."""
    import torch

    for n in range(2, 1000):
        split = stratified_split(torch.zeros(n, dtype=torch.long), ratios, seed=seed)
        if len(split.train) and len(split.val) and len(split.test):
            return n
    return 1000


def data_location(path: str | os.PathLike[str] | None, env: str) -> Path | None:
    """Where to read a dataset from: ``path`` (a trial's ``--data``), else the environment
    variable ``env``, ``~`` expanded; ``None`` when neither is given: the loader's default,
    spiketune's data cache (where the file is downloaded on first use)."""
    if path:
        return Path(path).expanduser()
    value = os.environ.get(env)
    return Path(value).expanduser() if value else None

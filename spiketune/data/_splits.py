"""Stratified train/validation/test splits that come out the same on every machine.

Why not ``numpy.random.Generator.permutation``: NumPy promises a stable stream only for its
bit generators, not for the algorithms built on them (NEP 19), so a split drawn with
``permutation`` could change with a NumPy upgrade. Here the shuffle is a plain Fisher–Yates
over the raw 64-bit outputs of ``PCG64`` seeded through ``SeedSequence``, both of which are
stable, with rejection sampling so every position is equally likely. Nothing depends on hash
order or on the order of a ``set``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spiketune.errors import ConfigError, DataError, Problem

_TWO_64 = 1 << 64


@dataclass(frozen=True)
class Split:
    """Index lists into one dataset: ``train``, ``val`` and ``test`` (int64, ascending).

    The three lists are disjoint and together cover every sample.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __len__(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    def digest(self) -> str:
        """SHA-256 of the three index lists, to record which split a result was measured on."""
        text = ";".join(
            f"{name}:" + ",".join(str(int(i)) for i in part)
            for name, part in (("train", self.train), ("val", self.val), ("test", self.test))
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    problems = []
    if (isinstance(ratios, str | bytes) or not isinstance(ratios, Sequence | np.ndarray)
            or len(ratios) != 3 or not all(isinstance(r, int | float | np.number)
                                           and not isinstance(r, bool) for r in ratios)):
        raise ConfigError(Problem("ratios", ratios, "must be three numbers (train, val, test)"))
    train, val, test = (float(r) for r in ratios)
    for name, r in (("train", train), ("val", val), ("test", test)):
        if not (math.isfinite(r) and 0.0 <= r <= 1.0):
            problems.append(Problem(f"ratios.{name}", r, "must lie in [0, 1]"))
    if train <= 0.0:
        problems.append(Problem("ratios.train", train, "must be > 0"))
    if not math.isclose(train + val + test, 1.0, abs_tol=1e-9):
        problems.append(Problem("ratios", tuple(ratios), "must sum to 1"))
    if problems:
        raise ConfigError(problems)
    return train, val, test


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(Problem("seed", seed, "must be a non-negative integer"))
    return int(seed)


def _as_labels(labels: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"labels must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError("labels: there are no samples to split")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"labels must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _bounded(bits: np.random.PCG64, m: int) -> int:
    """A uniform integer in ``[0, m)`` from raw 64-bit draws (rejection sampling)."""
    limit = _TWO_64 - (_TWO_64 % m)
    while True:
        r = int(bits.random_raw())
        if r < limit:
            return r % m


def _shuffled(values: np.ndarray, bits: np.random.PCG64) -> np.ndarray:
    """Fisher–Yates shuffle of a copy of ``values``."""
    out = values.copy()
    for i in range(len(out) - 1, 0, -1):
        j = _bounded(bits, i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def _round_half_up(x: float) -> int:
    # Not Python's round(): banker's rounding would give 2 for 2.5 but 4 for 3.5.
    return math.floor(x + 0.5 + 1e-9)


def _per_class(
    labels: np.ndarray, ratios: tuple[float, float, float], seed: int
) -> list[tuple[np.ndarray, int, int]]:
    """For each class (ascending label): its shuffled members, test count, val count."""
    _, val_r, test_r = ratios
    bits = np.random.PCG64(np.random.SeedSequence([seed, 0x5E11]))
    out = []
    for c in np.unique(labels):
        members = _shuffled(np.flatnonzero(labels == c).astype(np.int64), bits)
        n = len(members)
        n_test = _round_half_up(n * test_r)
        n_val = _round_half_up(n * val_r)
        if n - n_test - n_val < 1:
            raise DataError(
                f"class {int(c)} has {n} samples: too few for ratios {ratios} "
                "(the training part would be empty)"
            )
        out.append((members, n_test, n_val))
    return out


def _make(train: list[np.ndarray], val: list[np.ndarray], test: list[np.ndarray]) -> Split:
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        arr = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        arr.setflags(write=False)
        return arr

    return Split(cat(train), cat(val), cat(test))


def stratified_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Split:
    """Split sample indices into train/val/test with the same class proportions in each.

    Each class is shuffled on its own; its test part has ``round(n_c * test)`` samples and
    its validation part ``round(n_c * val)`` (halves round up), the rest is training. The
    same ``labels``, ``ratios`` and ``seed`` give the same split on every machine.
    """
    r = _check_ratios(ratios)
    lab = _as_labels(labels)
    train, val, test = [], [], []
    for members, n_test, n_val in _per_class(lab, r, _check_seed(seed)):
        test.append(members[:n_test])
        val.append(members[n_test : n_test + n_val])
        train.append(members[n_test + n_val :])
    return _make(train, val, test)


def stratified_resplits(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    k: int,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> list[Split]:
    """``k`` train/validation re-splits around one fixed, stratified test set.

    The test set is that of ``stratified_split(labels, ratios, seed)`` and so is the first
    re-split. Re-split ``i`` takes, in each class, the ``i``-th run of ``n_val`` samples of
    the same shuffled remainder as its validation set, so the validation sets are disjoint
    (as in k-fold cross-validation) as long as ``k * n_val`` fits in the remainder; beyond
    that they wrap around and overlap.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(Problem("k", k, "must be an integer >= 1"))
    r = _check_ratios(ratios)
    lab = _as_labels(labels)
    per_class = _per_class(lab, r, _check_seed(seed))
    splits = []
    for i in range(k):
        train, val, test = [], [], []
        for members, n_test, n_val in per_class:
            rest = members[n_test:]
            pick = (i * n_val + np.arange(n_val)) % len(rest)
            mask = np.zeros(len(rest), dtype=bool)
            mask[pick] = True
            test.append(members[:n_test])
            val.append(rest[mask])
            train.append(rest[~mask])
        splits.append(_make(train, val, test))
    return splits

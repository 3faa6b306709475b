"""What every dataset hands to a model: a description, float32 inputs, int64 labels.

``DatasetInfo`` is the part a model or a report sizes itself from (how many inputs, classes,
time steps, and how long one step lasts in seconds). ``Dataset`` carries the tensors with it
and is a map-style ``torch.utils.data.Dataset``, so it goes straight into a ``DataLoader``.
``DatasetLoader`` is the one base class a new dataset implements.
"""

from __future__ import annotations

import dataclasses
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pydantic
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import TensorDataset

from spiketune._validation import validate
from spiketune.data._splits import Split
from spiketune.errors import ConfigError, DataError, Problem


@dataclass(frozen=True)
class DatasetInfo:
    """The shape of a dataset, as a model or a report needs it.

    ``n_steps`` is a count of time steps; ``dt`` is the length of one step in **seconds**,
    so ``duration`` (seconds) is ``n_steps * dt``. ``classes`` are the class names in label
    order: label ``k`` means ``classes[k]``.
    """

    name: str
    classes: tuple[str, ...]
    n_inputs: int
    n_steps: int
    dt: float

    def __post_init__(self) -> None:
        # checked once here: every model, split and report sizes itself from these
        problems = []
        classes = self.classes
        if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
            problems.append(Problem("classes", classes, "a non-empty sequence of class names"))
        elif len(set(map(str, classes))) != len(classes):
            problems.append(Problem("classes", list(classes), "class names must be distinct"))
        else:
            object.__setattr__(self, "classes", tuple(classes))
        for key in ("n_inputs", "n_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                problems.append(Problem(key, value, "an integer >= 1"))
            else:
                object.__setattr__(self, key, int(value))
        dt = self.dt
        if isinstance(dt, bool) or not isinstance(dt, int | float) or not 0 < dt < float("inf"):
            problems.append(Problem("dt", dt, "seconds per step, a finite number > 0"))
        if problems:
            raise DataError(
                "invalid dataset description:\n" + "\n".join(f"  - {p}" for p in problems))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def duration(self) -> float:
        """Length of one sample in seconds."""
        return self.n_steps * self.dt


class Dataset(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Inputs ``[N, T, C]`` (float32), labels ``[N]`` (int64) and their ``DatasetInfo``.

    ``dataset[i]`` is ``(inputs[i], labels[i])``: a ``[T, C]`` sample and its label, which a
    ``DataLoader`` batches to ``[B, T, C]`` and ``[B]``.
    """

    def __init__(self, info: DatasetInfo, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        if inputs.ndim != 3:
            raise DataError(f"inputs must be [N, T, C], got shape {tuple(inputs.shape)}")
        n, t, c = inputs.shape
        if labels.shape != (n,):
            raise DataError(f"labels must be [N] with N={n}, got shape {tuple(labels.shape)}")
        if (t, c) != (info.n_steps, info.n_inputs):
            raise DataError(
                f"inputs [N, T, C] = {tuple(inputs.shape)} do not match the description "
                f"(n_steps={info.n_steps}, n_inputs={info.n_inputs})"
            )
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise DataError(f"labels must be integer class indices, got {labels.dtype} (a float "
                            "label would be cut to its integer part)")
        if inputs.is_complex() or not bool(torch.isfinite(inputs).all()):
            raise DataError("inputs hold NaN, infinite or complex values")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= info.n_classes):
            raise DataError(f"labels must lie in [0, {info.n_classes}), got {labels.unique()}")
        self.info = info
        self.inputs = inputs.to(torch.float32)
        self.labels = labels.to(torch.int64)

    # Short forms of the description, so a model can read ``dataset.n_inputs`` directly.
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def n_classes(self) -> int:
        return self.info.n_classes

    @property
    def n_inputs(self) -> int:
        return self.info.n_inputs

    @property
    def n_steps(self) -> int:
        return self.info.n_steps

    @property
    def dt(self) -> float:
        return self.info.dt

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.labels[index]

    def __repr__(self) -> str:
        i = self.info
        return (
            f"Dataset({i.name!r}, n={len(self)}, classes={i.n_classes}, "
            f"n_steps={i.n_steps}, n_inputs={i.n_inputs}, dt={i.dt}s)"
        )

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Dataset:
        """The samples at ``indices`` (positions from 0), in that order (tensors are copied,
        not shared)."""
        raw = np.asarray(indices)
        if raw.dtype == np.bool_ or (raw.size and not np.issubdtype(raw.dtype, np.integer)):
            raise DataError(f"subset: indices must be integer positions, got {raw.dtype} values"
                            + (" (for a boolean mask, pass np.flatnonzero(mask))"
                               if raw.dtype == np.bool_ else ""))
        idx = torch.from_numpy(np.array(raw, dtype=np.int64).reshape(-1))  # a writable copy
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise DataError(f"subset: indices must lie in [0, {len(self)}), got "
                            f"{int(idx.min())}..{int(idx.max())}")
        return Dataset(self.info, self.inputs[idx], self.labels[idx])

    def per_class(self, n: int, *, seed: int = 0) -> Dataset:
        """At most ``n`` samples of each class, drawn by a ``seed`` ed shuffle, kept in their
        order here: a small, balanced dataset for smoke runs and quick looks (``--subset``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"per_class: n must be an integer >= 1, got {n!r}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        kept: list[int] = []
        counts: dict[int, int] = {}
        for i in order.tolist():
            label = int(self.labels[i])
            if counts.get(label, 0) < n:
                counts[label] = counts.get(label, 0) + 1
                kept.append(i)
        return self.subset(sorted(kept))

    def split(self, split: Split) -> tuple[Dataset, Dataset, Dataset]:
        """``(train, val, test)`` datasets for the index lists of ``split``."""
        if len(split) != len(self):
            raise DataError(
                f"the split was made for {len(split)} samples but this dataset has {len(self)}"
            )
        return self.subset(split.train), self.subset(split.val), self.subset(split.test)

    def rebin(self, bin_size: float, *, clip: bool = False) -> Dataset:
        """The same samples in coarser bins of ``bin_size`` seconds, a whole multiple of ``dt``.

        Each new bin holds the sum of the ``bin_size / dt`` bins it covers (event counts), or
        1 where that sum is positive with ``clip=True``; a last partial bin is dropped. Why: the
        5 ms bins of the threshold-1 encoding make 256 steps per sample, and 10 or 20 ms bins
        train 2 or 4 times faster, often no worse, so the bin size is worth searching.
        """
        number = isinstance(bin_size, int | float) and not isinstance(bin_size, bool)
        factor = bin_size / self.dt if number and bin_size > 0 else 0.0
        whole = round(factor)
        if whole < 1 or abs(factor - whole) > 1e-6:
            raise ConfigError(Problem(
                "bin_size", bin_size, f"must be a positive whole multiple of dt={self.dt:g} s"
            ))
        n, t, c = self.inputs.shape
        steps = t // whole
        if steps < 1:
            raise ConfigError(Problem(
                "bin_size", bin_size, f"must fit in the {t} steps of {self.dt:g} s of a sample"
            ))
        x = self.inputs[:, : steps * whole].reshape(n, steps, whole, c).sum(2)
        if clip:
            x = (x > 0).to(self.inputs.dtype)
        info = dataclasses.replace(self.info, n_steps=steps, dt=float(bin_size))
        return Dataset(info, x, self.labels.clone())

    def class_counts(self) -> dict[str, int]:
        """How many samples each class has, by class name."""
        counts = torch.bincount(self.labels, minlength=self.n_classes).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def tensor_dataset(self) -> TensorDataset:
        """The same tensors as a plain ``TensorDataset`` (no description attached)."""
        return TensorDataset(self.inputs, self.labels)


class DatasetLoader(ABC):
    """Base class of every dataset spiketune can load.

    Lifecycle:

    1. ``__init__`` receives the options and validates them once (pydantic); a bad option
       raises ``ConfigError`` naming the field, the value and the rule, before any file is
       touched.
    2. ``load()`` calls ``locate()``, which returns the local file the dataset is read from
       (finding it, or downloading it into the cache) or ``None`` for a generated dataset,
       and then ``build(path)``, which reads and encodes it into a ``Dataset``.

    A generated dataset only implements ``build``; a file-backed one implements both.
    """

    #: Short identifier, also used as ``DatasetInfo.name`` unless a subclass refines it.
    name: ClassVar[str]

    def locate(self) -> Path | None:
        """The local file to read, or ``None`` when the data are generated."""
        return None

    @abstractmethod
    def build(self, path: Path | None) -> Dataset:
        """Read (or generate) the data and encode them as tensors."""

    def load(self) -> Dataset:
        return self.build(self.locate())


M = TypeVar("M", bound=pydantic.BaseModel)


def validate_options(model: type[M], values: dict[str, Any]) -> M:
    """Validate ``values`` with ``model``; on failure raise ``ConfigError`` with one
    ``Problem`` per field (field name, given value, rule)."""
    return validate(model, values, root="<options>")

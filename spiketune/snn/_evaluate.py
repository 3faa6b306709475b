"""A saved network on a labelled data set: accuracy and confusion matrix.

The data must be encoded as the network was trained: as many channels as inputs, as many
classes as readout units, the same step length ``dt``, at least as many steps as the readout
window, and (when the checkpoint records them in ``extra``) the same ``n_steps`` and the same
class names in the same order. Every difference is listed in one ``DataError``.

One difference is bridged: data in finer bins than the network steps (the 5 ms threshold-1
files, for a network trained on 10 or 20 ms bins) are rebinned first, when the checkpoint
records the bin size it was trained on (``extra["data"]["bin_size"]``, with ``"clip"``):
that is how its training data were made from the same files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from spiketune.data._base import Dataset
from spiketune.errors import ConfigError, DataError, Problem
from spiketune.snn._checkpoint import Checkpoint, load_checkpoint


@dataclass(frozen=True)
class CheckpointScore:
    """How a network classified a data set: ``matrix[true, predicted]`` counts (int64), and
    the positions in the data of the samples it got wrong (``mistakes``, ascending): which
    samples several networks all miss says more about the data than one accuracy does."""

    classes: tuple[str, ...]
    matrix: torch.Tensor
    mistakes: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def correct(self) -> int:
        return int(self.matrix.diagonal().sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: accuracy, counts, class names, matrix rows (true classes),
        the positions of the misclassified samples."""
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "classes": list(self.classes),
            "confusion_matrix": self.matrix.tolist(),
            "mistakes": list(self.mistakes),
        }


def evaluate_checkpoint(
    checkpoint: Checkpoint | str | os.PathLike[str], data: Dataset, *, batch_size: int = 256
) -> CheckpointScore:
    """Classify ``data`` with the network of ``checkpoint`` (a path or a loaded one), any
    model a checkpoint holds.

    The prediction is the class whose readout, summed over the network's readout window
    (``loss_steps``, else every step; its maximum there for ``loss="ce_max"``), is largest:
    the decision the network was trained for.
    """
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigError(Problem("batch_size", batch_size, "an integer >= 1 (samples)"))
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    data = as_trained(ckpt, data)
    if len(data) == 0:
        raise DataError("cannot evaluate on an empty data set")
    net = ckpt.network
    decide = net.readout_loss()
    net.eval()
    dtype = next(net.parameters()).dtype
    k = data.n_classes
    matrix = torch.zeros(k * k, dtype=torch.int64)
    mistakes: list[int] = []
    with torch.no_grad():
        for lo in range(0, len(data), batch_size):
            x = data.inputs[lo : lo + batch_size].to(dtype)
            y = data.labels[lo : lo + batch_size]
            guess = decide.scores(net.simulate(x).readout).argmax(-1).cpu()
            matrix += torch.bincount(y * k + guess, minlength=k * k)
            mistakes += (lo + torch.nonzero(guess != y).flatten()).tolist()
    return CheckpointScore(data.classes, matrix.reshape(k, k), tuple(mistakes))


def as_trained(checkpoint: Checkpoint | str | os.PathLike[str], data: Dataset) -> Dataset:
    """``data`` as the network of ``checkpoint`` was trained on it: rebinned to the bins the
    checkpoint records where those are coarser, then checked against the network (channels,
    classes, step length, steps, class order), a :class:`DataError` listing every
    difference. What :func:`evaluate_checkpoint` scores, and what an export is checked on:
    a network run on data of another encoding gives an accuracy that means nothing."""
    if not isinstance(data, Dataset):  # a TensorDataset has no encoding to check
        raise DataError(
            f"data: a spiketune.data.Dataset (its classes, step length and channels are "
            f"checked against the network), got {type(data).__name__}; wrap tensors as "
            "Dataset(DatasetInfo(...), inputs, labels), or use spiketune.data.load_braille_pool "
            "for a TensorDataset file")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    given = data
    data = _rebinned_as_trained(ckpt, data)
    _check_encoding(ckpt, data, given)
    return data


def _rebinned_as_trained(ckpt: Checkpoint, data: Dataset) -> Dataset:
    """``data`` rebinned to the checkpoint's recorded training bins, when they are coarser."""
    options = ckpt.extra.get("data")
    if not isinstance(options, dict):
        return data
    bin_size = options.get("bin_size")
    if not isinstance(bin_size, int | float) or not math.isclose(
        float(bin_size), ckpt.network.dt, rel_tol=1e-6
    ):
        return data
    ratio = float(bin_size) / data.dt
    if ratio <= 1 + 1e-6 or not math.isclose(ratio, round(ratio), rel_tol=1e-6):
        return data  # same bins, or no whole multiple: left to the checks below
    return data.rebin(float(bin_size), clip=bool(options.get("clip", False)))


def _check_encoding(ckpt: Checkpoint, data: Dataset, given: Dataset | None = None) -> None:
    """``given``: the data as read, when ``data`` is it rebinned to the network's bins (the
    error then says so: its step counts are the rebinned data's)."""
    net, extra = ckpt.network, ckpt.extra
    loss_steps = net.readout_loss().steps
    diffs = []
    if data.n_inputs != net.n_in:
        diffs.append(f"channels: the network has {net.n_in} inputs, the data {data.n_inputs}")
    if data.n_classes != net.n_out:
        diffs.append(f"classes: the network has {net.n_out} readout units, the data "
                     f"{data.n_classes} classes")
    if not math.isclose(data.dt, net.dt, rel_tol=1e-6):
        diffs.append(f"dt: the network steps {net.dt:g} s, the data {data.dt:g} s per step")
    if loss_steps is not None and loss_steps > data.n_steps:
        diffs.append(f"steps: the readout window is {loss_steps} steps, the data have "
                     f"{data.n_steps}")
    saved_steps = extra.get("n_steps")
    if isinstance(saved_steps, int) and saved_steps != data.n_steps:
        diffs.append(f"steps: the network was trained on {saved_steps} steps, the data have "
                     f"{data.n_steps}")
    saved_classes = extra.get("classes")
    if (isinstance(saved_classes, list | tuple) and len(saved_classes) == data.n_classes
            and tuple(saved_classes) != data.classes):
        diffs.append(f"class order: the network was trained on {list(saved_classes)}, the "
                     f"data are {list(data.classes)}")
    if diffs:
        rebinned = ""
        if given is not None and given is not data:
            rebinned = (f"\n  (the data's {given.n_steps} steps of {1000 * given.dt:g} ms, "
                        f"rebinned to the network's {1000 * data.dt:g} ms bins, give "
                        f"{data.n_steps} steps)")
        raise DataError(
            f"the data {data.name!r} are not encoded as the network expects:\n  - "
            + "\n  - ".join(diffs) + rebinned
        )

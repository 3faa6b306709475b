"""What several tests of training share: a toy dataset a small network learns in a few
epochs, and a stand-in for a population member as the trial side sees it."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch

from spiketune.data import Dataset, DatasetInfo

#: Three classes, 4 input channels, 10 steps of 10 ms.
TOY_INFO = DatasetInfo("toy", ("a", "b", "c"), 4, 10, 0.01)


def toy_data(n_per_class: int = 10, seed: int = 0) -> Dataset:
    """Three classes told apart by which input channel fires (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    inputs = (torch.rand(len(labels), 10, 4, generator=g) < 0.1).float()
    inputs[torch.arange(len(labels)), :, labels] = 1.0
    return Dataset(TOY_INFO, inputs, labels)


class FakeMember:
    """A population member as the trial side sees it, recording what it was told."""

    def __init__(self, trial_id: str, parameters: dict[str, Any]) -> None:
        self.trial_id, self.parameters, self.trial_dir = trial_id, parameters, None
        self.reports: list[dict[str, Any]] = []
        self.failed: str | None = None
        self.bound = False

    def should_stop(self) -> bool:
        return False

    def report_intermediate_result(self, value: dict[str, Any]) -> None:
        self.reports.append(value)

    def fail(self, reason: str) -> None:
        self.failed = reason

    def __enter__(self) -> FakeMember:
        self.bound = True
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bound = False

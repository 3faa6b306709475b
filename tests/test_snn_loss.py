"""Losses, their hand-written gradients, and the decision read from the readout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spiketune.errors import ConfigError
from spiketune.snn import ReadoutLoss, per_step_cross_entropy, predict, summed_cross_entropy


def readout(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 10, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1, 0])


def test_per_step_cross_entropy_over_the_last_steps() -> None:
    y, labels = readout()
    manual = sum(F.cross_entropy(y[:, t], labels) for t in range(7, 10)) / 3
    assert float(per_step_cross_entropy(y, labels, 3)) == pytest.approx(float(manual))
    every = sum(F.cross_entropy(y[:, t], labels) for t in range(10)) / 10
    assert float(per_step_cross_entropy(y, labels)) == pytest.approx(float(every))


def test_summed_cross_entropy_and_prediction_use_the_window() -> None:
    y, labels = readout()
    assert float(summed_cross_entropy(y, labels, 4)) == pytest.approx(
        float(F.cross_entropy(y[:, 6:].sum(1), labels))
    )
    y2 = torch.zeros(2, 5, 3)
    y2[0, :3, 0] = 10.0  # class 0 early, outside a last-2 window
    y2[0, 3:, 2] = 1.0
    y2[1, :, 1] = 1.0
    assert predict(y2).tolist() == [0, 1]
    assert predict(y2, 2).tolist() == [2, 1]


@pytest.mark.parametrize("kind", ["ce_per_step", "ce_summed", "ce_max"])
@pytest.mark.parametrize("steps", [None, 1, 4])
def test_written_out_error_equals_autograd(kind: str, steps: int | None) -> None:
    y, labels = readout()
    loss_fn = ReadoutLoss(kind, steps)
    yt = y.transpose(0, 1).contiguous().requires_grad_(True)  # time-major
    loss = loss_fn(yt.transpose(0, 1), labels)
    (expected,) = torch.autograd.grad(loss, yt)
    value, err = loss_fn.error(yt.detach(), labels)
    assert float(value) == pytest.approx(loss.item())
    assert torch.allclose(err, expected)
    if steps is not None:
        assert torch.all(err[: 10 - steps] == 0)


def test_max_loss_scores_each_unit_by_its_peak_in_the_window() -> None:
    """``ce_max``: the class whose readout peaks highest inside the window wins, however
    briefly; the error reaches only each unit's peak step."""
    y, labels = readout()
    assert float(ReadoutLoss("ce_max", 4)(y, labels)) == pytest.approx(
        float(F.cross_entropy(y[:, 6:].max(1).values, labels)))
    y2 = torch.zeros(1, 6, 3)
    y2[0, :, 1] = 1.0  # class 1: the largest sum
    y2[0, 4, 2] = 3.0  # class 2: the highest peak, inside the last 3 steps
    y2[0, 0, 0] = 9.0  # class 0: the highest peak of all, outside them
    assert predict(y2, 3).tolist() == [1]
    assert predict(y2, 3, "ce_max").tolist() == [2]
    assert predict(y2, None, "ce_max").tolist() == [0]
    _, err = ReadoutLoss("ce_max", 3).error(y2.transpose(0, 1).contiguous(), torch.tensor([2]))
    assert torch.count_nonzero(err[:, 0, 2]) == 1 and err[4, 0, 2] < 0  # its peak, pushed up
    assert torch.count_nonzero(err[:3]) == 0  # nothing before the window


def test_window_longer_than_the_sequence_is_refused() -> None:
    y, labels = readout()
    with pytest.raises(ConfigError, match="loss_steps"):
        ReadoutLoss("ce_per_step", 11)(y, labels)
    with pytest.raises(ConfigError, match="loss"):
        ReadoutLoss("mse")

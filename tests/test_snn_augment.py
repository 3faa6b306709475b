"""Training-time augmentation of input spike trains."""

from __future__ import annotations

import pytest
import torch

from spiketune.errors import ConfigError
from spiketune.snn import TrainConfig
from spiketune.snn._trainer import augment


def _batch() -> torch.Tensor:
    x = torch.zeros(3, 10, 2)
    x[:, 4, 0] = 1.0  # one event per sample at step 4, channel 0
    x[:, 6, 1] = 2.0
    return x


def test_no_augmentation_returns_the_batch_itself() -> None:
    x = _batch()
    assert augment(x, 0, 0.0, torch.Generator().manual_seed(0)) is x


def test_shift_moves_whole_samples_within_the_bound() -> None:
    x = _batch()
    out = augment(x, 3, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(x, _batch())  # the input is untouched
    shifts = set()
    for b in range(3):
        (t0,) = torch.nonzero(out[b, :, 0]).flatten().tolist()
        (t1,) = torch.nonzero(out[b, :, 1]).flatten().tolist()
        assert t1 - t0 == 2  # the sample moved as one piece
        assert out[b, t1, 1] == 2.0
        assert abs(t0 - 4) <= 3
        shifts.add(t0 - 4)
    assert shifts != {0}


def test_shift_out_of_the_window_is_lost_not_wrapped() -> None:
    x = torch.zeros(64, 4, 1)
    x[:, 3, 0] = 1.0  # last step
    out = augment(x, 3, 0.0, torch.Generator().manual_seed(0))
    assert out[:, :3].sum() <= out.shape[0]  # never wrapped to the start twice
    lost = int((out.sum(dim=(1, 2)) == 0).sum())
    assert 0 < lost < 64  # positive shifts push the event out


def test_drop_removes_about_the_asked_fraction_and_is_seeded() -> None:
    x = torch.ones(20, 50, 10)
    a = augment(x, 0, 0.3, torch.Generator().manual_seed(5))
    b = augment(x, 0, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    kept = a.mean().item()
    assert 0.65 < kept < 0.75


def test_bad_augmentation_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="augment_drop"):
        TrainConfig(augment_drop=1.0)
    with pytest.raises(ConfigError, match="augment_shift"):
        TrainConfig(augment_shift=-1)

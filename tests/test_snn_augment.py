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
    with pytest.raises(ConfigError, match="augment_stretch"):
        TrainConfig(augment_stretch=1.0)
    with pytest.raises(ConfigError, match="augment_stretch"):
        TrainConfig(augment_stretch=-0.1)


def test_stretch_scales_time_about_the_start_within_the_bound() -> None:
    """Events at steps 10 and 20 of a 40-step window move to floor(10f) and floor(20f) for one
    factor f per sample in [0.8, 1.2]: the sample is played faster or slower, as one piece,
    and neither event is lost."""
    x = torch.zeros(64, 40, 1)
    x[:, 10, 0] = 1.0
    x[:, 20, 0] = 1.0
    out = augment(x, 0, 0.0, torch.Generator().manual_seed(2), stretch=0.2)
    assert torch.equal(x[:, 10, 0], torch.ones(64))  # the input is untouched
    firsts = set()
    for b in range(64):
        first, last = torch.nonzero(out[b, :, 0]).flatten().tolist()
        assert 8 <= first <= 12 and 16 <= last <= 24  # within 20 % of 10 and 20
        f = first / 10  # one factor moves both: floor(20f) is 2 floor(10f) or one more
        assert last in (2 * first, 2 * first + 1), (first, last, f)
        firsts.add(first)
    assert len(firsts) >= 4  # the factors vary between samples


def test_faster_play_gathers_events_slower_play_spreads_them() -> None:
    """Event counts are conserved when a sample is played faster (they gather in fewer steps
    and add up) and only lost past the window's end when it is played slower; 0/1 input
    stays 0/1."""
    counts = torch.full((200, 50, 1), 2.0)
    out = augment(counts, 0, 0.0, torch.Generator().manual_seed(0), stretch=0.3)
    assert (out[:, 0] >= 2).all()  # step 0 is the fixed point: its events stay
    total = out.sum(dim=(1, 2))
    assert (total <= 100).all()  # never invented
    conserved = total == 100  # faster (or unchanged): every event still in the window
    assert 70 < conserved.sum().item() < 130
    assert (out[conserved, -1] == 0).any()  # faster: the window ends in silence
    assert out.max().item() == 4.0  # events that meet add up
    slower = ~conserved
    assert (out[slower] == 0).sum(dim=(1, 2)).min() > 0  # gaps between spread events
    binary = augment(torch.ones(200, 50, 1), 0, 0.0, torch.Generator().manual_seed(0),
                     stretch=0.3)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary > 0, out > 0)  # the same steps, merged as an OR


def test_stretch_is_seeded_and_leaves_the_other_draws_alone() -> None:
    x = (torch.rand(8, 30, 3, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    a = augment(x, 2, 0.1, torch.Generator().manual_seed(4), stretch=0.25)
    b = augment(x, 2, 0.1, torch.Generator().manual_seed(4), stretch=0.25)
    assert torch.equal(a, b)
    # without stretch, the draws of shift and drop are those of a run without the option
    plain = augment(x, 2, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(plain, augment(x, 2, 0.1, torch.Generator().manual_seed(4), stretch=0.0))
    assert not torch.equal(a, plain)

"""Sigma-delta encoding of analog samples and binning of events into tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiketune.data import bin_events, sigma_delta_encode
from spiketune.errors import ConfigError, DataError


def test_ramp_up_gives_one_on_event_per_threshold_at_interpolated_times() -> None:
    # 0, 1, ..., 10 at 40 Hz: the line crosses each integer level at a sample time.
    [[on, off]] = sigma_delta_encode(np.arange(11.0), threshold=1.0, rate=40.0)
    assert len(on) == 10 and len(off) == 0
    np.testing.assert_allclose(on, np.arange(1, 11) / 40.0)


def test_ramp_between_samples_is_interpolated() -> None:
    # 0 -> 4 within one sample period: levels 1..4 cross at 1/4..4/4 of the period.
    [[on, off]] = sigma_delta_encode([0.0, 4.0], threshold=1.0, rate=40.0)
    np.testing.assert_allclose(on, np.array([1, 2, 3, 4]) / 4 / 40.0)
    [[on, off]] = sigma_delta_encode([0.0, 3.0], threshold=2.0, rate=10.0)
    np.testing.assert_allclose(on, [2 / 3 / 10.0])  # level 2 of 3 reached at 2/3 of 0.1 s
    assert len(off) == 0


def test_up_and_down_gives_matching_on_and_off_counts() -> None:
    signal = np.concatenate([np.arange(0.0, 10.0), np.arange(10.0, -1.0, -1.0)])
    [[on, off]] = sigma_delta_encode(signal, threshold=2.0, rate=40.0)
    assert len(on) == 5 and len(off) == 5
    assert on.max() < off.min()


def test_a_wiggle_below_threshold_makes_nothing_and_hysteresis_holds() -> None:
    [[on, off]] = sigma_delta_encode([0.0, 0.9, 0.1, 0.9, 0.0], threshold=1.0)
    assert len(on) == len(off) == 0
    # Up 1.5 (one ON at level 1), down to 0.6: OFF needs level 0, so none.
    [[on, off]] = sigma_delta_encode([0.0, 1.5, 0.6], threshold=1.0)
    assert (len(on), len(off)) == (1, 0)


def test_step_without_and_with_refractory_period() -> None:
    step = [0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0]
    [[on, off]] = sigma_delta_encode(step, threshold=1.0, rate=40.0)
    np.testing.assert_allclose(on, 0.05 + np.arange(1, 6) * 0.025 / 5)
    # 10 ms refractory: the first event at 55 ms, the rest held back and released every
    # 10 ms; none is lost while the signal stays up.
    [[on, off]] = sigma_delta_encode(step, threshold=1.0, rate=40.0, refractory=0.010)
    np.testing.assert_allclose(on, [0.055, 0.065, 0.075, 0.085, 0.095])
    assert np.all(np.diff(on) >= 0.010 - 1e-12)
    assert len(off) == 0


def test_refractory_events_stop_when_the_signal_ends() -> None:
    [[on, _]] = sigma_delta_encode([0.0, 0.0, 5.0], threshold=1.0, rate=40.0, refractory=0.010)
    # Events at 30, 40, 50 ms; the signal ends at 50 ms, so two levels are never sent.
    np.testing.assert_allclose(on, [0.030, 0.040, 0.050])


def test_channels_are_encoded_independently() -> None:
    signal = np.stack([np.arange(5.0), -np.arange(5.0), np.zeros(5)], axis=1)
    events = sigma_delta_encode(signal, threshold=1.0)
    assert [(len(on), len(off)) for on, off in events] == [(4, 0), (0, 4), (0, 0)]


def test_encoder_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError) as info:
        sigma_delta_encode([0.0, 1.0], threshold=0.0, rate=-1.0, refractory=-0.1)
    assert {p.field for p in info.value.problems} == {"threshold", "rate", "refractory"}
    with pytest.raises(DataError, match="NaN"):
        sigma_delta_encode([0.0, np.nan], threshold=1.0)
    with pytest.raises(DataError, match="shape"):
        sigma_delta_encode(np.zeros((2, 2, 2)), threshold=1.0)


def _sample() -> list[list[list[float]]]:
    # 2 taxels: taxel 0 ON at 0.001 and 0.004 (same 5 ms bin), OFF at 0.012;
    # taxel 1 ON at 0.012 (same bin as taxel 0's OFF), OFF at 0.050 (outside a 10-step window).
    return [[[0.001, 0.004], [0.012]], [[0.012], [0.050]]]


def test_bin_events_split_channels_and_counts() -> None:
    x = bin_events([_sample()], bin_size=0.005, n_steps=10, channels="split", clip=False)
    assert x.shape == (1, 10, 4) and x.dtype == torch.float32
    expected = torch.zeros(10, 4)
    expected[0, 0] = 2  # ON taxel 0
    expected[2, 2] = 1  # OFF taxel 0
    expected[2, 1] = 1  # ON taxel 1
    assert torch.equal(x[0], expected)  # the event at 50 ms is past the 50 ms window
    clipped = bin_events([_sample()], bin_size=0.005, n_steps=10, channels="split", clip=True)
    assert clipped.max() == 1 and clipped.sum() == 3


def test_bin_events_merged_is_or_of_on_and_off() -> None:
    sample = [[[0.001], [0.002]], [[0.012], []]]
    counts = bin_events([sample], bin_size=0.005, n_steps=4, channels="merged", clip=False)
    spikes = bin_events([sample], bin_size=0.005, n_steps=4, channels="merged", clip=True)
    assert counts.shape == (1, 4, 2)
    assert counts[0, 0, 0] == 2 and spikes[0, 0, 0] == 1
    assert spikes[0, 2, 1] == 1 and spikes.sum() == 2


def test_bin_edges_and_sample_order() -> None:
    samples = [[[[0.005], []]], [[[0.0149999], [0.015]]]]
    x = bin_events(samples, bin_size=0.005, n_steps=4, channels="split", clip=False)
    assert x[0, 1, 0] == 1  # exactly on an edge: the later bin
    assert x[1, 2, 0] == 1 and x[1, 3, 1] == 1


def test_encoder_output_bins_directly() -> None:
    events = sigma_delta_encode(np.stack([np.arange(11.0)] * 12, axis=1), threshold=1.0)
    x = bin_events([events], bin_size=0.025, n_steps=12, channels="split", clip=False)
    assert x.shape == (1, 12, 24)
    assert x[0, :, :12].sum() == 120 and x[0, :, 12:].sum() == 0


def test_bin_events_rejects_malformed_samples() -> None:
    with pytest.raises(DataError, match="taxels"):
        bin_events([_sample(), _sample()[:1]], bin_size=0.005, n_steps=4)
    with pytest.raises(DataError, match="on_times, off_times"):
        bin_events([[[[0.1]]]], bin_size=0.005, n_steps=4)
    with pytest.raises(DataError, match="numbers"):
        bin_events([[[["x"], []]]], bin_size=0.005, n_steps=4)
    with pytest.raises(ConfigError):
        bin_events([_sample()], bin_size=0.005, n_steps=4, channels="both")  # type: ignore[arg-type]
    # events of the wrong shape are named, not a TypeError from inside
    for bad in (5, [[0.1, 0.2]] * 2, [[[0.1], None]] * 2):
        with pytest.raises(DataError, match=r"record 7 \(A\).*its events must be"):
            bin_events([bad], bin_size=0.005, n_steps=4, names=["record 7 (A)"])  # type: ignore[list-item]


def test_times_far_past_the_window_are_dropped_not_wrapped() -> None:
    """1e300 s would overflow the int64 bin index into a negative one."""
    sample = [[[0.001, 1e300, 5e16], [1e18]]]
    out = bin_events([sample], bin_size=0.005, n_steps=4, channels="split", clip=False)
    assert out.sum() == 1 and out[0, 0, 0] == 1

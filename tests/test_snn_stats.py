"""Spike statistics computed by hand."""

from __future__ import annotations

import pytest
import torch

from spiketune.snn import RecurrentSNN, SNNConfig, SpikeCounts, spike_stats


def test_figures_by_hand() -> None:
    net = RecurrentSNN(SNNConfig(n_in=2, n_rec=3, n_out=2, dt=5e-3), seed=0)
    with torch.no_grad():
        net.w_in[:, 1] = 0.0  # input 1 reaches nobody: its events cost nothing
        net.w_out[:, 2] = 0.0  # neuron 2 feeds only the other two recurrent neurons
    # 2 samples x 4 steps; time-major (T, B, n)
    x = torch.zeros(4, 2, 2)
    x[0, 0, 0] = x[1, 1, 0] = x[2, 1, 1] = 1.0  # three input events, one of them on input 1
    z = torch.zeros(4, 2, 3)
    z[0, 0, 0] = z[1, 0, 0] = z[3, 1, 0] = 1.0  # neuron 0: 3 spikes
    z[2, 1, 2] = 1.0  # neuron 2: 1 spike, neuron 1 silent
    counts = SpikeCounts.from_spikes(x, z)
    stats = spike_stats(counts, net)
    assert stats.spikes_per_neuron.tolist() == [1.5, 0.0, 0.5]
    assert stats.spikes_per_sample == 2.0
    assert stats.spikes_per_layer == {"input": 1.5, "recurrent": 2.0}
    assert stats.rate_per_step == pytest.approx(2.0 / 3 / 4)  # spikes / neuron / step
    assert stats.rate_hz == pytest.approx(2.0 / 3 / 4 / 5e-3)
    assert stats.silent_fraction == pytest.approx(1 / 3)
    # input 0: 2 events x 3 targets; neuron 0: 3 x (2 recurrent + 2 readout); neuron 2: 1 x 2
    assert stats.synops_per_sample == pytest.approx((2 * 3 + 3 * 4 + 1 * 2) / 2)
    assert set(stats.as_dict()) >= {"spikes_per_sample", "rate_hz", "synops_per_sample"}


def test_what_has_no_counts_is_refused_by_name() -> None:
    from spiketune.errors import ConfigError
    from spiketune.snn import LMU

    lmu = LMU(2, 2, order=2, theta=0.1, dt=0.01, hidden_size=3)
    counts = lmu.spike_counts(lmu.simulate(torch.ones(1, 4, 2)))  # None: the LMU does not spike
    with pytest.raises(ConfigError, match=r"counts: SpikeCounts .*\(got 'NoneType'\)"):
        spike_stats(counts, lmu)  # type: ignore[arg-type]
    counts = SpikeCounts.from_spikes(torch.zeros(5, 2, 1), torch.ones(5, 2, 3))
    with pytest.raises(ConfigError, match=r"net: a spiketune.snn.Model \(got 'NoneType'\)"):
        spike_stats(counts, None)  # type: ignore[arg-type]


def test_counts_add_up_over_batches() -> None:
    z1, z2 = torch.ones(5, 2, 3), torch.zeros(5, 4, 3)
    x1, x2 = torch.zeros(5, 2, 1), torch.ones(5, 4, 1)
    total = SpikeCounts.from_spikes(x1, z1) + SpikeCounts.from_spikes(x2, z2)
    assert total.n_samples == 6 and total.n_steps == 5
    assert total.spikes.tolist() == [10.0, 10.0, 10.0]
    assert total.input_events.tolist() == [20.0]

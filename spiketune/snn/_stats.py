"""Spike statistics of forward passes: what hardware-aware search constrains.

:class:`SpikeCounts` sums events over samples and time and adds up across batches (the online
e-prop mode never holds a whole trajectory, so everything is kept as counts).
:func:`spike_stats` turns counts into per-sample figures with units:

- spikes per neuron (mean per sample) and per layer (input events, recurrent spikes);
- mean firing rate of the recurrent neurons, in Hz (needs ``dt`` in seconds) and per step;
- fraction of silent neurons: no spike in any of the counted samples;
- synaptic operations per sample: every input event costs one operation per non-zero outgoing
  input weight, every recurrent spike one per non-zero outgoing recurrent and readout weight.

An input *event* is a non-zero input entry (inputs are spikes; graded inputs count as events
where non-zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from spiketune.snn._network import RecurrentSNN, Trajectory


@dataclass(frozen=True)
class SpikeCounts:
    """Totals over ``n_samples`` samples of ``n_steps`` steps each."""

    input_events: Tensor  # (n_in,)
    spikes: Tensor  # (n_rec,)
    n_samples: int
    n_steps: int

    @classmethod
    def from_spikes(cls, x: Tensor, z: Tensor) -> SpikeCounts:
        """From time-major input ``x`` (T, B, n_in) and spikes ``z`` (T, B, n_rec)."""
        return cls(
            input_events=torch.count_nonzero(x, dim=(0, 1)).to(torch.float64).cpu(),
            spikes=z.detach().sum((0, 1)).to(torch.float64).cpu(),
            n_samples=int(z.shape[1]),
            n_steps=int(z.shape[0]),
        )

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> SpikeCounts:
        return cls.from_spikes(trajectory.x, trajectory.z)

    def __add__(self, other: SpikeCounts) -> SpikeCounts:
        return SpikeCounts(
            input_events=self.input_events + other.input_events,
            spikes=self.spikes + other.spikes,
            n_samples=self.n_samples + other.n_samples,
            n_steps=max(self.n_steps, other.n_steps),
        )


@dataclass(frozen=True)
class SpikeStats:
    """Per-sample spike figures of a set of forward passes."""

    spikes_per_neuron: Tensor  # (n_rec,), mean spikes per sample
    spikes_per_sample: float  # recurrent layer, all neurons
    input_events_per_sample: float
    rate_hz: float  # mean over recurrent neurons
    rate_per_step: float
    silent_fraction: float
    synops_per_sample: float

    def as_dict(self) -> dict[str, float]:
        """The scalar figures, for histories, reports and HPO constraints."""
        return {
            "spikes_per_sample": self.spikes_per_sample,
            "input_events_per_sample": self.input_events_per_sample,
            "rate_hz": self.rate_hz,
            "rate_per_step": self.rate_per_step,
            "silent_fraction": self.silent_fraction,
            "synops_per_sample": self.synops_per_sample,
        }

    @property
    def spikes_per_layer(self) -> dict[str, float]:
        return {"input": self.input_events_per_sample, "recurrent": self.spikes_per_sample}


def fan_out(net: RecurrentSNN) -> tuple[Tensor, Tensor]:
    """Non-zero outgoing synapses per input channel (n_in,) and per recurrent neuron (n_rec,)."""
    with torch.no_grad():
        f_in = (net.w_in != 0).sum(0)
        f_rec = (net.w_out != 0).sum(0)
        w_rec = net.recurrent_weight()
        if w_rec is not None:
            f_rec = f_rec + (w_rec != 0).sum(0)
    return f_in.to(torch.float64).cpu(), f_rec.to(torch.float64).cpu()


def spike_stats(counts: SpikeCounts, net: RecurrentSNN) -> SpikeStats:
    """Per-sample statistics of ``counts`` for ``net`` (its ``dt`` and connectivity)."""
    n = max(counts.n_samples, 1)
    per_neuron = counts.spikes / n
    per_step = float(per_neuron.mean()) / max(counts.n_steps, 1)
    f_in, f_rec = fan_out(net)
    synops = float(counts.input_events @ f_in + counts.spikes @ f_rec) / n
    return SpikeStats(
        spikes_per_neuron=per_neuron,
        spikes_per_sample=float(per_neuron.sum()),
        input_events_per_sample=float(counts.input_events.sum()) / n,
        rate_hz=per_step / net.config.dt,
        rate_per_step=per_step,
        silent_fraction=float((counts.spikes == 0).to(torch.float64).mean()),
        synops_per_sample=synops,
    )

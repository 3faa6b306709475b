"""Spike statistics of forward passes: what hardware-aware search constrains.

:class:`SpikeCounts` sums events over samples and time and adds up across batches (the online
e-prop mode never holds a whole trajectory, so everything is kept as counts).
:func:`spike_stats` turns counts into per-sample figures with units:

- spikes per neuron (mean per sample) and per layer (input events, then each spiking
  population: ``recurrent`` for a :class:`RecurrentSNN`, ``u``, ``m``, ``h`` for an L²MU);
- mean firing rate over all spiking neurons, in Hz (needs ``dt`` in seconds) and per step;
- fraction of silent neurons: no spike in any of the counted samples;
- synaptic operations per sample: every input event costs one operation per non-zero outgoing
  input weight, every spike one per non-zero outgoing weight of its neuron (recurrent and
  readout for a :class:`RecurrentSNN`; see ``Model.fan_out``), in total and per layer.

An input *event* is a non-zero input entry (inputs are spikes; graded inputs count as events
where non-zero). A model that does not spike (the LMU) has no counts and no statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._model import Model

if TYPE_CHECKING:
    from spiketune.snn._network import RecurrentSNN, Trajectory

#: The one population of a network whose counts name none.
RECURRENT = "recurrent"


@dataclass(frozen=True)
class SpikeCounts:
    """Totals over ``n_samples`` samples of ``n_steps`` steps each.

    ``spikes`` holds every spiking neuron, population after population, in the order and
    sizes of ``populations`` (``(name, size)`` pairs; empty: one population, ``recurrent``).
    """

    input_events: Tensor  # (n_in,)
    spikes: Tensor  # (n_neurons,)
    n_samples: int
    n_steps: int
    populations: tuple[tuple[str, int], ...] = ()

    @property
    def population_sizes(self) -> dict[str, int]:
        """Neurons per population, in ``spikes``' order."""
        return dict(self.populations) if self.populations else {RECURRENT: len(self.spikes)}

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
        if self.populations != other.populations:
            raise ValueError(
                f"cannot add counts of populations {self.populations} and {other.populations}"
            )
        return SpikeCounts(
            input_events=self.input_events + other.input_events,
            spikes=self.spikes + other.spikes,
            n_samples=self.n_samples + other.n_samples,
            n_steps=max(self.n_steps, other.n_steps),
            populations=self.populations,
        )


@dataclass(frozen=True)
class SpikeStats:
    """Per-sample spike figures of a set of forward passes.

    The scalars are totals over every spiking population (what a report and an HPO constraint
    read); ``spikes_per_layer`` and ``synops_per_layer`` split them by layer: ``input``, then
    each population (``populations`` as in :class:`SpikeCounts`).
    """

    spikes_per_neuron: Tensor  # (n_neurons,), mean spikes per sample
    spikes_per_sample: float  # all spiking neurons
    input_events_per_sample: float
    rate_hz: float  # mean over spiking neurons
    rate_per_step: float
    silent_fraction: float
    synops_per_sample: float
    populations: tuple[tuple[str, int], ...] = ()
    synops_per_layer: dict[str, float] = field(default_factory=dict)

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
        """Input events and each population's spikes, per sample."""
        if not self.populations:
            return {"input": self.input_events_per_sample, RECURRENT: self.spikes_per_sample}
        out = {"input": self.input_events_per_sample}
        for name, part in _split(self.spikes_per_neuron, self.populations).items():
            out[name] = float(part.sum())
        return out


def fan_out(net: RecurrentSNN) -> tuple[Tensor, Tensor]:
    """Non-zero outgoing synapses per input channel (n_in,) and per recurrent neuron (n_rec,)."""
    with torch.no_grad():
        f_in = (net.w_in != 0).sum(0)
        f_rec = (net.w_out != 0).sum(0)
        w_rec = net.recurrent_weight()
        if w_rec is not None:
            f_rec = f_rec + (w_rec != 0).sum(0)
    return f_in.to(torch.float64).cpu(), f_rec.to(torch.float64).cpu()


def spike_stats(counts: SpikeCounts, net: Model) -> SpikeStats:
    """Per-sample statistics of ``counts`` for ``net`` (its ``dt`` and ``fan_out()``).

    ``counts`` is what ``net.spike_counts`` returned: None for a model that does not spike
    (the LMU), which has no statistics, and a ConfigError says so."""
    if not isinstance(counts, SpikeCounts):
        rule = "SpikeCounts (a model that does not spike, the LMU, has none)"
        raise ConfigError(Problem("counts", type(counts).__name__, rule))
    if not isinstance(net, Model):
        raise ConfigError(Problem("net", type(net).__name__, "a spiketune.snn.Model"))
    n = max(counts.n_samples, 1)
    per_neuron = counts.spikes / n
    per_step = float(per_neuron.mean()) / max(counts.n_steps, 1)
    fans = net.fan_out()
    f_in = fans["x"]
    # one population (a RecurrentSNN's) is its fan-out vector itself, not a copy of it
    names = list(counts.population_sizes)
    f_rec = fans[names[0]] if len(names) == 1 else torch.cat([fans[k] for k in names])
    synops = float(counts.input_events @ f_in + counts.spikes @ f_rec) / n
    per_layer = {"input": float(counts.input_events @ f_in) / n}
    for name, part in _split(counts.spikes, counts.populations).items():
        per_layer[name] = float(part @ fans[name]) / n
    return SpikeStats(
        spikes_per_neuron=per_neuron,
        spikes_per_sample=float(per_neuron.sum()),
        input_events_per_sample=float(counts.input_events.sum()) / n,
        rate_hz=per_step / net.dt,
        rate_per_step=per_step,
        silent_fraction=float((counts.spikes == 0).to(torch.float64).mean()),
        synops_per_sample=synops,
        populations=counts.populations,
        synops_per_layer=per_layer,
    )


def _split(values: Tensor, populations: tuple[tuple[str, int], ...]) -> dict[str, Tensor]:
    """``values`` (n_neurons,) cut into the populations' parts (one ``recurrent`` part when
    none are named)."""
    if not populations:
        return {RECURRENT: values}
    parts = values.split([size for _, size in populations])
    return {name: part for (name, _), part in zip(populations, parts, strict=True)}

"""The extension point for models: what :class:`~spiketune.snn.Trainer`, checkpoints and spike
statistics need of a network.

Lifecycle of a :class:`Model`:

1. built by its constructor, or by :meth:`Model.from_config` from what :meth:`Model.to_config`
   returned (that is how :func:`~spiketune.snn.load_checkpoint` rebuilds one: the checkpoint
   names the class by :attr:`Model.name`, see ``MODELS``);
2. training: for each batch the learning rule calls ``simulate_for_bptt(x)``, adds
   ``regularisation(trajectory)`` (if any) to ``readout_loss()(trajectory.readout, labels)``
   and back-propagates; ``spike_counts(trajectory)`` goes into the epoch's statistics
   (e-prop, for a :class:`~spiketune.snn.RecurrentSNN` only, computes the same without
   autograd);
3. evaluation, under ``torch.no_grad()``: ``simulate(x).readout`` (B, T, n_out); the
   prediction is the argmax of ``readout_loss().scores`` (the readout summed over the decision
   window), the spike figures :func:`~spiketune.snn.spike_stats` of ``spike_counts``, which
   reads ``fan_out()`` and ``dt``;
4. saved by :func:`~spiketune.snn.save_checkpoint`: ``name``, ``to_config()`` and the
   ``state_dict``; ``architecture()`` is what another checkpoint must match to load into it.

A model that does not spike (the LMU) returns None from ``spike_counts``: its epochs then
report no spike figures (None, not zero, so that an assessor that stops silent networks
leaves it alone).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from spiketune.errors import ConfigError, DataError, Problem

if TYPE_CHECKING:
    from typing import Self

    from spiketune.snn._loss import ReadoutLoss
    from spiketune.snn._stats import SpikeCounts


class Model(nn.Module, ABC):
    """A network that classifies sequences ``x`` (B, T, n_in) from its readout (B, T, n_out);
    see the module docstring for when each method is called.

    Subclasses set ``n_in``, ``n_out`` and ``dt`` (the step, seconds), as attributes or
    properties, and the class attribute ``name`` under which checkpoints record them.
    """

    name: ClassVar[str]
    n_in: int
    n_out: int
    dt: float

    @abstractmethod
    def simulate(self, x: Tensor) -> Any:
        """Run on batch-first ``x`` (B, T, n_in); the result has ``.readout`` (B, T, n_out).
        Evaluation calls it under ``torch.no_grad()``."""

    @abstractmethod
    def simulate_for_bptt(self, x: Tensor) -> Any:
        """The forward pass that BPTT differentiates (spikes through their surrogate gradient);
        the same trajectory as :meth:`simulate`."""

    @abstractmethod
    def readout_loss(self) -> ReadoutLoss:
        """The loss on the readout and the decision window read from it."""

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """Every hyperparameter that rebuilds the model, as plain data (numbers, strings,
        lists, dicts): :meth:`from_config` of it gives the same architecture and dynamics."""

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: Mapping[str, Any], *, device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Self:
        """The model :meth:`to_config` describes, with fresh weights (seed 0); raises
        ConfigError naming each unknown key or bad value."""

    def architecture(self) -> dict[str, Any]:
        """The hyperparameters that decide the shapes of the weights: a checkpoint loads
        into this model only when its own match. Default: the whole config."""
        return self.to_config()

    def regularisation(self, trajectory: Any) -> Tensor | None:
        """A term added to the training loss (not to the reported loss); None: none."""
        return None

    def spike_counts(self, trajectory: Any) -> SpikeCounts | None:
        """Input events and spikes of a forward pass, for :func:`spike_stats`; None for a
        model that does not spike."""
        return None

    def fan_out(self) -> dict[str, Tensor]:
        """Non-zero outgoing synapses of each input channel (key ``"x"``) and of each neuron of
        every spiking population (the populations of :meth:`spike_counts`), float64 on the CPU:
        what one event costs in synaptic operations. Needed only when the model spikes."""
        raise NotImplementedError(f"{type(self).__name__} does not spike")


def check_keys(config: Mapping[str, Any], known: set[str], required: set[str]) -> list[Problem]:
    """Problems of a config mapping: keys that are unknown, keys that are missing."""
    listed = "unknown; known: " + ", ".join(sorted(known))
    problems = [Problem(k, config[k], listed) for k in config if k not in known]
    problems += [Problem(k, None, "required") for k in sorted(required - set(config))]
    return problems


def check_steps(x: Tensor) -> None:
    """Refuse an input (B, T, n) without time steps: a run of no steps has no readout to
    decide from, no state to return and no firing rate; it is a cut gone wrong upstream, which
    a DataError says here rather than an empty result far from the cause. (The Trainer holds
    its data sets to the same rule.)"""
    if x.shape[1] < 1:
        raise DataError(f"input: a batch-first (batch, steps, n_in) tensor with at least one "
                        f"time step, got shape {tuple(x.shape)}")


def seeded_generator(seed: object) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (None: from the operating system's entropy), from
    which a model draws its initial weights: on the CPU so that a seed gives the same weights
    on every device. ``seed`` is an integer that ``manual_seed`` takes (numpy's too); a float
    or a string would be cut or fail inside torch, so it is refused here by name."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
        return gen
    if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
            and -(2**63) <= seed < 2**64):
        raise ConfigError(Problem("seed", seed, "an integer from -2**63 to 2**64 - 1, or None"))
    gen.manual_seed(int(seed))
    return gen

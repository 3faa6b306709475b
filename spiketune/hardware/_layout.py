"""The design rules for a built model: its :class:`NetworkLayout`, and the check of it.

One converter per model class (a table, like the NIR exporter's); a model without one is
refused by name. The LMU has none: it does not spike, it is the non-spiking baseline.
"""

from __future__ import annotations

from collections.abc import Callable

from spiketune.errors import ConfigError, Problem
from spiketune.hardware._design import NetworkLayout, Violation, check_layout
from spiketune.hardware._targets import HardwareTarget
from spiketune.snn import L2MU, LMU, Model, RecurrentSNN

__all__ = ["check_model", "layout_of"]


def _recurrent(net: RecurrentSNN) -> NetworkLayout:
    c = net.config
    return NetworkLayout.recurrent(c.n_in, c.n_rec, c.n_out, recurrent=c.recurrent,
                                   neuron=c.neuron, refractory=c.refractory_steps, reset=c.reset,
                                   bias=c.readout_bias)


def _l2mu(net: L2MU) -> NetworkLayout:
    p = net.params
    return NetworkLayout.l2mu(net.n_in, net.n_out, order=p.order, memory_size=p.memory_size,
                              hidden_size=net.hidden_size)


_LAYOUTS: dict[type[Model], Callable[..., NetworkLayout]] = {
    RecurrentSNN: _recurrent,
    L2MU: _l2mu,
}


def layout_of(model: Model) -> NetworkLayout:
    """The layout of ``model`` as the design rules count it (dense weights; an L²MU's memory
    block diagonal): neurons, fan-in and fan-out per population, synapse count."""
    convert = _LAYOUTS.get(type(model))
    if convert is None:
        if isinstance(model, LMU):
            rule = "a spiking model: the LMU does not spike and maps onto no neuromorphic target"
        else:
            rule = "one of " + ", ".join(cls.__name__ for cls in _LAYOUTS)
        raise ConfigError(Problem("model", type(model).__name__, rule))
    return convert(model)


def check_model(target: str | HardwareTarget, model: Model) -> list[Violation]:
    """The design rules ``model`` breaks on ``target`` (empty: it fits); see
    :func:`check_layout`."""
    return check_layout(target, layout_of(model))

"""Design rules: does a network of these hyperparameters fit a target? Checked before training.

Everything here is arithmetic on a handful of integers: no torch, no weights, well under a
millisecond, so the scheduler can skip an infeasible trial before it starts and record why.
Weights are assumed dense (every synapse present) before training; after training
:func:`~spiketune.hardware.assess_network` counts the non-zero weights instead.

A network is described to the rules as a :class:`NetworkLayout`: input channels, populations
of spiking (hidden) neurons, the readout units, each population with its size, its largest
fan-in and fan-out and its synapse count. :func:`check_design` builds the layout of a
recurrent network (one hidden population); :meth:`NetworkLayout.l2mu` that of an L²MU (three:
``u``, ``m``, ``h``); :func:`check_layout` checks any layout.

The same rules, and the measured ones checked after training, map to one fixed-length list of
Optuna constraint values (:func:`constraints_from`, order :data:`RULES`): ``0`` where a rule
holds, ``(value - limit) / limit`` where it is broken (``1`` for a yes/no rule), so a
feasibility-aware sampler learns how far, not only whether, a region is infeasible.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spiketune.errors import ConfigError, HardwareError, Problem
from spiketune.hardware._targets import HardwareTarget, get_target

__all__ = [
    "NETWORK_KEYS",
    "REQUIRED_KEYS",
    "RULES",
    "NetworkLayout",
    "Population",
    "Violation",
    "check_config",
    "check_design",
    "check_layout",
    "constraints_from",
]

#: The keys :func:`check_config` reads from an ``SNNConfig`` or a trial's parameters: what the
#: design rules need to know of a network. The first three are required.
NETWORK_KEYS: tuple[str, ...] = (
    "n_in", "n_rec", "n_out", "recurrent", "neuron", "refractory_steps", "reset", "readout_bias",
)
REQUIRED_KEYS: tuple[str, ...] = NETWORK_KEYS[:3]

#: Every rule, in the order of :func:`constraints_from`'s list. The last four are measured
#: after training; the others follow from the hyperparameters.
RULES: tuple[str, ...] = (
    "max_inputs",
    "max_hidden",
    "max_outputs",
    "max_neurons",
    "max_fan_in",
    "max_fan_out",
    "neuron",
    "reset",
    "refractory",
    "bias",
    "max_spikes_per_step",
    "max_input_events_per_step",
    "state_bits",
    "max_spikes_per_neuron_step",
)


@dataclass(frozen=True)
class Violation:
    """One broken rule: its name (a field of the target), the target's limit and the value met.

    For yes/no rules (``neuron``, ``reset``, ``refractory``, ``bias``) ``limit`` is what the target
    accepts and ``value`` what the network needs.
    """

    rule: str
    limit: Any
    value: Any
    target: str = ""
    detail: str = ""

    @property
    def excess(self) -> float:
        """How far the rule is broken, normalised: ``(value - limit) / limit``, or 1 for a
        yes/no rule. Always > 0."""
        if _is_number(self.value) and _is_number(self.limit) and self.limit > 0:
            return max(float(self.value - self.limit) / float(self.limit), 1e-9)
        return 1.0

    def __str__(self) -> str:
        where = f"{self.target}: " if self.target else ""
        what = f" ({self.detail})" if self.detail else ""
        if _is_number(self.value):
            return f"{where}{self.rule} = {self.value} exceeds the limit {self.limit}{what}"
        return f"{where}{self.rule} = {self.value!r} is not supported; accepted: {self.limit}{what}"


@dataclass(frozen=True)
class Population:
    """``neurons`` neurons, each receiving at most ``fan_in`` synapses and sending at most
    ``fan_out``; ``synapses``: the population's incoming synapses in all (its weights)."""

    name: str
    neurons: int
    fan_in: int
    fan_out: int
    synapses: int


@dataclass(frozen=True)
class NetworkLayout:
    """What the design rules see of a network: ``n_in`` input channels, the ``hidden``
    populations of spiking neurons, the ``readout`` units, and the neuron model they need
    (``neuron``, ``reset``, ``refractory`` steps) and whether any of its neurons takes a bias.

    Counting conventions as in :mod:`spiketune.hardware._targets`: *hidden* neurons are every
    spiking population's, *neurons* are hidden plus readout units, fan-out is checked for the
    hidden neurons. Every synapse counts, learnt or fixed.
    """

    n_in: int
    hidden: tuple[Population, ...]
    readout: Population
    neuron: str = "lif"
    reset: str = "subtract"
    refractory: int = 0
    bias: bool = False

    @property
    def n_hidden(self) -> int:
        return sum(p.neurons for p in self.hidden)

    @property
    def synapses(self) -> int:
        """Every synapse of the network (its weight count), readout included."""
        return sum(p.synapses for p in self.hidden) + self.readout.synapses

    def measured(self) -> dict[str, int]:
        """The value of each numeric design rule, in :data:`RULES`' order."""
        return {
            "max_inputs": self.n_in,
            "max_hidden": self.n_hidden,
            "max_outputs": self.readout.neurons,
            "max_neurons": self.n_hidden + self.readout.neurons,
            "max_fan_in": max(p.fan_in for p in (*self.hidden, self.readout)),
            "max_fan_out": max(p.fan_out for p in self.hidden),
        }

    @classmethod
    def recurrent(
        cls, n_in: int, n_rec: int, n_out: int, *, recurrent: bool = True,
        neuron: str = "lif", refractory: int = 0, reset: str = "subtract", bias: bool = False,
    ) -> NetworkLayout:
        """A dense recurrent layer (no self-connections) and its readout (``bias``: with a
        bias on its units)."""
        rec_in = n_rec - 1 if recurrent else 0
        hidden = Population("recurrent", n_rec, n_in + rec_in, rec_in + n_out,
                            n_rec * (n_in + rec_in))
        readout = Population("readout", n_out, n_rec, 0, n_out * n_rec)
        return cls(n_in, (hidden,), readout, neuron, reset, refractory, bias)

    @classmethod
    def l2mu(
        cls, n_in: int, n_out: int, *, order: int, memory_size: int, hidden_size: int
    ) -> NetworkLayout:
        """An L²MU: ``u`` (``memory_size`` encoder neurons), ``m`` (``memory_size * order``
        memory neurons) and ``h`` (``hidden_size``), LIF neurons reset by subtraction.

        Dense encoders and kernels; the memory's fixed ``Abar`` and ``Bbar`` connect only
        within a channel (block diagonal), so a memory neuron hears the ``order`` neurons of
        its channel and its channel's encoder neuron::

            u: fan-in n_in + H + n_memory    fan-out order
            m: fan-in order + 1              fan-out M + order + H
            h: fan-in n_in + H + n_memory    fan-out M + H + n_out
            readout: fan-in H
        """
        m, h = memory_size, hidden_size
        n_mem = m * order
        dense_in = n_in + h + n_mem
        hidden = (
            Population("u", m, dense_in, order, m * dense_in),
            Population("m", n_mem, order + 1, m + order + h, n_mem * (order + 1)),
            Population("h", h, dense_in, m + h + n_out, h * dense_in),
        )
        return cls(n_in, hidden, Population("readout", n_out, h, 0, n_out * h))


def check_design(
    target: str | HardwareTarget,
    n_in: int,
    n_rec: int,
    n_out: int,
    *,
    recurrent: bool = True,
    neuron: str = "lif",
    refractory: int = 0,
    reset: str = "subtract",
    readout_bias: bool = False,
) -> list[Violation]:
    """The rules a dense network of this shape breaks on ``target`` (empty: it fits).

    ``n_in`` input channels, ``n_rec`` hidden neurons, ``n_out`` readout units; ``recurrent``:
    whether hidden neurons connect to each other (no self-connections); ``neuron``: "lif",
    "alif" or "cuba_lif"; ``refractory``: the refractory period in steps (0: none); ``reset``:
    "subtract", "zero" or "subtract_at_spike"; ``readout_bias``: whether the readout units
    take a bias. Raises ConfigError for
    values that are not a network at all.
    """
    tgt = get_target(target)
    problems = [
        Problem(name, value, "an integer >= 1")
        for name, value in (("n_in", n_in), ("n_rec", n_rec), ("n_out", n_out))
        if not (is_integer(value) and value >= 1)
    ]
    if not (is_integer(refractory) and refractory >= 0):
        problems.append(Problem("refractory", refractory, "an integer >= 0 (steps)"))
    problems += [Problem(name, value, f"a name such as {examples}")
                 for name, value, examples in (("neuron", neuron, "'lif', 'alif' or 'cuba_lif'"),
                                               ("reset", reset, "'subtract' or 'zero'"))
                 if not isinstance(value, str)]
    if problems:
        raise ConfigError(problems, source="check_design")
    layout = NetworkLayout.recurrent(int(n_in), int(n_rec), int(n_out), recurrent=recurrent,
                                     neuron=neuron, refractory=int(refractory), reset=reset,
                                     bias=bool(readout_bias))
    return check_layout(tgt, layout)


def check_layout(target: str | HardwareTarget, layout: NetworkLayout) -> list[Violation]:
    """The rules a network of this layout breaks on ``target`` (empty: it fits).

    With several hidden populations, a broken fan-in or fan-out rule names in its ``detail``
    the populations that break it."""
    tgt = get_target(target)
    out = limit_violations(tgt, layout.measured())
    if len(layout.hidden) > 1:
        out = [_name_populations(v, layout) for v in out]
    if layout.neuron not in tgt.neurons:
        out.append(Violation("neuron", sorted(tgt.neurons), layout.neuron, tgt.name))
    if layout.reset not in tgt.resets:
        out.append(Violation("reset", sorted(tgt.resets), layout.reset, tgt.name))
    if layout.refractory > 0 and not tgt.refractory:
        out.append(
            Violation("refractory", 0, layout.refractory, tgt.name, "steps; the target has none")
        )
    if layout.bias and not tgt.bias:
        out.append(Violation("bias", "none", "a readout bias", tgt.name,
                             "the target's neurons take no bias: train with readout_bias=False"))
    return out


def _name_populations(v: Violation, layout: NetworkLayout) -> Violation:
    """``v`` with the populations over its limit named, for the fan-in and fan-out rules."""
    if v.rule == "max_fan_in":
        over = [p for p in (*layout.hidden, layout.readout) if p.fan_in > v.limit]
        what = [f"{p.name} {p.fan_in}" for p in over]
    elif v.rule == "max_fan_out":
        what = [f"{p.name} {p.fan_out}" for p in layout.hidden if p.fan_out > v.limit]
    else:
        return v
    return Violation(v.rule, v.limit, v.value, v.target, "populations " + ", ".join(what))


_COUNT_KEYS = frozenset({"n_in", "n_rec", "n_out", "refractory_steps"})


def check_config(target: str | HardwareTarget, config: Any) -> list[Violation]:
    """:func:`check_design` for an ``SNNConfig`` or a trial's flat parameter dict.

    It reads the keys of :data:`NETWORK_KEYS`. Missing keys take ``SNNConfig``'s defaults
    (``recurrent`` True, ``neuron`` "lif", ``refractory_steps`` 0, ``reset`` "subtract",
    ``readout_bias`` True);
    ``n_in``, ``n_rec``, ``n_out`` are required. Other keys are ignored.
    """

    def get(key: str, default: Any = None) -> Any:
        value = config.get(key, default) if isinstance(config, Mapping) \
            else getattr(config, key, default)
        # A trial's quniform parameter is a whole float (64.0): a count all the same, as the
        # experiment's own check reads it.
        whole = isinstance(value, float) and value.is_integer()
        return int(value) if whole and key in _COUNT_KEYS else value

    missing = [k for k in REQUIRED_KEYS if get(k) is None]
    if missing:
        raise ConfigError(
            [Problem(k, None, "required to check the design") for k in missing],
            source="check_config",
        )
    return check_design(
        target,
        get("n_in"),
        get("n_rec"),
        get("n_out"),
        recurrent=bool(get("recurrent", True)),
        neuron=get("neuron", "lif"),
        refractory=get("refractory_steps", 0),
        reset=get("reset", "subtract"),
        readout_bias=bool(get("readout_bias", True)),
    )


def limit_violations(target: HardwareTarget, measured: Mapping[str, float]) -> list[Violation]:
    """One violation per numeric limit of ``target`` that a measured value exceeds."""
    out = []
    for rule, value in measured.items():
        limit = getattr(target, rule)
        if limit is not None and value > limit:
            out.append(Violation(rule, limit, value, target.name))
    return out


def constraints_from(
    violations: Iterable[Violation], rules: tuple[str, ...] = RULES
) -> list[float]:
    """Optuna constraint values, one per rule of ``rules`` (default :data:`RULES`), in order.

    ``0.0`` where no violation names the rule, else the largest normalised excess (> 0). A
    trial is feasible for Optuna when every value is <= 0. Use the same ``rules`` for every
    trial of a study: Optuna needs lists of one length.
    """
    worst = dict.fromkeys(rules, 0.0)
    for v in violations:
        if v.rule not in worst:
            raise HardwareError(f"violation of rule {v.rule!r}, which is not in {list(rules)}")
        worst[v.rule] = max(worst[v.rule], v.excess)
    return [worst[r] for r in rules]


def is_integer(x: Any) -> bool:
    """An integer, Python's or numpy's (``np.int64`` from an array or a search space, as
    ``SNNConfig`` takes them), never a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)

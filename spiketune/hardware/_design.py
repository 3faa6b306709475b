"""Design rules: does a network of these hyperparameters fit a target? Checked before training.

Everything here is arithmetic on a handful of integers: no torch, no weights, well under a
millisecond, so the scheduler can skip an infeasible trial before it starts and record why.
Weights are assumed dense (every synapse present) before training; after training
:func:`~spiketune.hardware.assess_network` counts the non-zero weights instead.

The same rules, and the measured ones checked after training, map to one fixed-length list of
Optuna constraint values (:func:`constraints_from`, order :data:`RULES`): ``0`` where a rule
holds, ``(value - limit) / limit`` where it is broken (``1`` for a yes/no rule), so a
feasibility-aware sampler learns how far, not only whether, a region is infeasible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spiketune.errors import ConfigError, HardwareError, Problem
from spiketune.hardware._targets import HardwareTarget, get_target

__all__ = [
    "NETWORK_KEYS",
    "REQUIRED_KEYS",
    "RULES",
    "Violation",
    "check_config",
    "check_design",
    "constraints_from",
]

#: The keys :func:`check_config` reads from an ``SNNConfig`` or a trial's parameters: what the
#: design rules need to know of a network. The first three are required.
NETWORK_KEYS: tuple[str, ...] = (
    "n_in", "n_rec", "n_out", "recurrent", "neuron", "refractory_steps", "reset",
)
REQUIRED_KEYS: tuple[str, ...] = NETWORK_KEYS[:3]

#: Every rule, in the order of :func:`constraints_from`'s list. The last three are measured
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
    "max_spikes_per_step",
    "max_input_events_per_step",
    "state_bits",
)


@dataclass(frozen=True)
class Violation:
    """One broken rule: its name (a field of the target), the target's limit and the value met.

    For yes/no rules (``neuron``, ``reset``, ``refractory``) ``limit`` is what the target
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
) -> list[Violation]:
    """The rules a dense network of this shape breaks on ``target`` (empty: it fits).

    ``n_in`` input channels, ``n_rec`` hidden neurons, ``n_out`` readout units; ``recurrent``:
    whether hidden neurons connect to each other (no self-connections); ``neuron``: "lif" or
    "alif"; ``refractory``: the refractory period in steps (0: none); ``reset``: "subtract" or
    "zero". Raises ConfigError for values that are not a network at all.
    """
    tgt = get_target(target)
    problems = [
        Problem(name, value, "an integer >= 1")
        for name, value in (("n_in", n_in), ("n_rec", n_rec), ("n_out", n_out))
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    ]
    if not (isinstance(refractory, int) and not isinstance(refractory, bool) and refractory >= 0):
        problems.append(Problem("refractory", refractory, "an integer >= 0 (steps)"))
    if problems:
        raise ConfigError(problems, source="check_design")

    rec_in = n_rec - 1 if recurrent else 0  # no self-connections
    measured = {
        "max_inputs": n_in,
        "max_hidden": n_rec,
        "max_outputs": n_out,
        "max_neurons": n_rec + n_out,
        "max_fan_in": max(n_in + rec_in, n_rec),
        "max_fan_out": rec_in + n_out,
    }
    out = limit_violations(tgt, measured)
    if neuron not in tgt.neurons:
        out.append(Violation("neuron", sorted(tgt.neurons), neuron, tgt.name))
    if reset not in tgt.resets:
        out.append(Violation("reset", sorted(tgt.resets), reset, tgt.name))
    if refractory > 0 and not tgt.refractory:
        out.append(
            Violation("refractory", 0, refractory, tgt.name, "steps; the target has none")
        )
    return out


def check_config(target: str | HardwareTarget, config: Any) -> list[Violation]:
    """:func:`check_design` for an ``SNNConfig`` or a trial's flat parameter dict.

    It reads the keys of :data:`NETWORK_KEYS`. Missing keys take ``SNNConfig``'s defaults
    (``recurrent`` True, ``neuron`` "lif", ``refractory_steps`` 0, ``reset`` "subtract");
    ``n_in``, ``n_rec``, ``n_out`` are required. Other keys are ignored.
    """

    def get(key: str, default: Any = None) -> Any:
        if isinstance(config, Mapping):
            return config.get(key, default)
        return getattr(config, key, default)

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


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)

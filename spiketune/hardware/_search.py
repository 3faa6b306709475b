"""The design check of a hyperparameter search: every trial's network, checked before it runs.

An experiment names a target and the network facts its search space does not vary
(``hardware = {target = "xylo-audio2", n_in = 12, n_out = 7}``); each trial's parameters give
the rest (``n_rec``, ``neuron``, ...). :class:`ParameterCheck` holds the first part, validated
once, and maps each trial's parameters to the network :func:`check_config` reads: which keys
describe the network (:data:`NETWORK_KEYS`), what a nested choice means (its ``_name``), and
that ``quniform``'s ``64.0`` is the integer 64. That knowledge of the SNN's parameter names
lives here, next to the rules, so the search engine needs only this class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spiketune.errors import ConfigError, Problem
from spiketune.hardware._design import NETWORK_KEYS, REQUIRED_KEYS, Violation, check_config
from spiketune.hardware._targets import HardwareTarget, get_target

__all__ = ["ParameterCheck"]


@dataclass(frozen=True)
class ParameterCheck:
    """A target, the limits a user overrode, and the network facts a search does not vary.

    Lifecycle: :meth:`from_table` validates a configuration's table once (target name, limits
    to override, fixed network facts, which of :data:`NETWORK_KEYS` the search space gives);
    :meth:`violations` then checks each trial's parameters before the trial starts. Pure
    arithmetic: microseconds per trial, no torch.
    """

    target: HardwareTarget
    fixed: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], parameter_names: Iterable[str] = (), *,
        name: str = "hardware",
    ) -> ParameterCheck:
        """Validate a table ``{target: ..., <limit>: ..., <network fact>: ...}``.

        ``parameter_names``: the search space's top-level names (a network fact is given in
        one place: the table or the search space; ``n_in``, ``n_rec`` and ``n_out`` in one of
        them). ``name``: the table's key in the configuration, used in the problems'
        fields (``hardware.max_hidden``). Raises :class:`ConfigError` listing every problem.
        """
        if not isinstance(table, Mapping):
            raise ConfigError(Problem(name, table, "must be a table {target = ..., ...}"))
        overrides, fixed, problems = _sort_table(table, set(parameter_names), name)
        target_name = table.get("target")
        if target_name is None:
            problems.insert(0, Problem(f"{name}.target", None, "required: a target name"))
            raise ConfigError(problems)
        try:
            target = get_target(target_name, **overrides)
        except ConfigError as exc:
            problems += _within(name, exc)
            try:  # a bad limit: the facts are still checked, so every problem is said at once
                target = get_target(target_name)
            except ConfigError:
                raise ConfigError(problems) from None
        # the fixed facts alone must make sense (types); a trial's parameters come later
        problems += [Problem(f"{name}.{key}", fixed[key], "true or false")
                     for key in _FLAGS if key in fixed and not isinstance(fixed[key], bool)]
        if "neuron" in fixed and fixed["neuron"] not in _NEURONS:
            problems.append(Problem(f"{name}.neuron", fixed["neuron"],
                                    f"one of {', '.join(_NEURONS)}"))
        broken: list[Violation] = []
        try:
            # the searched sizes at their smallest, the rest as every trial will have them
            broken = check_config(target, {**dict.fromkeys(REQUIRED_KEYS, 1), **fixed})
        except ConfigError as exc:
            known = {p.field for p in problems}
            problems += [p for p in _within(name, exc) if p.field not in known]
        if not problems:  # rules are judged on sound facts and limits only
            searched = set(parameter_names)
            problems += [_unfit(name, v, fixed) for v in broken
                         if not _RULE_CHOICES.get(v.rule, set()) & searched]
        if problems:
            raise ConfigError(problems)
        return cls(target, fixed, overrides)

    def table(self) -> dict[str, Any]:
        """The canonical table: the target's canonical name, the overrides, the fixed facts."""
        return {"target": self.target.name, **self.overrides, **self.fixed}

    def network(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The network facts of a trial: the fixed ones and those of its parameters, a nested
        choice (``{"_name": "alif", ...}``) as its name, whole numbers as ints."""
        out = dict(self.fixed)
        for key in NETWORK_KEYS:
            if key in parameters:
                out[key] = _plain(parameters[key])
        return out

    def violations(self, parameters: Mapping[str, Any]) -> list[Violation]:
        """The rules a trial of these parameters breaks (empty: it fits). Raises
        :class:`ConfigError` naming the network fact that is not a network at all."""
        return check_config(self.target, self.network(parameters))


#: Network facts that are true or false.
_FLAGS = ("recurrent", "readout_bias")
_NEURONS = ("lif", "alif", "cuba_lif")
#: The facts of a rule other than the sizes: a trial that searches one may fit where the
#: fixed facts alone do not. A rule the sizes alone break at their smallest (and the fixed
#: or default facts) breaks for every trial.
_RULE_CHOICES: dict[str, set[str]] = {
    "max_fan_in": {"recurrent"}, "max_fan_out": {"recurrent"}, "neuron": {"neuron"},
    "reset": {"reset"}, "refractory": {"refractory_steps"}, "bias": {"readout_bias"},
}
#: The fact a rule is said of, in a refusal.
_RULE_FACT = {"max_inputs": "n_in", "max_outputs": "n_out", "max_hidden": "n_rec",
              "neuron": "neuron", "reset": "reset", "refractory": "refractory_steps",
              "bias": "readout_bias"}


def _unfit(name: str, violation: Violation, fixed: Mapping[str, Any]) -> Problem:
    """A rule of the target that every trial would break, as the problem of the fact that
    breaks it (the table itself for a rule of several facts)."""
    fact = _RULE_FACT.get(violation.rule)
    field = f"{name}.{fact}" if fact in fixed else name
    sized = violation.rule.startswith("max_")
    gets = f"{violation.value}{' at the smallest sizes searched' if sized else ''}"
    detail = f"; {violation.detail}" if violation.detail else ""
    return Problem(field, fixed.get(fact, violation.value),
                   f"a network the target {violation.target} runs: every trial would break "
                   f"its rule {violation.rule} (allows {violation.limit}, gets {gets}"
                   f"{detail})")


def _sort_table(
    table: Mapping[str, Any], names: set[str], name: str
) -> tuple[dict[str, Any], dict[str, Any], list[Problem]]:
    """A table's keys sorted into (limit overrides, fixed network facts, problems): unknown
    keys, facts also given by the search space, required facts given nowhere."""
    limit_fields = set(HardwareTarget.model_fields)
    overrides: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in table.items():
        if key == "target":
            continue
        if key in limit_fields:
            overrides[key] = value
        elif key not in NETWORK_KEYS:
            problems.append(Problem(
                f"{name}.{key}", value, "unknown key; accepted: target, the target's limits "
                f"({', '.join(sorted(limit_fields))}) and network facts "
                f"({', '.join(NETWORK_KEYS)})"))
        elif key in names:
            problems.append(Problem(f"{name}.{key}", value, "is also a search-space parameter; "
                                    "give it in one place"))
        else:
            fixed[key] = value
    for key in REQUIRED_KEYS:
        if key not in names and key not in table:
            problems.append(Problem(f"{name}.{key}", None, "required for the design check: a "
                                    f"fixed value ({name}.{key} = ...) or a search-space "
                                    f"parameter named {key}"))
    return overrides, fixed, problems


def _within(name: str, exc: ConfigError) -> list[Problem]:
    """The problems of ``exc`` with their fields inside the table ``name``."""
    return [Problem(f"{name}.{p.field}", p.value, p.rule) for p in exc.problems]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping) and "_name" in value:
        return value["_name"]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value

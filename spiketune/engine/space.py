"""Search spaces in NNI's JSON format, sampled through Optuna with NNI's exact value semantics.

A space maps parameter names to ``{"_type": T, "_value": [...]}``. The value a trial receives
follows NNI (``nni/common/hpo_utils``). Each parameter has two Optuna forms: the **stored**
one, which the experiment's study records as the trial's ``params`` (what optuna-dashboard,
``optuna.visualization`` and ``study.trials_dataframe()`` show), and the **search** one, the
coordinates in which the tuner's sampler draws (on the scheduler's in-memory working study):

==============  ================================  ==========================  ====================
``_type``       value the trial receives          stored ``params`` (the      search coordinates
                                                  received value, under)      (if different)
==============  ================================  ==========================  ====================
choice          one option, as written (nested:   categorical over the
                a dict ``{"_name": ..., sub-      options (their ``_name``
                params...}``)                     for nested ones; list
                                                  options as JSON text)
randint         int in ``[lower, upper)``         int, ``[lower, upper-1]``
uniform         float in ``[low, high]``          float in ``[low, high]``
loguniform      ``exp(U(log low, log high))``     the same, log scale
quniform        ``clip(round(x / q) * q, low,     float in ``[low, high]``    x, NNI's continuous
                high)``                                                       draw, same range
qloguniform     the same, x on a log scale        the same, log scale         x, log scale
normal          ``mu + sigma * Phi^-1(u)``        float in the reachable      u, a float in (0, 1)
                                                  range (below)               (below)
qnormal         ``round(normal / q) * q``         the same                    u
lognormal       ``exp(normal)``                   the same, log scale         u
qlognormal      ``round(exp(normal) / q) * q``    the same (log scale when    u
                                                  0 is not reachable)
==============  ================================  ==========================  ====================

Why search coordinates: Optuna's distributions are bounded and cannot express NNI's rounding,
so the quantised types are searched through NNI's continuous draw and rounded afterwards
(exactly what NNI's own tuners do), and the unbounded normals are searched as a uniform ``u``
mapped through the inverse normal CDF, so that a random draw follows NNI's normal law.

**Where a normal type's value is stored.** ``u`` is clipped to ``[2**-53, 1 - 2**-53]``
(about +-8.2 sigma), so a normal type reaches only the values between those of the two ends
of ``u``; its stored distribution is that *reachable range*, a ``FloatDistribution(f(2**-53),
f(1 - 2**-53))`` where ``f`` is the type's formula (``mu +- 8.2 sigma`` for ``normal``), on a
log scale for ``lognormal`` (and ``qlognormal`` when its lowest value is above 0).

**No search coordinate is stored.** The tuner's view of a stored trial is rebuilt from what it
received (:meth:`SearchSpace.search_point`): a quantised value is its own continuous draw (the
rounding maps every value it produces onto itself), a normal type's ``u`` is the normal CDF of
the value (for the q-types: of the rounded value), a choice is its option. Nothing internal
needs a name, so nothing internal can show in Optuna's tools. The same inversion gives the
point a retry enqueues on the working study (:meth:`SearchSpace.search_params` of the values
the lost trial received); grid points are enqueued in search coordinates too
(:meth:`SearchSpace.grid_optuna_params`).

Tuner constants (``TRIAL_BUDGET``) are stored as a categorical of one choice; the Batch form
stores each key of the parameter set it handed out (a categorical over the values that key
takes in the batch; JSON text when a value is not a plain number, string, bool or null, or
when two values would be equal to Optuna, such as ``1`` and ``True``) and searches the index of
the set.

Studies written by spiketune 0.1.0 stored the search coordinates as ``params``. Such a study
resumes in that layout (:meth:`SearchSpace.stores_search_coordinates` tells), so each of its
parameters keeps one distribution (Optuna refuses a second kind, or log setting, for a name);
its ``parameters`` user attribute holds the received values, as in every study.

Nested choices register the outer choice under its path (``"optimizer"``) and each option's
sub-parameters under ``"<path>/<_name>/<sub-name>"``, so every Optuna parameter has one stable
name and one distribution, which TPE and friends need, and two options may give a
sub-parameter of one name different kinds or ranges.

Rounding uses Python's ``round`` (halves to even, as NumPy does in NNI). Quantised values are
floats such as ``3 * 0.1 == 0.30000000000000004``, exactly what NNI hands out.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from spiketune._values import flatten, is_finite
from spiketune.errors import Problem, SearchSpaceError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = ["GRID_LIMIT", "SearchSpace"]

#: Grids larger than this are refused: enumerating them is never what a user meant.
GRID_LIMIT = 1_000_000

TYPES = (
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)

# The latent u of the normal types stays strictly inside (0, 1).
_U_LOW = 2.0**-53
_U_HIGH = 1.0 - 2.0**-53
_STANDARD_NORMAL = NormalDist()
_SQRT_HALF = math.sqrt(0.5)
# exp(x) overflows a float above this.
_EXP_MAX = math.log(1.7976931348623157e308)
_PRIMITIVE = (str, int, float, bool, type(None))

#: Optuna params and their distributions, as two dicts keyed by Optuna name.
Point = tuple[dict[str, Any], dict[str, "BaseDistribution"]]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _quantise(x: float, q: float) -> float:
    """NNI's ``round(x / q) * q``: an int count of ``q`` times ``q``, a float."""
    return float(round(x / q) * q)


def _categorical(choices: Sequence[Any]) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(list(choices))


def _float(low: float, high: float, log: bool) -> BaseDistribution:
    from optuna.distributions import FloatDistribution

    return FloatDistribution(low, high, log=log)


def _find(labels: Sequence[Any], value: Any) -> int | None:
    """The index of ``value`` among ``labels``, comparing type and value (``1`` is not
    ``1.0`` or ``True``); None when it is not there."""
    for i, candidate in enumerate(labels):
        if type(candidate) is type(value) and candidate == value:
            return i
    return None


def _plain_labels(values: Sequence[Any]) -> bool:
    """Whether ``values`` can be a categorical's choices as they are: plain JSON scalars
    (floats finite), no two of which Optuna would take for one value (it compares with ``==``,
    so ``1``, ``1.0`` and ``True`` are one)."""
    for i, v in enumerate(values):
        if not isinstance(v, _PRIMITIVE) or (isinstance(v, float) and not math.isfinite(v)):
            return False
        if any(v == w for w in values[:i]):
            return False
    return True


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class _Param:
    """One parameter: its Optuna name (``key``), how to draw and enumerate it, and its two
    Optuna forms (see the module docstring)."""

    key: str

    def sample(self, trial: optuna.Trial) -> Any:
        raise NotImplementedError

    def grid(self) -> list[tuple[dict[str, Any], Any]] | None:
        """Every (search params, value) pair, or None when the set of values is not finite."""
        return None

    def grid_size(self) -> int | None:
        points = self.grid()
        return None if points is None else len(points)

    @cached_property
    def distribution(self) -> BaseDistribution:
        """The search distribution (what ``sample`` suggests)."""
        raise NotImplementedError

    @cached_property
    def stored_distribution(self) -> BaseDistribution:
        """The distribution the study records the received value under."""
        return self.distribution

    def store(self, value: Any, out: Point) -> None:
        """Add the stored form of the received ``value`` to ``out``."""
        out[0][self.key] = value
        out[1][self.key] = self.stored_distribution

    def locate(self, value: Any, out: Point) -> None:
        """Add the search coordinates of the received ``value`` to ``out``; nothing when
        ``value`` is not one this parameter hands out (the sampler then does without)."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Choice(_Param):
    options: tuple[Any, ...]
    labels: tuple[Any, ...]
    nested: tuple[SearchSpace, ...] | None

    def sample(self, trial: optuna.Trial) -> Any:
        label = trial.suggest_categorical(self.key, list(self.labels))
        index = self._index(label)
        if self.nested is None:
            return copy.deepcopy(self.options[index])
        name = copy.deepcopy(self.options[index]["_name"])
        return {"_name": name, **self.nested[index].sample(trial)}

    def _index(self, label: Any) -> int:
        # labels are pairwise distinct (checked when built), also under ==, so this is exact
        found = _find(self.labels, label)
        return self.labels.index(label) if found is None else found

    @cached_property
    def _json_labels(self) -> bool:
        return self.nested is None and not all(isinstance(o, _PRIMITIVE) for o in self.options)

    def option_of(self, value: Any) -> int | None:
        """Which option a received ``value`` is (None: none of them)."""
        if self.nested is not None:
            if not isinstance(value, Mapping) or "_name" not in value:
                return None
            return _find(self.labels, value["_name"])
        if self._json_labels:
            try:
                return _find(self.labels, _json_text(value))
            except (TypeError, ValueError):
                return None
        return _find(self.labels, value)

    @cached_property
    def distribution(self) -> BaseDistribution:
        return _categorical(self.labels)

    def _place(self, value: Any, out: Point, *, search: bool) -> None:
        index = self.option_of(value)
        if index is None:
            return
        out[0][self.key] = self.labels[index]
        out[1][self.key] = self.distribution
        if self.nested is not None:
            self.nested[index]._place(value, out, search=search)

    def store(self, value: Any, out: Point) -> None:
        self._place(value, out, search=False)

    def locate(self, value: Any, out: Point) -> None:
        self._place(value, out, search=True)

    def grid(self) -> list[tuple[dict[str, Any], Any]] | None:
        points: list[tuple[dict[str, Any], Any]] = []
        for i, (option, label) in enumerate(zip(self.options, self.labels, strict=True)):
            if self.nested is None:
                points.append(({self.key: label}, copy.deepcopy(option)))
                continue
            sub = self.nested[i]._grid_points()
            if sub is None:
                return None
            for params, value in sub:
                points.append(({self.key: label, **params}, {"_name": option["_name"], **value}))
        return points

    def grid_size(self) -> int | None:
        if self.nested is None:
            return len(self.options)
        total = 0
        for sub in self.nested:
            size = sub.grid_size()
            if size is None:
                return None
            total += size
        return total


@dataclass(frozen=True)
class _RandInt(_Param):
    lower: int
    upper: int  # exclusive, as in NNI

    def sample(self, trial: optuna.Trial) -> Any:
        return int(trial.suggest_int(self.key, self.lower, self.upper - 1))

    @cached_property
    def distribution(self) -> BaseDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.lower, self.upper - 1)

    def locate(self, value: Any, out: Point) -> None:
        if type(value) is int and self.lower <= value < self.upper:
            out[0][self.key] = value
            out[1][self.key] = self.distribution

    def grid(self) -> list[tuple[dict[str, Any], Any]] | None:
        return [({self.key: v}, v) for v in range(self.lower, self.upper)]

    def grid_size(self) -> int | None:
        return self.upper - self.lower


@dataclass(frozen=True)
class _Uniform(_Param):
    """uniform and loguniform, and their quantised forms (``q``): a quantised value is stored
    as itself and searched as its own continuous draw, under the same distribution."""

    low: float
    high: float
    log: bool
    q: float | None

    def sample(self, trial: optuna.Trial) -> Any:
        x = float(trial.suggest_float(self.key, self.low, self.high, log=self.log))
        if self.q is None:
            return x
        return _clip(_quantise(x, self.q), self.low, self.high)

    @cached_property
    def distribution(self) -> BaseDistribution:
        return _float(self.low, self.high, self.log)

    def locate(self, value: Any, out: Point) -> None:
        if _is_number(value) and self.low <= value <= self.high:
            out[0][self.key] = float(value)
            out[1][self.key] = self.distribution

    def _counts(self) -> range:
        assert self.q is not None
        # round() is monotone, so every count between these two is reached by some x.
        return range(round(self.low / self.q), round(self.high / self.q) + 1)

    def grid(self) -> list[tuple[dict[str, Any], Any]] | None:
        if self.q is None:
            return None
        values: list[float] = []
        for k in self._counts():
            v = _clip(float(k * self.q), self.low, self.high)
            if not values or v != values[-1]:
                values.append(v)
        return [({self.key: v}, v) for v in values]

    def grid_size(self) -> int | None:
        if self.q is None:
            return None
        counts = self._counts()  # len() of a range past 2**63 raises OverflowError
        return max(0, counts.stop - counts.start)


@dataclass(frozen=True)
class _Normal(_Param):
    """normal, qnormal, lognormal, qlognormal: searched as ``u``, stored as the value, under
    the range of values ``u``'s clipped interval reaches."""

    mu: float
    sigma: float
    log: bool
    q: float | None

    def value(self, u: float) -> float:
        """NNI's value for the search coordinate ``u`` (monotone in ``u``)."""
        x = self.mu + self.sigma * _STANDARD_NORMAL.inv_cdf(u)
        if self.log:
            x = math.exp(x)
        if self.q is not None:
            x = _quantise(x, self.q)
        return float(x)

    def sample(self, trial: optuna.Trial) -> Any:
        return self.value(float(trial.suggest_float(self.key, _U_LOW, _U_HIGH)))

    @cached_property
    def distribution(self) -> BaseDistribution:
        return _float(_U_LOW, _U_HIGH, False)

    @cached_property
    def reachable(self) -> tuple[float, float]:
        """The lowest and highest value this parameter can hand out."""
        return self.value(_U_LOW), self.value(_U_HIGH)

    @cached_property
    def stored_distribution(self) -> BaseDistribution:
        low, high = self.reachable
        return _float(low, high, self.log and low > 0)

    def locate(self, value: Any, out: Point) -> None:
        if not _is_number(value) or math.isnan(value):
            return
        x = float(value)
        if self.log:
            x = math.log(x) if x > 0 else -math.inf
        # 0.5 erfc(-z / sqrt 2) is the normal CDF, accurate in the lower tail too
        u = 0.5 * math.erfc(-(x - self.mu) / self.sigma * _SQRT_HALF)
        out[0][self.key] = _clip(u, _U_LOW, _U_HIGH)
        out[1][self.key] = self.distribution


@dataclass(frozen=True)
class _Batch(_Param):
    """NNI's BatchTuner form: one ``choice`` whose options are whole parameter sets. Searched
    as the index of a set; stored as the set's own keys."""

    configurations: tuple[dict[str, Any], ...]

    def sample(self, trial: optuna.Trial) -> Any:
        index = trial.suggest_categorical(self.key, list(range(len(self.configurations))))
        return copy.deepcopy(self.configurations[int(index)])

    def grid(self) -> list[tuple[dict[str, Any], Any]] | None:
        return [({self.key: i}, copy.deepcopy(c)) for i, c in enumerate(self.configurations)]

    @cached_property
    def distribution(self) -> BaseDistribution:
        return _categorical(range(len(self.configurations)))

    @cached_property
    def _texts(self) -> dict[str, int]:
        texts: dict[str, int] = {}
        for i, c in enumerate(self.configurations):
            texts.setdefault(_json_text(c), i)
        return texts

    @cached_property
    def _columns(self) -> dict[str, tuple[bool, tuple[Any, ...]]]:
        """Per key of the sets: whether its labels are JSON text, and its labels."""
        values: dict[str, dict[str, Any]] = {}
        for c in self.configurations:
            for k, v in c.items():
                values.setdefault(k, {}).setdefault(_json_text(v), v)
        columns = {}
        for k, by_text in values.items():
            plain = _plain_labels(list(by_text.values()))
            columns[k] = (not plain, tuple(by_text.values() if plain else by_text))
        return columns

    @cached_property
    def _column_distributions(self) -> dict[str, BaseDistribution]:
        return {k: _categorical(labels) for k, (_, labels) in self._columns.items()}

    def store(self, value: Any, out: Point) -> None:
        for k, v in value.items():
            column = self._columns.get(k)
            if column is None:
                continue
            label = _json_text(v) if column[0] else v
            index = _find(column[1], label)
            if index is not None:
                out[0][k] = column[1][index]
                out[1][k] = self._column_distributions[k]

    def locate(self, value: Any, out: Point) -> None:
        try:
            index = self._texts.get(_json_text(value))
        except (TypeError, ValueError):
            return
        if index is not None:
            out[0][self.key] = index
            out[1][self.key] = self.distribution


class _Replay:
    """An Optuna trial's ``suggest_*`` that return given search coordinates (the lowest value
    for one not given): what :meth:`SearchSpace.handed_out` samples with."""

    def __init__(self, coordinates: Mapping[str, Any]) -> None:
        self._coordinates = coordinates

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._coordinates.get(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return int(self._coordinates.get(name, low))

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return float(self._coordinates.get(name, low))


def same_values(given: Any, received: Any) -> bool:
    """Whether a trial that receives ``received`` gets ``given``: every key ``given`` names
    (nested mappings compared key by key), numbers equal to 1e-9 (a start point's 0.3 is the
    grid's 3 * 0.1), anything else equal and of the same kind (True is not 1)."""
    if isinstance(given, Mapping):
        return isinstance(received, Mapping) and all(
            key in received and same_values(value, received[key]) for key, value in given.items())
    if isinstance(given, bool) or isinstance(received, bool):
        return type(given) is type(received) and given == received
    if _is_number(given) and _is_number(received):
        return math.isclose(given, received, rel_tol=1e-9, abs_tol=1e-12)
    return bool(given == received) and type(given) is type(received)


# ---------------------------------------------------------------- parsing


def _shown_names(name: str, spec: Any) -> set[str]:
    """The names a parameter's values are shown under (:func:`spiketune._values.flatten`):
    ``name`` itself, or for a choice among mappings (nested or plain) the dotted names of
    their keys."""
    if not isinstance(spec, Mapping) or spec.get("_type") != "choice":
        return {name}
    values = spec.get("_value")
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        return {name}
    shown: set[str] = set()
    nested = all(isinstance(o, Mapping) and "_name" in o for o in values)
    for option in values:
        if not isinstance(option, Mapping):
            shown.add(name)
        elif nested:
            shown.add(f"{name}._name")
            for key, sub in option.items():
                if key != "_name":
                    shown |= _shown_names(f"{name}.{key}", sub)
        else:
            shown |= {f"{name}.{key}" for key in flatten(option)}
    return shown


class _Parser:
    """Builds parameters from a spec, collecting every problem instead of stopping at the first."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.problems: list[Problem] = []
        self.keys: dict[str, str] = {}  # Optuna name -> where it was defined

    def fail(self, where: str, value: Any, rule: str) -> None:
        self.problems.append(Problem(f"{self.field}.{where}" if where else self.field, value, rule))

    def register(self, key: str, where: str) -> bool:
        if key in self.keys:
            self.fail(where, key, f"its Optuna name {key!r} is also the name of {self.keys[key]}")
            return False
        self.keys[key] = where
        return True

    def shown_names_distinct(self, spec: Mapping[str, Any]) -> None:
        """Refuse two parameters whose values would be shown under one name.

        Why: results show nested values with dotted names (``flatten``: ``opt.lr`` for the
        ``lr`` of a nested ``opt``), in CSV columns, tables and the report's axes. A parameter
        literally named ``opt.lr`` beside it would share that column, and one of the two
        values would be lost from every export.
        """
        seen: dict[str, str] = {}
        for name, pspec in spec.items():
            for shown in sorted(_shown_names(name, pspec)):
                other = seen.setdefault(shown, name)
                if other != name:
                    self.fail(name, name,
                              f"its values would be shown as {shown!r}, as are those of "
                              f"{other!r} (nested values are shown with dotted names); "
                              "rename one of them")
                    break

    def space(self, spec: Any, prefix: str, where: str) -> SearchSpace:
        params: dict[str, _Param] = {}
        if not isinstance(spec, Mapping):
            self.fail(where, spec, "a search space must be a mapping of parameter name to spec")
            return SearchSpace._make(params, {})
        for name, pspec in spec.items():
            here = f"{where}.{name}" if where else str(name)
            if not isinstance(name, str) or not name:
                self.fail(here, name, "parameter names must be non-empty strings")
                continue
            if name == "_name":
                if prefix:  # inside a nested option: the option's label, handled by the caller
                    continue
                self.fail(here, name, "'_name' is reserved for the options of a nested choice")
                continue
            param = self.param(pspec, prefix + name, here)
            if param is not None:
                params[name] = param
        canonical = {n: copy.deepcopy(_canonical_spec(spec[n])) for n in params}
        return SearchSpace._make(params, canonical)

    def param(self, spec: Any, key: str, where: str) -> _Param | None:
        if not isinstance(spec, Mapping):
            self.fail(where, spec, 'each parameter must be {"_type": ..., "_value": [...]}')
            return None
        extra = sorted(set(spec) - {"_type", "_value"})
        if extra:
            self.fail(where, extra, "unknown keys in a parameter spec; accepted: _type, _value")
        type_ = spec.get("_type")
        values = spec.get("_value")
        if type_ not in TYPES:
            self.fail(f"{where}._type", type_, f"unknown _type; accepted: {', '.join(TYPES)}")
            return None
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            self.fail(f"{where}._value", values, f"{type_} needs a list as _value")
            return None
        values = list(values)
        if not self.register(key, where):
            return None
        if type_ == "choice":
            return self.choice(values, key, f"{where}._value")
        arity = 3 if type_.startswith("q") else 2
        if len(values) != arity:
            if type_ == "randint":
                form = "[lower, upper]"
            elif "normal" in type_:
                form = "[mu, sigma, q]" if arity == 3 else "[mu, sigma]"
            else:
                form = "[low, high, q]" if arity == 3 else "[low, high]"
            self.fail(f"{where}._value", values, f"{type_} takes exactly {arity} numbers {form}")
            return None
        bad = [v for v in values if not is_finite(v)]
        if bad:
            self.fail(f"{where}._value", values, f"{type_} takes finite numbers only")
            return None
        if type_ == "randint":
            return self.randint(values, key, f"{where}._value")
        if "normal" in type_:
            return self.normal(type_, values, key, f"{where}._value")
        return self.uniform(type_, values, key, f"{where}._value")

    def choice(self, options: list[Any], key: str, where: str) -> _Param | None:
        if not options:
            self.fail(where, options, "choice needs at least one option")
            return None
        # NNI's rule: a choice is nested when every option is a mapping with a '_name'; any
        # other choice (plain mappings among its options too) hands out its options as they are
        if all(isinstance(o, Mapping) and "_name" in o for o in options):
            labels = [o["_name"] for o in options]
            if not all(isinstance(lb, _PRIMITIVE) and lb is not None for lb in labels):
                self.fail(where, labels, "the _name of a nested option must be a string or number")
                return None
            if not self._distinct(labels, where, "the _name of each nested option must be unique"):
                return None
            nested = tuple(
                self.space(option, f"{key}/{option['_name']}/", f"{where}[{i}]")
                for i, option in enumerate(options)
            )
            return _Choice(key, tuple(copy.deepcopy(o) for o in options), tuple(labels), nested)
        for i, option in enumerate(options):
            if isinstance(option, float) and not math.isfinite(option):
                self.fail(f"{where}[{i}]", option, "choice options must be finite")
                return None
        if all(isinstance(o, _PRIMITIVE) for o in options):
            labels = list(options)
        else:
            try:
                labels = [json.dumps(o, sort_keys=True) for o in options]
            except (TypeError, ValueError):
                self.fail(where, options, "choice options must be JSON values")
                return None
        if not self._distinct(labels, where, "choice options must be distinct"):
            return None
        return _Choice(key, tuple(copy.deepcopy(options)), tuple(labels), None)

    def _distinct(self, labels: list[Any], where: str, rule: str) -> bool:
        # == treats 1, 1.0 and True as one value; Optuna would too, so refuse them together
        for i, a in enumerate(labels):
            for b in labels[:i]:
                if a == b:
                    self.fail(where, a, rule)
                    return False
        return True

    def randint(self, values: list[Any], key: str, where: str) -> _Param | None:
        lower, upper = values
        if not all(isinstance(v, int) for v in values):
            self.fail(where, values, "randint takes integers [lower, upper)")
            return None
        if lower >= upper:
            self.fail(where, values, "randint needs lower < upper (upper is excluded)")
            return None
        return _RandInt(key, lower, upper)

    def uniform(self, type_: str, values: list[Any], key: str, where: str) -> _Param | None:
        low, high = float(values[0]), float(values[1])
        q = float(values[2]) if type_.startswith("q") else None
        ok = True
        if low >= high:
            self.fail(where, values, f"{type_} needs low < high")
            ok = False
        elif "log" not in type_ and not math.isfinite(high - low):
            self.fail(where, values, f"{type_} needs high - low within a float's range "
                                     "(the sampler draws low + u * (high - low))")
            ok = False
        if "log" in type_ and low <= 0:
            self.fail(where, values, f"{type_} needs low > 0 (it draws on a log scale)")
            ok = False
        if q is not None and q <= 0:
            self.fail(where, values, f"{type_} needs q > 0")
            ok = False
        return _Uniform(key, low, high, "log" in type_, q) if ok else None

    def normal(self, type_: str, values: list[Any], key: str, where: str) -> _Param | None:
        mu, sigma = float(values[0]), float(values[1])
        q = float(values[2]) if type_.startswith("q") else None
        ok = True
        if sigma <= 0:
            self.fail(where, values, f"{type_} needs sigma > 0")
            ok = False
        if q is not None and q <= 0:
            self.fail(where, values, f"{type_} needs q > 0")
            ok = False
        if ok and "log" in type_ and mu + sigma * _STANDARD_NORMAL.inv_cdf(_U_HIGH) > _EXP_MAX:
            self.fail(where, values, f"{type_} would overflow: exp(mu + 8.2 sigma) exceeds a float")
            ok = False
        if not ok:
            return None
        param = _Normal(key, mu, sigma, "log" in type_, q)
        try:
            reachable = param.reachable
        except OverflowError:  # round(inf) in the rounding of a quantised type
            reachable = (math.inf, math.inf)
        if not all(math.isfinite(v) for v in reachable):
            self.fail(where, values, f"{type_} would overflow: its values at mu +- 8.2 sigma "
                                     "(rounded to q) exceed a float")
            return None
        return param


def _canonical_spec(spec: Any) -> Any:
    """JSON form of a spec: tuples become lists, mappings plain dicts."""
    if isinstance(spec, Mapping):
        return {str(k): _canonical_spec(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [_canonical_spec(v) for v in spec]
    return spec


# ---------------------------------------------------------------- the space


class SearchSpace:
    """A validated NNI search space, sampled through an Optuna trial.

    Build it with :meth:`from_nni` (or :meth:`batch` for NNI's BatchTuner form); it is
    immutable afterwards. :meth:`sample` is the only place where a trial's parameters are
    drawn, so the dict it returns is exactly what the trial receives.
    """

    def __init__(self) -> None:
        raise TypeError("build a SearchSpace with SearchSpace.from_nni(spec)")

    @classmethod
    def _make(
        cls,
        params: dict[str, _Param],
        spec: dict[str, Any],
        batch: _Batch | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> SearchSpace:
        self = object.__new__(cls)
        self._params = params
        self._spec = spec
        self._batch = batch
        self._constants = dict(constants or {})
        self._constant_cache: dict[str, tuple[Any, BaseDistribution]] | None = None
        return self

    # ---- construction

    @classmethod
    def from_nni(cls, spec: Mapping[str, Any], *, field: str = "search_space") -> SearchSpace:
        """Validate an NNI search space; :class:`SearchSpaceError` lists every problem.

        ``field`` prefixes the location in each problem (``search_space.lr._value``).
        """
        parser = _Parser(field)
        space = parser.space(spec, "", "")
        if not parser.problems:
            parser.shown_names_distinct(spec)
        if parser.problems:
            raise SearchSpaceError(parser.problems)
        return space

    @classmethod
    def batch(cls, spec: Mapping[str, Any], *, field: str = "search_space") -> SearchSpace:
        """NNI's BatchTuner form: a single ``choice`` whose options are complete parameter sets.

        Each option is what a trial receives, as is (not nested under the choice's name).
        """
        def fail(where: str, value: Any, rule: str) -> SearchSpaceError:
            return SearchSpaceError(Problem(f"{field}{where}", value, rule))

        form = 'one parameter {"_type": "choice", "_value": [{...}, ...]} listing parameter sets'
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise fail("", spec, f"the Batch tuner needs {form}")
        (name, pspec), = spec.items()
        if not isinstance(pspec, Mapping) or pspec.get("_type") != "choice" or set(pspec) != {
            "_type", "_value"
        }:
            raise fail(f".{name}", pspec, f"the Batch tuner needs {form}")
        options = pspec["_value"]
        if isinstance(options, str | bytes) or not isinstance(options, Sequence) or not options:
            raise fail(f".{name}._value", options, f"the Batch tuner needs {form}")
        problems = []
        for i, option in enumerate(options):
            if not isinstance(option, Mapping) or not all(isinstance(k, str) for k in option):
                problems.append(Problem(f"{field}.{name}._value[{i}]", option,
                                        "each Batch option must be a parameter set (a mapping)"))
                continue
            try:
                json.dumps(option)
            except (TypeError, ValueError):
                problems.append(Problem(f"{field}.{name}._value[{i}]", option,
                                        "each Batch option must hold JSON values only"))
        if problems:
            raise SearchSpaceError(problems)
        configurations = tuple(_canonical_spec(o) for o in options)
        return cls._make({}, {name: _canonical_spec(pspec)}, _Batch(name, configurations))

    def with_constants(self, constants: Mapping[str, Any]) -> SearchSpace:
        """A copy whose trials also receive ``constants`` (no Optuna parameter behind them).

        Used by tuners that hand every trial a fixed value, such as Hyperband's ``TRIAL_BUDGET``.
        """
        clash = sorted(set(constants) & set(self.names))
        if clash:
            raise SearchSpaceError(
                Problem(f"search_space.{clash[0]}", clash[0],
                        "this name is set by the tuner for every trial; rename the parameter")
            )
        return SearchSpace._make(self._params, self._spec, self._batch,
                                 {**self._constants, **constants})

    # ---- description

    @property
    def names(self) -> list[str]:
        """Top-level parameter names, in spec order (for Batch: every key of the sets)."""
        if self._batch is not None:
            keys: dict[str, None] = {}
            for c in self._batch.configurations:
                keys.update(dict.fromkeys(c))
            return [*keys, *[k for k in self._constants if k not in keys]]
        return [*self._params, *self._constants]

    @property
    def is_batch(self) -> bool:
        return self._batch is not None

    @property
    def constants(self) -> dict[str, Any]:
        return copy.deepcopy(self._constants)

    def to_nni(self) -> dict[str, Any]:
        """The canonical NNI JSON form (tuner constants are not part of it)."""
        return copy.deepcopy(self._spec)

    def __repr__(self) -> str:
        return f"SearchSpace({json.dumps(self._spec)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return (self._spec, self.is_batch, self._constants) == (
            other._spec, other.is_batch, other._constants
        )

    __hash__ = None  # type: ignore[assignment]

    # ---- sampling

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Draw one parameter set through ``trial.suggest_*``; returns what the trial receives."""
        if self._batch is not None:
            params = self._batch.sample(trial)
        else:
            params = {name: p.sample(trial) for name, p in self._params.items()}
        params.update(copy.deepcopy(self._constants))
        return params

    # ---- the two Optuna forms of a trial's parameters (see the module docstring)

    def _place(self, values: Mapping[str, Any], out: Point, *, search: bool) -> None:
        for name, p in self._params.items():
            if name in values:
                if search:
                    p.locate(values[name], out)
                else:
                    p.store(values[name], out)

    def stored_params(self, parameters: Mapping[str, Any]) -> Point:
        """What the study records as Optuna ``params`` for a trial that received
        ``parameters``: the received values (list options as JSON text, nested choices as
        their ``_name`` plus ``<path>/<_name>/<sub-name>`` entries), with their distributions."""
        out: Point = ({}, {})
        if self._batch is not None:
            self._batch.store(parameters, out)
        else:
            self._place(parameters, out, search=False)
        for name, (label, distribution) in self._constant_forms.items():
            if name in parameters:
                out[0][name] = label
                out[1][name] = distribution
        return out

    def search_params(self, parameters: Mapping[str, Any]) -> Point:
        """The tuner's coordinates of a trial that received ``parameters``, with their search
        distributions: what ``sample`` would suggest to hand out these values (for the normal
        types, to within rounding). Values this space cannot hand out are left out."""
        out: Point = ({}, {})
        if self._batch is not None:
            own = {k: v for k, v in parameters.items() if k not in self._constants}
            self._batch.locate(own, out)
        else:
            self._place(parameters, out, search=True)
        return out

    def handed_out(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """For each top-level key of ``point`` that this space has, the value a trial would
        receive when the tuner suggests ``point``'s search coordinates (:meth:`search_params`).
        Where ``point`` leaves a nested parameter out, its lowest value stands in: compare
        only what ``point`` gives. Why: a start point must be a value the space hands out as
        it is, not one quantised, clipped or drawn in its place."""
        if self._batch is not None:
            return {}
        coordinates, _ = self.search_params(point)
        replay = _Replay(coordinates)
        return {key: self._params[key].sample(replay)  # type: ignore[arg-type]
                for key in point if key in self._params}

    def search_point(self, trial: optuna.trial.FrozenTrial) -> Point:
        """The tuner's coordinates of a stored trial, rebuilt from its ``parameters`` user
        attribute (what it received) whichever layout its ``params`` follow. A trial without
        that attribute keeps the params that already are search coordinates."""
        parameters = trial.user_attrs.get("parameters")
        if isinstance(parameters, Mapping):
            return self.search_params(parameters)
        known = self.search_distributions
        keep = [k for k, d in trial.distributions.items() if known.get(k) == d]
        return {k: trial.params[k] for k in keep}, {k: trial.distributions[k] for k in keep}

    @property
    def search_distributions(self) -> dict[str, BaseDistribution]:
        """Every search distribution, by Optuna name (nested sub-parameters included)."""
        if self._batch is not None:
            return {self._batch.key: self._batch.distribution}
        out: dict[str, BaseDistribution] = {}
        for p in self._params.values():
            out[p.key] = p.distribution
            if isinstance(p, _Choice) and p.nested is not None:
                for sub in p.nested:
                    out.update(sub.search_distributions)
        return out

    def stores_search_coordinates(self, trials: Iterable[optuna.trial.FrozenTrial]) -> bool:
        """Whether a study holding ``trials`` records search coordinates as ``params`` (the
        layout of spiketune 0.1.0): some trial's ``params`` differ from
        :meth:`stored_params` of what it received. New trials of such a study keep that
        layout, so every parameter name keeps one distribution."""
        for t in trials:
            parameters = t.user_attrs.get("parameters")
            if (t.params and isinstance(parameters, Mapping)
                    and t.params != self.stored_params(parameters)[0]):
                return True
        return False

    @property
    def _constant_forms(self) -> dict[str, tuple[Any, BaseDistribution]]:
        """Each tuner constant's stored label and its one-choice categorical."""
        if self._constant_cache is None:
            forms = {}
            for name, value in self._constants.items():
                label = value if _plain_labels([value]) else _json_text(value)
                forms[name] = (label, _categorical([label]))
            self._constant_cache = forms
        return self._constant_cache

    # ---- enumeration

    def _grid_points(self) -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
        if self._batch is not None:
            return [(o, {**v, **self._constants}) for o, v in self._batch.grid() or []]
        per_param = []
        for p in self._params.values():
            points = p.grid()
            if points is None:
                return None
            per_param.append(points)
        names = list(self._params)
        result = []
        for combo in itertools.product(*per_param):
            optuna_params: dict[str, Any] = {}
            values: dict[str, Any] = {}
            for name, (o, v) in zip(names, combo, strict=True):
                optuna_params.update(o)
                values[name] = v
            values.update(copy.deepcopy(self._constants))
            result.append((optuna_params, values))
        return result

    def grid_size(self) -> int | None:
        """How many points :meth:`grid` has, or None when some parameter is continuous."""
        if self._batch is not None:
            return len(self._batch.configurations)
        total = 1
        for p in self._params.values():
            size = p.grid_size()
            if size is None:
                return None
            total *= size
        return total

    def check_grid(self) -> int:
        """The grid's size; :class:`SearchSpaceError` if it is not finite or too large."""
        size = self.grid_size()
        if size is None:
            continuous = [n for n, p in self._params.items() if p.grid_size() is None]
            raise SearchSpaceError(
                [Problem(f"search_space.{n}", self._spec[n],
                         "a grid needs finite values: choice, randint, quniform or qloguniform")
                 for n in continuous]
            )
        if size > GRID_LIMIT:
            raise SearchSpaceError(Problem("search_space", f"{size} points",
                                           f"a grid may have at most {GRID_LIMIT:,} points"))
        return size

    def _checked_grid(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        self.check_grid()
        points = self._grid_points()
        assert points is not None  # a finite size implies finite points
        return points

    def grid(self) -> list[dict[str, Any]]:
        """Every parameter set of a finite space, in spec order (last parameter varies fastest)."""
        return [values for _, values in self._checked_grid()]

    def grid_optuna_params(self) -> list[dict[str, Any]]:
        """The search coordinates of each :meth:`grid` point, ready for ``enqueue_trial`` on
        the tuner's (working) study.

        ``sample()`` on a trial that was enqueued with ``grid_optuna_params()[i]`` returns
        ``grid()[i]``.
        """
        return [optuna_params for optuna_params, _ in self._checked_grid()]

    def shuffled_grid_optuna_params(self, seed: int | None) -> list[dict[str, Any]]:
        """:meth:`grid_optuna_params` in a random order fixed by ``seed``."""
        points = self.grid_optuna_params()
        random.Random(seed).shuffle(points)
        return points

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

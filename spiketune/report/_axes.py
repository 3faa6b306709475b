"""From an experiment's records to the axes of the exploration figure.

Nothing here draws: the matplotlib and plotly renderings read the same :class:`Exploration`, so
both show the same axes, positions, ticks and colours.

Which metric keys become axes (:func:`accuracy_axes`):

* when a trial reported ``train`` or ``test`` in its final result, the axes are the ones of
  ``train`` ("best train"), ``default`` ("best validation", the objective) and ``test``
  ("test") that are present, in that order: the trial reports its best validation accuracy as
  ``default`` with the train and test accuracy of the same weights;
* otherwise every numeric key of the final results is an axis, ``default`` first (labelled
  "objective").

Positions are in *axis units*: the value for linear axes, its base-10 logarithm for log axes,
the category's index for categorical axes. A trial without a value on an axis (a parameter of
a nested choice it did not take, a metric it did not report) sits on an extra ``n/a`` tick
below the axis's range.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spiketune._values import flatten, is_finite
from spiketune.engine.outcome import Outcome
from spiketune.engine.results import ExperimentResults, TrialRecord

#: NNI search-space types whose values spread over orders of magnitude: drawn on log axes.
LOG_TYPES = frozenset({"loguniform", "qloguniform", "lognormal", "qlognormal"})

#: The accuracy axes of the published pipeline's exploration figure: metric key -> axis label.
ACCURACY_AXES: dict[str, str] = {
    "train": "best train",
    "default": "best validation",
    "test": "test",
}

NA = "n/a"


@dataclass(frozen=True)
class ParamSpec:
    """What the search space says about one flattened parameter."""

    log: bool = False
    choices: tuple[Any, ...] | None = None  # categorical: the options, in the space's order


@dataclass(frozen=True)
class TrialLine:
    """One trial drawn on the exploration figure."""

    number: int
    outcome: Outcome
    parameters: dict[str, Any]  # flattened (``outer.inner``)
    metrics: dict[str, float]  # numeric final metrics; early-stopped: best reported default


@dataclass(frozen=True)
class Axis:
    """One vertical axis: where each line crosses it and how it is labelled."""

    name: str  # parameter name or metric key
    label: str
    group: Literal["parameter", "metric"]
    scale: Literal["linear", "log", "category"]
    positions: list[float]  # one per line, in axis units (see module docstring)
    lo: float
    hi: float
    tickvals: list[float]
    ticktext: list[str]

    def normalised(self, i: int) -> float:
        """Line ``i``'s position scaled to [0, 1] over the axis's range."""
        return (self.positions[i] - self.lo) / (self.hi - self.lo)


@dataclass(frozen=True)
class Exploration:
    """Everything the exploration figure shows."""

    lines: list[TrialLine]
    axes: list[Axis]
    color_key: str | None  # the metric that colours the lines (None: one colour)
    color_label: str
    colors: list[float | None]  # per line; None: no value (drawn grey)
    best: int | None  # index into ``lines`` of the experiment's best trial


# ------------------------------------------------------------------------------ parameters
def space_specs(search_space: Any) -> dict[str, ParamSpec]:
    """Flattened parameter name -> :class:`ParamSpec`, from an NNI-format search space.

    Anything that does not look like one gives no specs (axes are then inferred from values).
    """
    specs: dict[str, ParamSpec] = {}
    if isinstance(search_space, Mapping):
        _walk_space(search_space, "", specs)
    return specs


def _walk_space(space: Mapping[str, Any], prefix: str, specs: dict[str, ParamSpec]) -> None:
    for name, spec in space.items():
        if not isinstance(spec, Mapping) or "_type" not in spec:
            continue
        kind, values = spec.get("_type"), spec.get("_value")
        full = f"{prefix}{name}"
        if kind == "choice" and isinstance(values, list):
            nested = [v for v in values if isinstance(v, Mapping) and "_name" in v]
            if nested:
                specs[f"{full}._name"] = ParamSpec(choices=tuple(v["_name"] for v in nested))
                for option in nested:
                    sub = {k: v for k, v in option.items() if k != "_name"}
                    _walk_space(sub, f"{full}.", specs)
            else:
                specs[full] = ParamSpec(choices=tuple(values))
        else:
            previous = specs.get(full)
            was_log = previous is not None and previous.log
            specs[full] = ParamSpec(log=kind in LOG_TYPES or was_log)


def category_label(value: Any) -> str:
    """How a categorical value is written on an axis and in tables."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------------------------ lines
def trial_lines(results: ExperimentResults) -> list[TrialLine]:
    """One line per finished trial that has something to show.

    COMPLETE trials show their final metrics. EARLY_STOPPED trials have no final result: they
    show the best ``default`` they reported (their best validation so far) and ``n/a``
    elsewhere. FAILED trials have no result and are left out.
    """
    lines = []
    for r in results.records:
        metrics: dict[str, float] = {}
        if r.outcome == Outcome.COMPLETE and r.metrics:
            metrics = {k: float(v) for k, v in r.metrics.items() if is_finite(v)}
        elif r.outcome == Outcome.EARLY_STOPPED:
            best = best_intermediate(r, results.optimize_mode)
            if best is not None:
                metrics = {"default": best}
        else:
            continue
        if metrics:
            lines.append(TrialLine(r.number, r.outcome, flatten(r.parameters), metrics))
    return lines


def best_intermediate(record: TrialRecord, mode: str) -> float | None:
    """The best ``default`` among a trial's intermediate reports."""
    values = [float(i["default"]) for i in record.intermediate if is_finite(i.get("default"))]
    if not values:
        return None
    return max(values) if mode == "maximize" else min(values)


def accuracy_axes(metric_keys: Iterable[str], objective: str = "default"
                  ) -> list[tuple[str, str]]:
    """``(metric key, axis label)`` of the metric axes (see the module docstring).
    ``objective``: the experiment's (first) objective key; when it is not ``default``, the
    trial's ``default`` is no validation accuracy of the search, and is labelled as itself."""
    keys = list(dict.fromkeys(metric_keys))
    if objective == "default" and ("train" in keys or "test" in keys):
        return [(k, label) for k, label in ACCURACY_AXES.items() if k in keys]
    ordered = ([objective] if objective in keys else []) + [k for k in keys if k != objective]
    return [(k, k if k != objective else "objective" if k == "default" else f"{k} (objective)")
            for k in ordered]


# ------------------------------------------------------------------------------ axes
def exploration(
    results: ExperimentResults, metric_keys: Sequence[str] | None = None
) -> Exploration:
    """The exploration figure's content. ``metric_keys`` overrides :func:`accuracy_axes`."""
    lines = trial_lines(results)
    specs = space_specs(results.config.get("search_space"))
    names = list(dict.fromkeys(n for line in lines for n in line.parameters))
    axes = [
        _parameter_axis(name, [line.parameters.get(name) for line in lines], specs.get(name))
        for name in names
    ]
    seen = list(dict.fromkeys(k for line in lines for k in line.metrics))
    objective = results.objective_key
    if metric_keys is None:
        chosen = accuracy_axes(seen, objective)
    else:
        chosen = [(k, ACCURACY_AXES.get(k, k)) for k in metric_keys]
    for key, label in chosen:
        values = [line.metrics.get(key) for line in lines]
        axes.append(_numeric_axis(key, label, "metric", values, log=False))
    if objective != "default":  # named objectives: coloured by the (first) one
        color_key: str | None = objective if objective in seen else None
    else:
        color_key = "test" if "test" in seen else ("default" if "default" in seen else None)
    if color_key is None:
        color_label, colors = "", [None for _ in lines]
    else:
        color_label = (f"{objective} (objective)" if color_key == objective != "default"
                       else ACCURACY_AXES.get(color_key, color_key))
        colors = [line.metrics.get(color_key) for line in lines]
    best_record = results.best
    best = next(
        (i for i, line in enumerate(lines) if best_record and line.number == best_record.number),
        None,
    )
    return Exploration(lines, axes, color_key, color_label, colors, best)


def _parameter_axis(name: str, values: list[Any], spec: ParamSpec | None) -> Axis:
    present = [v for v in values if v is not None]
    categorical = (spec is not None and spec.choices is not None) or not all(
        is_finite(v) for v in present
    )
    if categorical:
        return _category_axis(name, values, spec.choices if spec else None)
    log = all(v > 0 for v in present) and (
        spec.log if spec is not None else _spans_decades(present)
    )
    return _numeric_axis(name, name, "parameter", values, log=log)


def _spans_decades(values: list[float]) -> bool:
    """Without a search space: log scale for positive values over three decades or more."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 1e3


def _category_axis(name: str, values: list[Any], choices: Sequence[Any] | None) -> Axis:
    order = [category_label(c) for c in choices or ()]
    order += [category_label(v) for v in values if v is not None]
    labels = list(dict.fromkeys(order))
    index = {label: float(i) for i, label in enumerate(labels)}
    missing = any(v is None for v in values)
    positions = [-1.0 if v is None else index[category_label(v)] for v in values]
    tickvals = list(index.values())
    ticktext = list(labels)
    if missing:
        tickvals.insert(0, -1.0)
        ticktext.insert(0, NA)
    lo = -1.5 if missing else -0.5
    return Axis(name, name, "parameter", "category", positions, lo, max(len(labels), 1) - 0.5,
                tickvals, ticktext)


def _numeric_axis(
    name: str,
    label: str,
    group: Literal["parameter", "metric"],
    values: list[Any],
    *,
    log: bool,
) -> Axis:
    present = [float(v) for v in values if v is not None and is_finite(v)]
    transform = math.log10 if log else float
    if present:
        lo, hi = transform(min(present)), transform(max(present))
    else:
        lo, hi = 0.0, 1.0
    if hi == lo:
        pad = 0.5 if log else (abs(lo) * 0.1 or 1.0)
        lo, hi = lo - pad, hi + pad
    tickvals, ticktext = _ticks(lo, hi, log)
    positions = [transform(float(v)) if is_finite(v) else math.nan for v in values]
    if any(math.isnan(p) for p in positions):
        na = lo - 0.12 * (hi - lo)
        positions = [na if math.isnan(p) else p for p in positions]
        tickvals.insert(0, na)
        ticktext.insert(0, NA)
        lo = na - 0.03 * (hi - lo)
    return Axis(name, label, group, "log" if log else "linear", positions, lo, hi,
                tickvals, ticktext)


def _ticks(lo: float, hi: float, log: bool) -> tuple[list[float], list[str]]:
    """A few readable ticks inside [lo, hi] (axis units), with their labels in real units."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    eps = 1e-9 * max(1.0, abs(hi - lo))
    if log:
        real = LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=6).tick_values(
            10**lo, 10**hi
        )
        vals = [math.log10(t) for t in real if t > 0]
        vals = [v for v in vals if lo - eps <= v <= hi + eps]
        if len(vals) > 6:
            vals = [v for v in vals if abs(v - round(v)) < 1e-9] or vals[:: len(vals) // 5]
    else:
        vals = [float(t) for t in MaxNLocator(nbins=5).tick_values(lo, hi)]
        vals = [v for v in vals if lo - eps <= v <= hi + eps]
    if len(vals) < 2:
        vals = [lo, hi]
    text = [f"{(10**v if log else v):.3g}" for v in vals]
    return vals, text

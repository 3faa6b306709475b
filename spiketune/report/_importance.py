"""Which hyperparameters mattered: Optuna's importance evaluators, or rank correlations.

With enough trials, Optuna's ``get_param_importances`` ranks the parameters every trial has (a
parameter of a nested choice is left out): fANOVA (a random forest of the objective, its
variance split between the parameters) when scikit-learn is installed, else PED-ANOVA (how
differently each parameter is distributed among the top trials; no extra dependency). With
fewer trials, or when the evaluator cannot run, each
parameter gets a plain dependence measure over the trials that have it: the absolute Spearman
rank correlation with the objective for numbers (on the log of log-distributed ones, which
changes nothing for ranks), the correlation ratio (eta) for categories. Both lie in [0, 1];
the importances are then scaled to sum to 1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from spiketune._values import flatten, is_finite
from spiketune.engine.outcome import Outcome
from spiketune.engine.results import ExperimentResults
from spiketune.report._axes import category_label, space_specs

#: Fewest COMPLETE trials for which Optuna's evaluators are used.
MIN_TRIALS_OPTUNA = 10


@dataclass(frozen=True)
class Importances:
    """Parameter -> importance (largest first, summing to 1 unless all are 0)."""

    values: dict[str, float]
    method: str
    trials: int  # COMPLETE trials with a finite objective used
    left_out: dict[str, str] = field(default_factory=dict)  # parameter -> why it is not ranked


def param_importances(results: ExperimentResults) -> Importances:
    """How much each (flattened) parameter mattered to the objective; never raises for few
    trials (one trial gives no importances and says why)."""
    rows = [
        (flatten(r.parameters), float(r.value))  # type: ignore[arg-type]
        for r in results.records
        if r.outcome == Outcome.COMPLETE and is_finite(r.value)
    ]
    names = list(dict.fromkeys(n for params, _ in rows for n in params))
    left_out: dict[str, str] = {}
    for name in names:
        seen = {category_label(p[name]) for p, _ in rows if name in p}
        if len(seen) < 2:
            left_out[name] = "one value only"
    ranked = [n for n in names if n not in left_out]
    if len({v for _, v in rows}) < 2 or not ranked:
        return Importances({}, "none: the objective or the parameters did not vary", len(rows),
                           left_out or dict.fromkeys(names, "too few trials"))
    if len(rows) >= MIN_TRIALS_OPTUNA:
        common = [n for n in ranked if all(n in p for p, _ in rows)]
        method = "fANOVA" if _has_sklearn() else "PED-ANOVA"
        if common:
            try:
                values = _optuna_importances(results, rows, common, method)
            except Exception as e:  # a degenerate study: fall back rather than lose the report
                reason = f"{method} failed: {type(e).__name__}"
            else:
                for n in ranked:
                    if n not in common:
                        left_out[n] = "nested choice"
                return Importances(_sorted(values), f"{method} (Optuna)", len(rows), left_out)
        else:
            reason = "no parameter is in every trial"
    else:
        reason = f"fewer than {MIN_TRIALS_OPTUNA} complete trials"
    specs = space_specs(results.config.get("search_space"))
    raw = {}
    for name in ranked:
        pairs = [(p[name], v) for p, v in rows if name in p]
        if len(pairs) < 2:
            left_out[name] = "in one trial only"
            continue
        numeric = all(is_finite(x) for x, _ in pairs) and not (
            name in specs and specs[name].choices is not None
        )
        raw[name] = _spearman(pairs) if numeric else _eta(pairs)
    total = sum(raw.values())
    values = {k: (v / total if total > 0 else 0.0) for k, v in raw.items()}
    return Importances(_sorted(values), f"rank correlation ({reason})", len(rows), left_out)


def _sorted(values: dict[str, float]) -> dict[str, float]:
    return dict(sorted(values.items(), key=lambda kv: -kv[1]))


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _has_sklearn() -> bool:
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


def _optuna_importances(
    results: ExperimentResults, rows: list[tuple[dict, float]], names: list[str], method: str
) -> dict[str, float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    specs = space_specs(results.config.get("search_space"))
    dists = {}
    for n in names:
        values = [p[n] for p, _ in rows]
        spec = specs.get(n)
        if all(is_finite(v) for v in values) and not (spec and spec.choices is not None):
            log = bool(spec and spec.log) and min(values) > 0
            dists[n] = FloatDistribution(float(min(values)), float(max(values)), log=log)
        else:
            dists[n] = CategoricalDistribution(sorted({category_label(v) for v in values}))

    def internal(n: str, v: object) -> object:
        return float(v) if isinstance(dists[n], FloatDistribution) else category_label(v)

    with _quiet_optuna():
        study = optuna.create_study(direction=results.optimize_mode)
        study.add_trials([
            optuna.trial.create_trial(
                params={n: internal(n, p[n]) for n in names},
                distributions=dists,
                value=v,
            )
            for p, v in rows
        ])
        evaluator: optuna.importance.BaseImportanceEvaluator = (
            optuna.importance.FanovaImportanceEvaluator(seed=0)
            if method == "fANOVA"
            else optuna.importance.PedAnovaImportanceEvaluator()
        )
        out = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
    return {k: float(v) for k, v in out.items()}


def _spearman(pairs: list[tuple[object, float]]) -> float:
    from scipy.stats import spearmanr

    xs = [float(x) for x, _ in pairs]  # type: ignore[arg-type]
    ys = [y for _, y in pairs]
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return 0.0
    rho = spearmanr(xs, ys).statistic
    return 0.0 if not math.isfinite(rho) else abs(float(rho))


def _eta(pairs: list[tuple[object, float]]) -> float:
    """Correlation ratio: the share of the objective's spread explained by the category."""
    ys = [y for _, y in pairs]
    mean = sum(ys) / len(ys)
    total = sum((y - mean) ** 2 for y in ys)
    if total == 0:
        return 0.0
    groups: dict[str, list[float]] = {}
    for x, y in pairs:
        groups.setdefault(category_label(x), []).append(y)
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
    return math.sqrt(between / total)

"""The lines a launcher prints: the experiment it starts, its progress, how it ended, and the
summary of its best model and of the chosen configuration retrained with seeds."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spiketune.engine.config import PopulationSize
    from spiketune.engine.experiment import Experiment
    from spiketune.engine.results import ExperimentResults, Retrained
    from spiketune.engine.scheduler import Progress


def format_duration(seconds: float | None) -> str:
    """Seconds, rounded to whole ones, as ``2m05s``, or ``1h02m03s`` from an hour on;
    ``none`` for no duration (an experiment without a time budget)."""
    if seconds is None:
        return "none"
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m{s:02d}s" if m >= 60 else f"{m}m{s:02d}s"


def format_percent(value: Any) -> str:
    """A fraction (``0.9333``) as a percentage with one decimal (``93.3%``); ``n/a`` for
    ``None`` (a metric the trial did not report)."""
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def progress_printer() -> Callable[[Progress], None]:
    """A ``progress`` callback for :meth:`Experiment.run` that prints one line each time the
    number of finished trials changes (the scheduler calls it far more often), e.g.
    ``  [1m05s] 3 done (2 complete, 1 early-stopped, 0 failed), 1 running; best validation
    accuracy 0.933 (trial 2)``."""
    seen = -1

    def show(p: Progress) -> None:
        nonlocal seen
        if p.done == seen:
            return
        seen = p.done
        best = "-" if p.best_value is None else f"{p.best_value:.3f} (trial {p.best_number})"
        print(f"  [{format_duration(p.elapsed_seconds)}] {p.done} done ({p.complete} complete, "
              f"{p.early_stopped} early-stopped, {p.failed} failed), {p.running} running; "
              f"best validation accuracy {best}", flush=True)

    return show


def print_start(exp: Experiment) -> None:
    """The experiment about to run: its id and directory, its trial budget, how many trials
    (or populations of trials) at a time, its time budget and its trial command."""
    c = exp.config
    at_once = (f"{c.concurrency} at a time" if c.population is None else
               f"populations of {_sizes(c.population, c.population_sizes)}, "
               f"{c.concurrency} at a time")
    print(f"experiment {exp.id} in {exp.directory}\n"
          f"  {c.max_trials} trials at most, {at_once}, budget "
          f"{format_duration(c.max_duration)}; trial command: {c.trial_command}", flush=True)


def _sizes(default: int, rules: list[PopulationSize] | None) -> str:
    """``8`` or, with sizes by shape, ``1 where n_rec=512; 4 where n_rec=256, rule=bptt;
    else 8``."""
    parts = [f"{r.size} where " + ", ".join(f"{k}={v}" for k, v in r.when.items())
             for r in rules or []]
    return "; ".join([*parts, f"else {default}"]) if parts else str(default)


def print_finish(results: ExperimentResults) -> None:
    """How long the run took and how its trials ended."""
    from spiketune.engine.outcome import Outcome

    print(f"finished in {format_duration(results.elapsed_seconds)}: "
          f"{results.count(Outcome.COMPLETE)} complete, "
          f"{results.count(Outcome.EARLY_STOPPED)} early-stopped, "
          f"{results.count(Outcome.FAILED)} failed", flush=True)


def _validation(info: Mapping[str, Any]) -> str:
    """The kept model's validation accuracy as a trial judged on re-splits reports it: its
    ``default`` is the mean over the re-splits (``val_fold<i>``), while the model kept is the
    first re-split's network (the split itself), whose own figure is ``val_fold0``; saying
    only the mean would credit the model with its siblings' luck."""
    folds = sum(1 for key in info if re.fullmatch(r"val_fold\d+", key))
    mean = format_percent(info.get("default"))
    if folds < 2 or "val_fold0" not in info:
        return mean
    own = format_percent(info["val_fold0"])
    return f"{mean} (mean of {folds} re-splits; this model's own {own})"


def print_summary(
    results: ExperimentResults, *, retrained: Retrained | None = None, report: bool = True
) -> None:
    """Print the best model the trials kept (best validation accuracy; the trial's score
    breaks ties): its trial, epoch, validation and test accuracy, spikes per sample, parameters
    and file; the best test accuracy among trials (optimistic: chosen by looking at the test
    set); the chosen configuration's test accuracy retrained with seeds (``retrained``, the
    figure to quote); then, with ``report``, build the report and print its path."""
    from spiketune.engine.results import load_best_model

    best = load_best_model(results.directory) if results.directory is not None else None
    if best is None:
        print(f"no trial kept a model (see `spiketune trials {results.id}`)")
    else:
        info = best.info
        spikes = info.get("spikes_per_sample")
        print(f"best model: trial {best.trial_id}, epoch {info.get('epoch')}, "
              f"validation accuracy {_validation(info)}, "
              f"test accuracy {format_percent(info.get('test'))}, "
              + ("no spikes (a non-spiking model)" if spikes is None
                 else f"{spikes:.0f} spikes per sample"))
        print("best parameters: " + json.dumps(best.parameters, sort_keys=True))
        print(f"best model file: {best.path()}")
    tests = [r.metrics.get("test") for r in results.records
             if r.metrics and isinstance(r.metrics.get("test"), int | float)]
    if tests:
        print(f"best test accuracy among {len(tests)} trials: {format_percent(max(tests))} "
              f"(optimistic: chosen by looking at the test set; median "
              f"{format_percent(statistics.median(tests))})")
    if retrained is not None and retrained.mean is not None:
        seeds = ", ".join(str(r.seed) for r in retrained.runs)
        spread = (f"± {100 * (retrained.std or 0):.2f}% (mean ± std over seeds {seeds}"
                  if len(retrained.runs) > 1 else f"(seed {seeds} alone: no spread to give")
        print(f"chosen model's test accuracy: {100 * retrained.mean:.2f}% {spread}, trial "
              f"{retrained.trial}'s configuration, split {str(retrained.split_digest)[:12]})")
    if report:
        from spiketune.report import build_report

        files = build_report(results.directory or results.id)
        print(f"report: {files.index}")

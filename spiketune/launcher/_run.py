"""A launcher's command line and its run: the options every template's ``main.py`` takes,
and the run itself (the experiment, the chosen configuration retrained with seeds, the
summary and the report)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune.launcher._lines import print_finish, print_start, print_summary, progress_printer

if TYPE_CHECKING:
    from spiketune.engine.experiment import Experiment
    from spiketune.engine.results import ExperimentResults
    from spiketune.snn import PopulationProbe


def add_budget_options(
    parser: argparse.ArgumentParser,
    *,
    concurrency_help: str = "trials at once (config: concurrency)",
) -> argparse.ArgumentParser:
    """Add ``--trials``, ``--duration``, ``--trial-duration`` and ``--concurrency`` (the
    experiment's budgets, see :func:`config_changes`) to ``parser``; returns ``parser``."""
    parser.add_argument("--trials", type=int, help="trials to run (config.toml: max_trials)")
    parser.add_argument("--duration",
                        help='time budget, e.g. "10m", "2h" (config: max_duration)')
    parser.add_argument("--trial-duration", help='time limit of one trial, e.g. "5m"')
    parser.add_argument("--concurrency", type=int, help=concurrency_help)
    return parser


def population_size(value: str) -> int | str:
    """``--population``'s argparse type: a number of trials of at least 1, or ``auto``."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"a number of trials >= 1 or auto, got {value!r}")
    return number


def refill_count(value: str) -> int:
    """``--refills``' argparse type (population mode: new trials each place of a population
    takes after its first, as members end): a number of trials of at least 0."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"a number of trials >= 0, got {value!r}")
    return number


def add_population_options(
    parser: argparse.ArgumentParser, *, refills: bool = False
) -> argparse.ArgumentParser:
    """Add ``--population K|auto`` (population mode, for trials built on ``spiketune.snn``:
    up to K trials train together in one process, each recorded as its own trial; ``auto``:
    the launcher probes first, see :func:`use_population_probe`) to ``parser``; returns
    ``parser``. :func:`config_changes` passes a number on as ``population``. With
    ``refills``, also ``--refills R`` (:func:`refill_count`; default None: the trial
    script's own), for the launcher to put on the trial command in population mode."""
    parser.add_argument("--population", type=population_size, metavar="K|auto",
                        help="train up to K trials together in one process, as one batched "
                             "population (config: population); auto: choose K, the "
                             "populations at once (--concurrency) and their CPU threads by a "
                             "short probe")
    if refills:
        parser.add_argument("--refills", type=refill_count, default=None, metavar="R",
                            help="with --population: new trials each place of a population "
                                 "takes after its first, as members end (default: the "
                                 "trial's REFILLS; 0: none, a population ends with its "
                                 "first K trials)")
    # set by the probe: CPU threads per trial process, population sizes by shape
    parser.set_defaults(trial_threads=None, population_sizes=None)
    return parser


def use_population_probe(args: argparse.Namespace, probe: PopulationProbe) -> None:
    """``--population auto``: print the probe's table and choice
    (:func:`spiketune.snn.probe_population`) and put it into ``args``: ``population`` (K),
    ``concurrency`` (population processes at once) and ``trial_threads`` (CPU threads of
    each, which :func:`run_experiment` hands to the trials)."""
    print(probe.summary(), flush=True)
    args.population, args.concurrency = probe.size, probe.processes
    args.trial_threads = probe.threads


def add_smoke_options(
    parser: argparse.ArgumentParser,
    *,
    subset_help: str = "use N samples per class",
    smoke_help: str,
    gpus: bool = True,
) -> argparse.ArgumentParser:
    """Add the options for smaller runs to ``parser``: ``--epochs-cap`` (each trial's epoch
    budget capped), ``--subset N`` (fewer samples, ``subset_help`` says which), ``--smoke``
    (the whole chain in seconds, ``smoke_help`` says how; :func:`parse_launcher_args` fills
    in its values) and, with ``gpus``, ``--gpus``. Returns ``parser``."""
    parser.add_argument("--epochs-cap", type=int,
                        help="train each trial at most this many epochs")
    parser.add_argument("--subset", type=int, metavar="N", help=subset_help)
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    if gpus:
        parser.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    return parser


def add_selection_options(
    parser: argparse.ArgumentParser, *, folds: int | None, retrain_seeds: Sequence[int]
) -> argparse.ArgumentParser:
    """Add the options of honest selection to ``parser``: ``--folds`` (each trial judged by
    its mean validation accuracy over that many re-splits, default ``folds``; ``None``: the
    template has no folds, no option) and ``--retrain-seeds`` (the chosen configuration
    retrained with these seeds, default ``retrain_seeds``). Returns ``parser``."""
    if folds is not None:
        parser.add_argument("--folds", type=int,
                            help=f"judge each trial by its mean validation accuracy over this "
                                 f"many re-splits (default {folds}; 1: the split alone)")
    parser.add_argument("--retrain-seeds", type=int, nargs="*", metavar="SEED",
                        help=f"retrain the chosen configuration with these seeds and report "
                             f"its test accuracy as mean ± std (default "
                             f"{' '.join(map(str, retrain_seeds))}; none: skip)")
    return parser


def start_points(text: str) -> list[dict[str, Any]]:
    """``--start-with FILE``: the parameter sets a JSON file holds, an object (one set, as
    ``<experiment>/chosen/parameters.json`` is) or a list of objects; anything else is a
    usage error naming the file. Whether each set fits the search space is the experiment's
    check (``start_with[i].key`` in its error)."""
    path = Path(text).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text}: cannot read it ({err.strerror})") from None
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: not JSON ({err})") from None
    points = [data] if isinstance(data, dict) else data
    if not (isinstance(points, list) and points and all(isinstance(p, dict) for p in points)):
        raise argparse.ArgumentTypeError(
            f"{text}: must hold one parameter set (a JSON object) or a non-empty list of them")
    return points


def add_experiment_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--seed`` (the tuner's), ``--name``, ``--experiment-dir``, ``--start-with``,
    ``--no-report`` and ``-q``/``--quiet`` to ``parser``; returns ``parser``."""
    parser.add_argument("--seed", type=int, help="tuner seed (config: seed)")
    parser.add_argument("--name", help="experiment name (config: name)")
    parser.add_argument("--experiment-dir", type=Path,
                        help="root of experiment directories (default $SPIKETUNE_EXPERIMENTS "
                             "or ~/spiketune-experiments)")
    parser.add_argument("--start-with", type=start_points, metavar="FILE",
                        help="try these parameter sets first, in order, before the tuner "
                             "draws: a JSON object (e.g. the chosen/parameters.json of an "
                             "earlier search that retrained its choice, or the parameters "
                             "of `spiketune best EXP --json`) or a list of them; keys "
                             "left out are drawn (config: start_with)")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def parse_launcher_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    smoke: Mapping[str, Any],
) -> argparse.Namespace:
    """``argv`` parsed by ``parser``; a ``--folds``, ``--epochs-cap``, ``--epochs`` or
    ``--subset`` below 1, or a negative or repeated ``--retrain-seeds`` seed, is a usage error
    (exit code 2: every trial, or every retraining after the search, would fail on it), as
    are ``--refills`` without ``--population`` and ``--shape-sizes`` without ``--population
    auto`` (they would change nothing), and with
    ``--smoke`` each option of ``smoke`` (``{"trials": 2, "epochs_cap": 1...}``, by
    ``argparse`` name) that was not given takes the smoke run's value."""
    args = parser.parse_args(argv)
    for key in ("folds", "epochs_cap", "epochs", "subset"):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    negative = [seed for seed in getattr(args, "retrain_seeds", None) or () if seed < 0]
    if negative:
        parser.error(f"--retrain-seeds must be seeds >= 0, got {negative[0]}")
    seeds = list(getattr(args, "retrain_seeds", None) or ())
    if len(set(seeds)) != len(seeds):  # refused here, not after the whole search has run
        twice = next(seed for i, seed in enumerate(seeds) if seed in seeds[:i])
        parser.error(f"--retrain-seeds must be distinct seeds, got {twice} twice")
    # options that would do nothing without another: refused rather than silently ignored
    if getattr(args, "refills", None) is not None and getattr(args, "population", None) is None:
        parser.error("--refills takes effect in population mode: give --population K too")
    if getattr(args, "shape_sizes", False) and getattr(args, "population", None) != "auto":
        parser.error("--shape-sizes takes effect with --population auto")
    if args.smoke:
        for key, value in smoke.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def run_experiment(
    exp: Experiment,
    args: argparse.Namespace,
    *,
    retrain_seeds: Sequence[int],
    retrain_command: Sequence[str],
    cwd: str | os.PathLike[str],
) -> ExperimentResults:
    """Run ``exp`` as a launcher does, retrain the chosen configuration, print the outcome.

    Trials size their CPU threads by the experiment's concurrency (``$SPIKETUNE_CONCURRENCY``,
    and ``$SPIKETUNE_TRIAL_THREADS`` from ``args.trial_threads`` when a probe set it; see
    :func:`spiketune.trial.trial_threads`). The run prints its start, one progress line per
    finished trial (none with ``args.quiet``) and how it finished. Then the chosen
    configuration (the trial whose model the experiment kept) is trained once per seed
    (``args.retrain_seeds``, else ``retrain_seeds``; none: skipped) on the split's training
    part and tested on the fixed test part: the figure to quote, since no trial and no
    decision ever saw those test samples. ``spiketune.engine.retrain`` runs
    ``retrain_command`` (the trial script, by hand) in ``cwd`` per seed into
    ``<experiment>/chosen/seed<k>/`` (checkpoint, ``result.json``, log), as many at once as
    the experiment's concurrency, and writes ``retrained.json``; a seed that ran on another data
    split than the chosen trial is a :class:`~spiketune.errors.TrialError` there, before any
    figure is printed. Last, the summary: the best
    model, the best test accuracy among trials (optimistic), the retrained test accuracy and,
    unless ``args.no_report``, the report.
    """
    from spiketune.engine import retrain
    from spiketune.trial import ENV_CONCURRENCY, ENV_TRIAL_THREADS

    os.environ[ENV_CONCURRENCY] = str(exp.config.concurrency)
    threads = getattr(args, "trial_threads", None)
    if threads is not None:
        os.environ[ENV_TRIAL_THREADS] = str(threads)
    print_start(exp)
    results = exp.run(progress=None if args.quiet else progress_printer())
    print_finish(results)
    seeds = list(retrain_seeds if args.retrain_seeds is None else args.retrain_seeds)
    retrained = None
    if seeds and results.best is not None and results.directory is not None:
        retrained = retrain(results, list(retrain_command), seeds=seeds, cwd=Path(cwd))
    print_summary(results, retrained=retrained, report=not args.no_report)
    if retrained is not None and not retrained.runs:  # the figure to quote is missing
        from spiketune.errors import TrialError

        raise TrialError(f"no retraining seed of the chosen configuration gave a result (see "
                         f"{results.directory / 'chosen'}/seed*/train.log)")
    return results


def launch(run: Callable[[list[str]], Any], argv: Sequence[str]) -> None:
    """A launcher's ``main.py`` as a command: ``run(argv)``, where an invalid option, setting
    of config.toml or data path (a :class:`spiketune.SpiketuneError`) ends the command with
    its reason alone and exit code 1, not a traceback; a setting that an option of the
    command line sets is named with that option (``max_trials (--trials)``). When ``run``
    returns an experiment's results and every trial of it failed, the command ends with exit
    code 1 too (:meth:`ExperimentResults.failure`)."""
    import sys

    from spiketune.engine.results import ExperimentResults
    from spiketune.errors import ConfigError, Problem, SpiketuneError
    from spiketune.launcher._command import option_of

    try:
        outcome = run(list(argv))
    except ConfigError as e:
        named = [Problem(f"{p.field} ({o})" if (o := option_of(p.field)) else p.field,
                         p.value, p.rule) for p in e.problems]
        sys.exit(f"error: {ConfigError(named, e.source)}")
    except SpiketuneError as e:
        sys.exit(f"error: {e}")
    failure = outcome.failure() if isinstance(outcome, ExperimentResults) else None
    if failure is not None:
        sys.exit(f"error: {failure}")

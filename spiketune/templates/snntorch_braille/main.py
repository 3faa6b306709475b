"""The launcher: the NIR paper's hyperparameter search for its snnTorch Braille RSNN, run by
spiketune, then its report.

The experiment (name, trial command ``python3 main_hpo.py``, the published search space, TPE,
Medianstop, budgets, concurrency) is ``config.toml`` with ``search_space.json``, so these two
run the same experiment::

    python main.py --data braille_reduced_th1_pool.pt
    spiketune run config.toml          # reads the data from $SPIKETUNE_BRAILLE_TH1_DATA

``main.py`` adds options for the budget and for smaller runs, and ends with the report::

    python main.py --smoke --data pool.pt      # 2 trials, 1 epoch, 10 samples per class
    python main.py --trials 40 --duration 1h --epochs 20 --data pool.pt
    python main.py --start-with params.json --data pool.pt   # known parameter sets first

Options for the trials (``--epochs``, ``--subset``, ``--data``) are added to the trial
command, so they are recorded with the experiment.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path

from spiketune import (
    DataError,
    Experiment,
    ExperimentResults,
    SpiketuneError,
    load_best_model,
    load_config,
)
from spiketune.launcher import (
    add_budget_options,
    add_experiment_options,
    config_changes,
    format_percent,
    launch,
    parse_launcher_args,
    print_finish,
    print_start,
    progress_printer,
    trial_module,
)
from spiketune.report import build_report

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"
#: Where the trials find the data when no --data is given (setup_hpo.DATA_ENV).
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 10 samples per class).
SMOKE = {"trials": 2, "epochs": 1, "subset": 10, "duration": "5m"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_options(p)  # --trials, --duration, --trial-duration, --concurrency
    p.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    p.add_argument("--epochs", type=int, help="epochs each trial trains (trial default 40)")
    p.add_argument("--subset", type=int, metavar="N", help="use N samples per class")
    p.add_argument("--data", help=f"the threshold-1 pool file or its directory (else ${DATA_ENV})")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials, 1 epoch, 10 samples per class: checks the whole chain")
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --start-with, --no-report...
    return parse_launcher_args(p, argv, smoke=SMOKE)


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run."""
    if importlib.util.find_spec("snntorch") is None:  # else every trial fails on its import
        raise SpiketuneError("the trials of this template are written in snnTorch, which is "
                             "not installed here: pip install 'spiketune[snntorch]' (or "
                             "pip install snntorch)")
    config = load_config(CONFIG)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    command = config.require_trial_command()
    data = Path(args.data).expanduser().resolve() if args.data else None
    for option, value in (("--epochs", args.epochs), ("--subset", args.subset), ("--data", data)):
        if value is not None:
            command += f" {option} {shlex.quote(str(value))}"
    if command != config.trial_command:
        changes["trial_command"] = command
    return Experiment(config, **changes)


def check_data(args: argparse.Namespace) -> None:
    """Read the pool a trial of this command line reads (``--data``, ``--subset``), once,
    before the search: a wrong ``--data`` stops the run with the reason, not each of its
    trials in turn. ``setup_hpo.py`` is read from beside this file by its path."""
    setup_hpo = trial_module(HERE)
    try:
        parts = setup_hpo.load_data(args.data, per_class=args.subset)
    except SystemExit as e:  # the trial's own one-line reason
        raise DataError(str(e.code).removeprefix("error: ")) from None
    if not len(parts.val) or not len(parts.test):
        raise DataError(f"--subset {args.subset}: too few samples per class for a "
                        "validation and a test part")


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, print the best trial, build the report."""
    args = parse_args(argv)
    if importlib.util.find_spec("snntorch") is not None:  # else experiment() says what to do
        check_data(args)
    exp = experiment(args)
    c = exp.config
    os.environ["SPIKETUNE_CONCURRENCY"] = str(c.concurrency)  # trials size their threads by it
    print_start(exp)
    results = exp.run(progress=None if args.quiet else progress_printer())
    print_finish(results)
    best = results.best
    if best is None or best.metrics is None:
        print(f"no trial completed (see `spiketune trials {results.id}`)")
    else:
        print(f"best trial {best.number}: validation accuracy "
              f"{format_percent(best.metrics['default'])}, "
              f"test accuracy {format_percent(best.metrics.get('test'))} (epoch "
              f"{best.metrics.get('epoch')}, split {str(best.metrics.get('split_digest'))[:18]})")
        print(f"best parameters: {best.parameters}")
    kept = load_best_model(results.directory) if results.directory is not None else None
    if kept is not None:
        print(f"best model file: {kept.path()}")
    if not args.no_report:
        print(f"report: {build_report(results.directory or results.id).index}")
    return results


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

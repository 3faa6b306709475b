"""The launcher: an HPO experiment over a recurrent spiking network trained by e-prop on the
20 spike patterns of the Mihalas–Niebur neuron, then its report.

The experiment itself (name, trial command ``python3 main_hpo.py``, search space, TPE,
Medianstop, budgets, GPUs, concurrency) is ``config.toml`` with ``search_space.json``, so these
two run the same experiment::

    python main.py
    spiketune run config.toml

``main.py`` adds options for the budget and for smaller runs, and ends with the report::

    python main.py --trials 40 --duration 10m --epochs-cap 20    # a laptop-sized search
    python main.py --smoke                                       # 2 trials, 1 epoch, seconds

Selection is honest by default: each trial is judged by its mean validation accuracy over
``--folds`` (3) stratified re-splits of the training pool, the test part of the split never
reaches a decision, and after the search the chosen configuration (the best trial by that
mean) is retrained with ``--retrain-seeds`` (0 1 2). Its test accuracy, mean ± std over those
seeds, goes to ``retrained.json`` and the report, beside the optimistic figure (the best test
accuracy among trials, chosen by looking at the test set). The seeds' checkpoints lie in
``<experiment>/chosen/seed<k>/best_model.pt``.

The data are always the generator's defaults (``setup_hpo.GENERATOR``: 100 samples per class,
noise 0.1 V/s, jitter 4 ms, seed 0): the options here change the budget and the subset a
smoke run uses, never the task.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from spiketune import Experiment, ExperimentResults, load_config
from spiketune.engine import Retrained, retrain
from spiketune.launcher import (
    config_changes,
    print_finish,
    print_start,
    print_summary,
    progress_printer,
    with_options,
)

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 10 samples per class).
SMOKE = {"trials": 2, "epochs_cap": 1, "subset": 10, "duration": "5m", "folds": 1,
         "retrain_seeds": [0]}
#: Re-splits a trial is judged on, and the seeds the chosen configuration is retrained with.
FOLDS = 3
RETRAIN_SEEDS = [0, 1, 2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="trials to run (config.toml: max_trials)")
    p.add_argument("--duration", help='time budget, e.g. "10m", "2h" (config: max_duration)')
    p.add_argument("--trial-duration", help='time limit of one trial, e.g. "5m"')
    p.add_argument("--concurrency", type=int, help="trials at once (config: concurrency)")
    p.add_argument("--epochs-cap", type=int, help="train each trial at most this many epochs")
    p.add_argument("--subset", type=int, metavar="N", help="use N samples per class")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials, 1 epoch, 10 samples per class: checks the whole chain")
    p.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    p.add_argument("--folds", type=int,
                   help=f"judge each trial by its mean validation accuracy over this many "
                        f"re-splits (default {FOLDS}; 1: the split alone)")
    p.add_argument("--retrain-seeds", type=int, nargs="*", metavar="SEED",
                   help=f"retrain the chosen configuration with these seeds and report its test "
                        f"accuracy as mean ± std (default {' '.join(map(str, RETRAIN_SEEDS))}; "
                        f"none: skip)")
    p.add_argument("--seed", type=int, help="tuner seed (config: seed)")
    p.add_argument("--name", help="experiment name (config: name)")
    p.add_argument("--experiment-dir", type=Path,
                   help="root of experiment directories (default $SPIKETUNE_EXPERIMENTS or "
                        "~/spiketune-experiments)")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.folds is not None and args.folds < 1:
        p.error(f"--folds must be at least 1, got {args.folds}")
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run."""
    config = load_config(CONFIG)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given

    # Options for every trial travel on its command line (recorded with the experiment).
    command = with_options(shlex.split(config.require_trial_command()),
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--folds": args.folds})
    if command != shlex.split(config.require_trial_command()):
        changes["trial_command"] = shlex.join(command)
    return Experiment(config, **changes)


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, build its report, print the outcome."""
    args = parse_args(argv)
    exp = experiment(args)
    c = exp.config
    # Trials size their CPU threads by this (see spiketune.trial.trial_threads).
    os.environ["SPIKETUNE_CONCURRENCY"] = str(c.concurrency)
    print_start(exp)
    results = exp.run(progress=None if args.quiet else progress_printer())
    print_finish(results)
    seeds = RETRAIN_SEEDS if args.retrain_seeds is None else args.retrain_seeds
    retrained = None
    if seeds and results.best is not None and results.directory is not None:
        retrained = retrain_chosen(results, seeds, args)
    # The best model, the best test accuracy among trials (optimistic), the chosen
    # configuration's retrained test accuracy (the figure to quote), the report.
    print_summary(results, retrained=retrained, report=not args.no_report)
    return results


def retrain_chosen(results: ExperimentResults, seeds: list[int],
                   args: argparse.Namespace) -> Retrained:
    """Train the chosen configuration (the trial whose model the experiment kept) once per
    seed on the split's training part and test each on the fixed test part: the figure to
    quote, since no trial and no decision ever saw those test samples.

    ``spiketune.engine.retrain`` runs ``main_hpo.py`` by hand per seed into
    ``<experiment>/chosen/seed<k>/`` (checkpoint, ``result.json``, log), as many at once as
    the experiment's concurrency, and writes ``retrained.json``.
    """
    command = with_options([sys.executable, "main_hpo.py", "--folds", "1"],
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset})
    return retrain(results, command, seeds=seeds, cwd=HERE)


if __name__ == "__main__":
    run(sys.argv[1:])

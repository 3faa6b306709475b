"""The launcher: an HPO experiment over an L²MU (spiking Legendre Memory Unit) on the WISDM
smartwatch activities, or over one of its baselines (the non-spiking LMU, a recurrent SNN),
then the chosen configuration retrained with seeds, then the report.

The experiment itself (name, trial command ``python3 main_hpo.py``, search space, TPE,
Medianstop, budgets, GPUs, concurrency) is ``config.toml`` with ``search_space.json``, whose
``model`` is a choice of the three models. ``--model`` keeps one of them (default ``l2mu``);
``--model all`` keeps all three, so these two run the same experiment::

    python main.py --model all
    spiketune run config.toml

``main.py`` adds options for the model, the input, the budget and smaller runs, and ends
with the report::

    python main.py --data wisdm-dataset.zip                      # the L²MU
    python main.py --model lmu --trials 40 --duration 1h         # the non-spiking baseline
    python main.py --model rsnn --input events                   # a recurrent SNN on events
    python main.py --smoke                                       # 2 trials, 1 epoch, seconds

Selection is honest by default: each trial is judged by its mean validation accuracy over
``--folds`` (3) re-splits of the subjects outside the fixed test subjects, the test subjects
never reach a decision, and after the search the chosen configuration (the best trial by that
mean) is retrained with ``--retrain-seeds`` (0 1 2). Its test accuracy, mean ± std over those
seeds, goes to ``retrained.json`` and the report, beside the optimistic figure (the best test
accuracy among trials, chosen by looking at the test set). The seeds' checkpoints lie in
``<experiment>/chosen/seed<k>/best_model.pt``, with the standardisation new data need in their
``extra``.
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
    narrow_choice,
    print_finish,
    print_start,
    print_summary,
    progress_printer,
    with_options,
)

HERE = Path(__file__).absolute().parent  # unresolved: a link to this directory stays one
CONFIG = HERE / "config.toml"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 3 windows of each activity
#: of each subject).
SMOKE = {"trials": 2, "epochs_cap": 1, "subset": 3, "duration": "5m", "folds": 1,
         "retrain_seeds": [0]}
#: Re-splits a trial is judged on, and the seeds the chosen configuration is retrained with.
FOLDS = 3
RETRAIN_SEEDS = [0, 1, 2]
#: The models of ``search_space.json``'s ``model`` choice, and the one searched by default.
MODELS = ("l2mu", "lmu", "rsnn")
DEFAULT_MODEL = "l2mu"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="trials to run (config.toml: max_trials)")
    p.add_argument("--duration", help='time budget, e.g. "10m", "2h" (config: max_duration)')
    p.add_argument("--trial-duration", help='time limit of one trial, e.g. "5m"')
    p.add_argument("--concurrency", type=int, help="trials at once (config: concurrency)")
    p.add_argument("--epochs-cap", type=int, help="train each trial at most this many epochs")
    p.add_argument("--subset", type=int, metavar="N",
                   help="use N windows of each activity of each subject")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials, 1 epoch, 3 windows of each activity of each subject: checks "
                        "the whole chain")
    p.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    p.add_argument("--model", choices=[*MODELS, "all"], default=DEFAULT_MODEL,
                   help="the model to search: l2mu (default), lmu (the non-spiking baseline), "
                        "rsnn (a recurrent SNN), or all three in one search (config.toml's)")
    p.add_argument("--input", choices=["frame", "events"],
                   help="keep one input encoding of the search space's input choice: frame "
                        "(standardised values as currents) or events (sigma-delta)")
    p.add_argument("--data", help="the UCI archive, wisdm-dataset.zip, or the extracted "
                   "directory (else $SPIKETUNE_WISDM_DATA, else spiketune's data cache, where "
                   "the archive is downloaded once)")
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

    # Options fixed for the whole search are given to every trial as a one-value choice, so
    # that they are recorded with its parameters: the model and the input encoding (each its
    # option of the space's choice, with its sub-parameters).
    space = dict(config.search_space)
    if args.model != "all":
        space["model"] = narrow_choice(space, "model", args.model)
    if args.input is not None:
        space["input"] = narrow_choice(space, "input", args.input)
    if space != config.search_space:
        changes["search_space"] = space

    # Options for every trial travel on its command line (recorded with the experiment).
    command = with_options(shlex.split(config.require_trial_command()),
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--data": args.data, "--folds": args.folds}, paths=("--data",))
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
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--data": args.data}, paths=("--data",))
    return retrain(results, command, seeds=seeds, cwd=HERE)


if __name__ == "__main__":
    run(sys.argv[1:])

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
    python main.py --population 1 --refills 8                    # 9 trials per process, in turn

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
import sys
from pathlib import Path

from spiketune import DataError, Experiment, ExperimentResults, load_config
from spiketune.launcher import (
    add_budget_options,
    add_experiment_options,
    add_population_options,
    add_selection_options,
    add_smoke_options,
    config_changes,
    launch,
    narrow_choice,
    parse_launcher_args,
    run_experiment,
    trial_command_change,
    trial_module,
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
    add_budget_options(p, concurrency_help="trials at once (config: concurrency); with "
                                           "--population, populations at once")
    add_population_options(p, refills=True)  # --population K (auto: refused), --refills R
    add_smoke_options(p, subset_help="use N windows of each activity of each subject",
                      smoke_help="2 trials, 1 epoch, 3 windows of each activity of each "
                                 "subject: checks the whole chain")
    p.add_argument("--model", choices=[*MODELS, "all"], default=DEFAULT_MODEL,
                   help="the model to search: l2mu (default), lmu (the non-spiking baseline), "
                        "rsnn (a recurrent SNN), or all three in one search (config.toml's)")
    p.add_argument("--input", choices=["frame", "events"],
                   help="keep one input encoding of the search space's input choice: frame "
                        "(standardised values as currents) or events (sigma-delta)")
    p.add_argument("--data", help="the UCI archive, wisdm-dataset.zip, or the extracted "
                   "directory (else $SPIKETUNE_WISDM_DATA, else spiketune's data cache, where "
                   "the archive is downloaded once)")
    add_selection_options(p, folds=FOLDS, retrain_seeds=RETRAIN_SEEDS)
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --no-report, --quiet
    return parse_launcher_args(p, argv, smoke=SMOKE)


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run."""
    config = load_config(CONFIG)
    if args.population == "auto":
        # The probe times batched recurrent SNNs; an L²MU or LMU member trains alone in its
        # population (it saves the start of a process per trial, it is not batched).
        raise SystemExit("error: --population auto: not for this template (its L²MU and LMU train "
                         "alone in a population); give a number, e.g. --population 1 "
                         "--refills 8: one process per core, each training trials one after "
                         "another")
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
    options = {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
               "--data": args.data, "--folds": args.folds,
               "--refills": args.refills if args.population is not None else None}
    changes.update(trial_command_change(config, options, paths=("--data",)))
    return Experiment(config, **changes)


def check_data(args: argparse.Namespace) -> None:
    """Read the data a trial of this command line reads (``--data``, ``--input``,
    ``--subset``), once, before the search (downloading them into the cache if that is
    where they are to come from): a wrong ``--data``, or no data at all, stops the run with
    the reason, not each of its trials in turn. ``setup_hpo.py`` is read from beside this
    file by its path, as a trial reads it."""
    setup_hpo = trial_module(HERE)
    options = setup_hpo.data_options({"input": args.input} if args.input is not None else {})
    try:
        setup_hpo.load_data(options, args.data, per_class=args.subset)
    except DataError as e:
        raise DataError(f"--data: {e}" if args.data is not None else str(e)) from None


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, retrain the chosen configuration with
    seeds, build its report, print the outcome (``spiketune.launcher.run_experiment``).

    The chosen configuration is retrained by ``main_hpo.py`` run by hand, judged on the split
    itself (``--folds 1``), with this run's epoch cap, subset and data.
    """
    args = parse_args(argv)
    check_data(args)
    exp = experiment(args)
    command = with_options([sys.executable, "main_hpo.py", "--folds", "1"],
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--data": args.data}, paths=("--data",))
    return run_experiment(exp, args, retrain_seeds=RETRAIN_SEEDS, retrain_command=command,
                          cwd=HERE)


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

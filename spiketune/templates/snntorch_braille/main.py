"""The launcher: the NIR paper's hyperparameter search for its snnTorch Braille RSNN, run by
spiketune, then the chosen configuration retrained with several seeds, and the report.

The experiment (name, trial command ``python3 main_hpo.py``, the published search space, TPE,
Medianstop, budgets, concurrency) is ``config.toml`` with ``search_space.json``, so these two
run the same search::

    python main.py --data braille_reduced_th1_pool.pt
    spiketune run config.toml          # reads the data from $SPIKETUNE_BRAILLE_TH1_DATA

``main.py`` adds options for the budget and for smaller runs, the retraining and the report::

    python main.py --smoke --data pool.pt      # 2 trials, 1 epoch, 10 samples per class
    python main.py --trials 40 --duration 1h --epochs 20 --data pool.pt
    python main.py --start-with params.json --data pool.pt   # known parameter sets first

Options for the trials (``--epochs``, ``--subset``, ``--data``) are added to the trial
command, so they are recorded with the experiment, and to each retraining seed's.

Selection: each trial is judged by its best validation accuracy on the validation part of the
fixed split (80/10/10, stratified, seed 0; one split, no re-splits); the test part never
reaches a decision. The chosen configuration (the trial whose model the experiment kept) is
retrained with ``--retrain-seeds`` (0 1 2) by ``main_hpo.py`` run by hand and tested once per
seed: mean ± std is written to ``retrained.json``, printed beside the best test accuracy among
trials (optimistic) and shown in the report.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

from spiketune import (
    DataError,
    Experiment,
    ExperimentResults,
    SpiketuneError,
    load_config,
)
from spiketune.launcher import (
    add_budget_options,
    add_experiment_options,
    add_selection_options,
    config_changes,
    launch,
    parse_launcher_args,
    run_experiment,
    trial_module,
)

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"
#: Where the trials find the data when no --data is given (setup_hpo.DATA_ENV).
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 10 samples per class, the
#: chosen configuration retrained with one seed).
SMOKE = {"trials": 2, "epochs": 1, "subset": 10, "duration": "5m", "retrain_seeds": [0]}
#: The seeds the chosen configuration is retrained with.
RETRAIN_SEEDS = [0, 1, 2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_options(p)  # --trials, --duration, --trial-duration, --concurrency
    p.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    p.add_argument("--epochs", type=int, help="epochs each trial trains (trial default 40)")
    p.add_argument("--subset", type=int, metavar="N", help="use N samples per class")
    p.add_argument("--data", help=f"the threshold-1 pool file or its directory (else ${DATA_ENV})")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials, 1 epoch, 10 samples per class, 1 retraining seed: checks "
                        "the whole chain")
    add_selection_options(p, folds=None, retrain_seeds=RETRAIN_SEEDS)  # --retrain-seeds
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --start-with, --no-report...
    return parse_launcher_args(p, argv, smoke=SMOKE)


def trial_options(args: argparse.Namespace) -> list[str]:
    """The options ``main_hpo.py`` gets from the command line (``--epochs``, ``--subset``,
    ``--data`` made absolute, since a trial runs in its own directory): the same for every
    trial of the search and every retraining seed, so that the seeds train as the trials did
    and on their split."""
    data = Path(args.data).expanduser().resolve() if args.data else None
    options: list[str] = []
    for option, value in (("--epochs", args.epochs), ("--subset", args.subset), ("--data", data)):
        if value is not None:
            options += [option, str(value)]
    return options


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run."""
    if importlib.util.find_spec("snntorch") is None:  # else every trial fails on its import
        raise SpiketuneError("the trials of this template are written in snnTorch, which is "
                             "not installed here: pip install 'spiketune[snntorch]' (or "
                             "pip install snntorch)")
    config = load_config(CONFIG)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    command = config.require_trial_command()
    options = trial_options(args)
    if options:
        changes["trial_command"] = f"{command} {shlex.join(options)}"
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
    """Run the experiment the command line describes, retrain the chosen configuration, build
    the report, print the outcome (``spiketune.launcher.run_experiment``).

    The chosen configuration (the trial whose model the experiment kept) is retrained once
    per seed by ``main_hpo.py`` run by hand (the trials' options, then ``--params FILE --seed
    K --out DIR --threads N``) on the split's training part and tested on its fixed test
    part. The seed draws the initial weights and the order of the training batches.
    """
    args = parse_args(argv)
    if importlib.util.find_spec("snntorch") is not None:  # else experiment() says what to do
        check_data(args)
    exp = experiment(args)
    command = [sys.executable, "main_hpo.py", *trial_options(args)]
    return run_experiment(exp, args, retrain_seeds=RETRAIN_SEEDS, retrain_command=command,
                          cwd=HERE)


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

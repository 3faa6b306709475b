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
    python main.py --population 8 --concurrency 1   # 8 trials at a time in one batched process
    python main.py --population auto    # K, processes and CPU threads chosen by a short probe

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
import sys
from pathlib import Path
from typing import Any

from spiketune import Experiment, ExperimentResults, load_config
from spiketune.launcher import (
    add_budget_options,
    add_experiment_options,
    add_population_options,
    add_selection_options,
    add_smoke_options,
    config_changes,
    launch,
    parse_launcher_args,
    run_experiment,
    trial_command_change,
    use_population_probe,
    with_options,
)
from spiketune.snn import PopulationProbe, probe_population

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 10 samples per class).
SMOKE = {"trials": 2, "epochs_cap": 1, "subset": 10, "duration": "5m", "folds": 1,
         "retrain_seeds": [0]}
#: Search-space keys every member of a population shares (``--population K``): what fixes the
#: shape of a network's computation (sizes, rule, batch size) and its data (bins, bias channel).
POPULATION_GROUP = ("n_rec", "batch_size", "rule", "bin_size", "clip", "bias_input")
#: ``--population auto``: the population sizes the probe measures, and the batches it times.
PROBE_SIZES = (1, 2, 4, 8, 16)
PROBE_STEPS = 4
#: Re-splits a trial is judged on, and the seeds the chosen configuration is retrained with.
FOLDS = 3
RETRAIN_SEEDS = [0, 1, 2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_options(p, concurrency_help="trials at once (config: concurrency); with "
                                           "--population, populations at once")
    add_population_options(p)  # --population K|auto
    add_smoke_options(p, smoke_help="2 trials, 1 epoch, 10 samples per class: checks the "
                                    "whole chain")
    add_selection_options(p, folds=FOLDS, retrain_seeds=RETRAIN_SEEDS)
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --no-report, --quiet
    return parse_launcher_args(p, argv, smoke=SMOKE)


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run. With
    ``--population auto`` the probe runs first (see :func:`choose_population`)."""
    config = load_config(CONFIG)
    if args.population == "auto":
        choose_population(args)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    if args.population is not None:
        # Members that share these train as one batch (spiketune.snn.group_members); the
        # rest varies per member.
        changes["population_group"] = [k for k in POPULATION_GROUP
                                       if k in config.search_space]

    # Options for every trial travel on its command line (recorded with the experiment).
    options = {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
               "--folds": args.folds}
    changes.update(trial_command_change(config, options))
    return Experiment(config, **changes)


def choose_population(args: argparse.Namespace) -> PopulationProbe:
    """``--population auto``: measure populations of :data:`PROBE_SIZES` default networks
    (``main_hpo``'s default parameters, seeds 0..K-1) on the data the trials will read, for
    timed epochs of :data:`PROBE_STEPS` batches, print the table and the choice, and put it
    into ``args`` (``population``, ``concurrency``, ``trial_threads``). A few seconds."""
    # The trial's own modules, beside this file: the same data and networks as a trial.
    import main_hpo
    import setup_hpo
    import torch
    import train_hpo

    params = dict(main_hpo.DEFAULT_PARAMS)
    data = setup_hpo.load_data(setup_hpo.data_options(params), per_class=args.subset)
    device = torch.device("cpu") if args.gpus == "none" else setup_hpo.trial_device()

    def build(k: int) -> list[Any]:
        return [train_hpo.build({**params, "seed": seed}, data.info, device=device)
                for seed in range(k)]

    probe = probe_population(build, data.train.tensor_dataset(), sizes=PROBE_SIZES,
                             steps=PROBE_STEPS)
    use_population_probe(args, probe)
    return probe


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, retrain the chosen configuration with
    seeds, build its report, print the outcome (``spiketune.launcher.run_experiment``).

    The chosen configuration is retrained by ``main_hpo.py`` run by hand, judged on the split
    itself (``--folds 1``), with this run's epoch cap, subset and data.
    """
    args = parse_args(argv)
    exp = experiment(args)
    command = with_options([sys.executable, "main_hpo.py", "--folds", "1"],
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset})
    return run_experiment(exp, args, retrain_seeds=RETRAIN_SEEDS, retrain_command=command,
                          cwd=HERE)


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

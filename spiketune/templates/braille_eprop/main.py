"""The launcher: an HPO experiment over a recurrent spiking network trained by e-prop on the
tactile Braille letters, then its report.

The experiment itself (name, trial command ``python3 main_hpo.py``, search space, TPE,
Medianstop, budgets, GPUs, concurrency) is ``config.toml`` with ``search_space.json``, so these
two run the same experiment::

    python main.py
    spiketune run config.toml

``main.py`` adds options for the budget and for smaller runs, and ends with the report::

    python main.py --trials 40 --duration 10m --epochs-cap 20    # a laptop-sized search
    python main.py --smoke                                       # 2 trials, 1 epoch, seconds
    python main.py --data braille_reduced_th1_pool.pt            # threshold 1, the seed's data
    python main.py --population auto   # K, populations at once and threads measured first

Selection is honest by default: each trial is judged by its mean validation accuracy over
``--folds`` (3) stratified re-splits of the training pool, the test part of the split never
reaches a decision, and after the search the chosen configuration (the best trial by that
mean) is retrained with ``--retrain-seeds`` (0 1 2). Its test accuracy, mean ± std over those
seeds, goes to ``retrained.json`` and the report, beside the optimistic figure (the best test
accuracy among trials, chosen by looking at the test set). The seeds' checkpoints lie in
``<experiment>/chosen/seed<k>/best_model.pt``; ``spiketune evaluate CHECKPOINT --data FILE.pt``
scores one on other data of the same encoding.
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
    trial_module,
    use_population_probe,
    with_options,
)
from spiketune.snn import PopulationProbe, probe_population

HERE = Path(__file__).absolute().parent  # unresolved: examples/braille_eprop links here
CONFIG = HERE / "config.toml"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 20 samples per class).
SMOKE = {"trials": 2, "epochs_cap": 1, "subset": 20, "duration": "5m", "folds": 1,
         "retrain_seeds": [0]}
#: Search-space keys every member of a population shares (``--population K``).
POPULATION_GROUP = ("n_rec", "batch_size", "rule", "bin_size", "clip", "channels", "threshold")
#: ``--population auto``: the population sizes the probe measures, and the batches it times.
PROBE_SIZES = (1, 2, 4, 8, 16)
PROBE_STEPS = 4
#: ``--population auto --shape-sizes``: the keys whose values change a step's cost the most.
#: Each combination of their options gets a K of its own (``population_sizes``).
SHAPE_KEYS = ("n_rec", "rule")
#: Re-splits a trial is judged on, and the seeds the chosen configuration is retrained with.
FOLDS = 3
RETRAIN_SEEDS = [0, 1, 2]
#: Options of a trial's command line that name files (made absolute for the trials' cwd).
PATH_OPTIONS = ("--data", "--pretrain-data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_options(p, concurrency_help="trials at once (config: concurrency); with "
                                           "--population, populations at once")
    add_population_options(p, refills=True)  # --population K|auto, --refills R
    p.add_argument("--shape-sizes", action="store_true",
                   help="with --population auto: also measure a K for each n_rec and rule of "
                        "the search space (config: population_sizes); on a GPU, where the "
                        "memory a member needs sets K, rather than on a CPU (see README)")
    add_smoke_options(p, smoke_help="2 trials, 1 epoch, 20 samples per class: checks the "
                                    "whole chain")
    p.add_argument("--data", help="threshold-1 pool file (.pt), Braille event file, or a "
                   "directory holding either (else $SPIKETUNE_BRAILLE_DATA, else spiketune's "
                   "data cache, where the event file is downloaded once)")
    p.add_argument("--pretrain-data", metavar="PATH",
                   help="event file of the archive (or its directory) whose letters outside "
                        "the task pretrain trials that search pretrain_epochs (default: "
                        "--data; needed with pool data)")
    add_selection_options(p, folds=FOLDS, retrain_seeds=RETRAIN_SEEDS)
    p.add_argument("--channels", choices=["split", "merged"],
                   help="ON/OFF events as 24 channels (split, default) or 12 (merged)")
    p.add_argument("--threshold", type=int, choices=[1, 2, 5, 10],
                   help="sigma-delta threshold of the event file (default 10)")
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --no-report, --quiet
    return parse_launcher_args(p, argv, smoke=SMOKE)


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run. With
    ``--population auto`` the probe runs first (see :func:`choose_population`)."""
    config = load_config(CONFIG)
    if args.population == "auto":
        choose_population(args, config.search_space)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    if args.population is not None:
        # What fixes the shape of a network's computation, and its data: members that share
        # these train as one batch (spiketune.snn.group_members); the rest varies per member.
        changes["population_group"] = [k for k in POPULATION_GROUP
                                       if k in config.search_space]
        if getattr(args, "population_sizes", None):
            changes["population_sizes"] = args.population_sizes

    # Dataset options fixed for the whole search are given to every trial as a one-value
    # choice, so that they are recorded with its parameters.
    space = dict(config.search_space)
    for key in ("channels", "threshold"):
        if getattr(args, key) is not None:
            space[key] = {"_type": "choice", "_value": [getattr(args, key)]}
    if space != config.search_space:
        changes["search_space"] = space

    # Options for every trial travel on its command line (recorded with the experiment).
    options = {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
               "--data": args.data, "--pretrain-data": args.pretrain_data, "--folds": args.folds,
               "--refills": args.refills if args.population is not None else None}
    changes.update(trial_command_change(config, options, paths=PATH_OPTIONS))
    return Experiment(config, **changes)


def check_data(args: argparse.Namespace) -> None:
    """Read the data a trial of this command line reads (``--data``, ``--channels``,
    ``--threshold``, ``--subset``), once, before the search: a wrong ``--data``, or options it
    cannot hold (``--channels split`` with the threshold-1 pool), stops the run with the
    reason, not each of its trials in turn. The trial's ``setup_hpo.py`` is read from beside
    this file by its path: ``make demo`` imports this launcher without its directory on the
    module path."""
    setup_hpo = trial_module(HERE)
    fixed = {key: getattr(args, key) for key in ("channels", "threshold")
             if getattr(args, key) is not None}  # main_hpo's defaults hold no data option
    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    setup_hpo.load_data(setup_hpo.data_options(fixed, pool=pool), args.data,
                        per_class=args.subset)


def choose_population(args: argparse.Namespace,
                      space: dict[str, Any] | None = None) -> PopulationProbe:
    """``--population auto``: measure populations of :data:`PROBE_SIZES` default networks on
    the data the trials will read, print the table and the choice, and put it into ``args``
    (``population``, ``concurrency``, ``trial_threads``); then, with ``--shape-sizes`` and
    the threads chosen, one K for each shape of ``space`` (:func:`choose_sizes`,
    ``args.population_sizes``).

    How fast K members train together, and whether one process with every core beats one
    process per core, depends on the machine more than on the network, so it is measured:
    timed epochs of :data:`PROBE_STEPS` batches per setting (``spiketune.snn
    .probe_population``), a few seconds to a minute. The members are ``main_hpo``'s default
    parameters with seeds 0..K-1: a trial of the search may be larger (``n_rec`` 512) or
    smaller, so the choice is a good start, not an optimum for every draw (``--shape-sizes``
    measures each shape; on a CPU that did not pay, see the README).
    """
    # The trial's own modules, beside this file: the same data and networks as a trial.
    import main_hpo
    import setup_hpo
    import torch
    import train_hpo

    fixed = {key: getattr(args, key) for key in ("channels", "threshold")
             if getattr(args, key) is not None}
    params = {**main_hpo.DEFAULT_PARAMS, **fixed}
    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    options = setup_hpo.data_options(params, pool=pool)
    data = setup_hpo.load_data(options, args.data, per_class=args.subset)
    device = torch.device("cpu") if args.gpus == "none" else setup_hpo.trial_device()

    def build(k: int) -> list[Any]:
        return [train_hpo.build({**params, "seed": seed}, data.info, device=device)
                for seed in range(k)]

    probe = probe_population(build, data.train.tensor_dataset(), sizes=PROBE_SIZES,
                             steps=PROBE_STEPS)
    use_population_probe(args, probe)
    if space is not None and getattr(args, "shape_sizes", False):
        args.population_sizes = choose_sizes(space, params, data, device, probe.threads)
    return probe


def shapes(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the options of :data:`SHAPE_KEYS` in ``space`` (choices only),
    as parameters a trial receives (a nested choice's option by its name alone)."""
    combos: list[dict[str, Any]] = [{}]
    for key in SHAPE_KEYS:
        spec = space.get(key)
        if not isinstance(spec, dict) or spec.get("_type") != "choice":
            continue
        options = [{"_name": v["_name"]} if isinstance(v, dict) else v for v in spec["_value"]]
        combos = [{**c, key: o} for c in combos for o in options]
    return [c for c in combos if c]


def choose_sizes(space: dict[str, Any], params: dict[str, Any], data: Any, device: Any,
                 threads: int) -> list[dict[str, Any]]:
    """A population size for each shape of ``space`` (:func:`shapes`), each measured like
    the default network at ``threads`` threads per process: ``population_sizes`` rules.

    Why per shape: K members of 128 neurons gain more from batching than 512-neuron ones,
    which on a CPU already keep the cores busy alone (K of them then only tie K of the
    tuner's draws to one expensive shape), and on a GPU need more memory each. The probe
    times steady training, not a process's start, which a population of one pays alone.
    Printed as it goes.
    """
    import train_hpo

    rules = []
    for shape in shapes(space):
        def build(k: int, shape: dict[str, Any] = shape) -> list[Any]:
            return [train_hpo.build({**params, **shape, "seed": seed}, data.info, device=device)
                    for seed in range(k)]

        probe = probe_population(build, data.train.tensor_dataset(), sizes=PROBE_SIZES,
                                 threads=[threads], steps=PROBE_STEPS)
        when = {k: v["_name"] if isinstance(v, dict) else v for k, v in shape.items()}
        rates = ", ".join(f"K {r.size}: {r.throughput:.0f}" for r in probe.table
                          if r.throughput is not None)
        print(f"  {when}: K = {probe.size} (member-samples/s {rates})", flush=True)
        rules.append({"when": when, "size": probe.size})
    return rules


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, retrain the chosen configuration with
    seeds, build its report, print the outcome (``spiketune.launcher.run_experiment``).

    The chosen configuration is retrained by ``main_hpo.py`` run by hand, judged on the split
    itself (``--folds 1``), with this run's epoch cap, subset and data.
    """
    args = parse_args(argv)
    if args.population != "auto":  # the probe reads the data itself
        check_data(args)
    exp = experiment(args)
    command = with_options([sys.executable, "main_hpo.py", "--folds", "1"],
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--data": args.data, "--pretrain-data": args.pretrain_data},
                           paths=PATH_OPTIONS)
    return run_experiment(exp, args, retrain_seeds=RETRAIN_SEEDS, retrain_command=command,
                          cwd=HERE)


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

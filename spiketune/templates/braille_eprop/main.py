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
import os
import shlex
import sys
from pathlib import Path
from typing import Any

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
#: Re-splits a trial is judged on, and the seeds the chosen configuration is retrained with.
FOLDS = 3
RETRAIN_SEEDS = [0, 1, 2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="trials to run (config.toml: max_trials)")
    p.add_argument("--duration", help='time budget, e.g. "10m", "2h" (config: max_duration)')
    p.add_argument("--trial-duration", help='time limit of one trial, e.g. "5m"')
    p.add_argument("--concurrency", type=int, help="trials at once (config: concurrency); "
                   "with --population, populations at once")
    p.add_argument("--population", type=_population, metavar="K|auto",
                   help="train up to K trials together in one process, as one batched "
                        "population (config: population); auto: choose K, the populations "
                        "at once (--concurrency) and their CPU threads by a short probe")
    p.add_argument("--epochs-cap", type=int, help="train each trial at most this many epochs")
    p.add_argument("--subset", type=int, metavar="N", help="use N samples per class")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials, 1 epoch, 20 samples per class: checks the whole chain")
    p.add_argument("--gpus", help='GPU indices "0,1", "all", or "none" (config: gpus)')
    p.add_argument("--data", help="threshold-1 pool file (.pt), Braille event file, or a "
                   "directory holding either (else $SPIKETUNE_BRAILLE_DATA, else spiketune's "
                   "data cache, where the event file is downloaded once)")
    p.add_argument("--folds", type=int,
                   help=f"judge each trial by its mean validation accuracy over this many "
                        f"re-splits (default {FOLDS}; 1: the split alone)")
    p.add_argument("--retrain-seeds", type=int, nargs="*", metavar="SEED",
                   help=f"retrain the chosen configuration with these seeds and report its test "
                        f"accuracy as mean ± std (default {' '.join(map(str, RETRAIN_SEEDS))}; "
                        f"none: skip)")
    p.add_argument("--channels", choices=["split", "merged"],
                   help="ON/OFF events as 24 channels (split, default) or 12 (merged)")
    p.add_argument("--threshold", type=int, choices=[1, 2, 5, 10],
                   help="sigma-delta threshold of the event file (default 10)")
    p.add_argument("--seed", type=int, help="tuner seed (config: seed)")
    p.add_argument("--name", help="experiment name (config: name)")
    p.add_argument("--experiment-dir", type=Path,
                   help="root of experiment directories (default $SPIKETUNE_EXPERIMENTS or "
                        "~/spiketune-experiments)")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(trial_threads=None)  # CPU threads per trial process, set by the probe
    args = p.parse_args(argv)
    if args.folds is not None and args.folds < 1:
        p.error(f"--folds must be at least 1, got {args.folds}")
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def _population(value: str) -> int | str:
    """``--population``: a number of trials, or ``auto``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of trials or auto, got {value!r}") from None


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run. With
    ``--population auto`` the probe runs first (see :func:`choose_population`)."""
    if args.population == "auto":
        choose_population(args)
    config = load_config(CONFIG)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    if args.population is not None:
        # What fixes the shape of a network's computation, and its data: members that share
        # these train as one batch (spiketune.snn.group_members); the rest varies per member.
        changes["population_group"] = [k for k in POPULATION_GROUP
                                       if k in config.search_space]

    # Dataset options fixed for the whole search are given to every trial as a one-value
    # choice, so that they are recorded with its parameters.
    space = dict(config.search_space)
    for key in ("channels", "threshold"):
        if getattr(args, key) is not None:
            space[key] = {"_type": "choice", "_value": [getattr(args, key)]}
    if space != config.search_space:
        changes["search_space"] = space

    # Options for every trial travel on its command line (recorded with the experiment).
    command = with_options(shlex.split(config.require_trial_command()),
                           {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                            "--data": args.data, "--folds": args.folds}, paths=("--data",))
    if command != shlex.split(config.require_trial_command()):
        changes["trial_command"] = shlex.join(command)
    return Experiment(config, **changes)


def choose_population(args: argparse.Namespace) -> PopulationProbe:
    """``--population auto``: measure populations of :data:`PROBE_SIZES` default networks on
    the data the trials will read, print the table and the choice, and put it into ``args``
    (``population``, ``concurrency``, ``trial_threads``).

    How fast K members train together, and whether one process with every core beats one
    process per core, depends on the machine more than on the network, so it is measured:
    one timed epoch of :data:`PROBE_STEPS` batches per setting (``spiketune.snn
    .probe_population``), a few seconds to a minute. The members are ``main_hpo``'s default
    parameters with seeds 0..K-1: a trial of the search may be larger (``n_rec`` 512) or
    smaller, so the choice is a good start, not an optimum for every draw.
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
    print(probe.summary(), flush=True)
    args.population, args.concurrency = probe.size, probe.processes
    args.trial_threads = probe.threads
    return probe


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, build its report, print the outcome."""
    args = parse_args(argv)
    exp = experiment(args)
    c = exp.config
    # Trials size their CPU threads by these (see spiketune.trial.trial_threads).
    os.environ["SPIKETUNE_CONCURRENCY"] = str(c.concurrency)
    if args.trial_threads is not None:
        os.environ["SPIKETUNE_TRIAL_THREADS"] = str(args.trial_threads)
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

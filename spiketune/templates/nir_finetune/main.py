"""The launcher: an HPO experiment that fine-tunes a NIR graph (12 inputs -> recurrent CubaLIF
layer -> 7 readouts, the NIR paper's Braille RSNN shape) on the threshold-1 Braille letters by
surrogate-gradient BPTT, tuning its time constants, threshold and learning rate; then the
chosen configuration retrained with several seeds, and the report.

The experiment itself (name, trial command ``python3 main_hpo.py``, search space, TPE,
Medianstop, budgets, concurrency) is ``config.toml`` with ``search_space.json``; ``main.py``
adds the starting graph (built by ``make_graph.py`` into ``braille_cuba.nir`` beside this file
when ``--graph`` names none and that file does not exist yet), options for the budget and for
smaller runs, the retraining and the report::

    python main.py --data braille_reduced_th1_pool.pt                 # the search, 3 seeds
    python main.py --data braille_reduced_th1_pool.pt --graph my.nir  # another graph
    python main.py --data braille_reduced_th1_pool.pt --smoke         # 2 trials, seconds
    python main.py --data braille_reduced_th1_pool.pt --population 1 --refills 8  # in turn

Selection: each trial is judged by its best validation accuracy on the validation part of the
fixed split ``stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``; the test part never reaches
a decision. The chosen configuration (the best trial by that accuracy) is retrained with
``--retrain-seeds`` (0 1 2) and tested once per seed: mean ± std is written to
``retrained.json`` and shown in the report.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from spiketune import (
    ConfigError,
    DataError,
    Experiment,
    ExperimentResults,
    ExportError,
    load_config,
)
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
    trial_module,
    with_options,
)

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"
#: The starting graph ``main.py`` builds (with ``make_graph.py``) when none is given.
DEFAULT_GRAPH = HERE / "braille_cuba.nir"

#: ``--smoke``: the whole chain in seconds (2 trials of 1 epoch on 10 samples per class).
SMOKE = {"trials": 2, "epochs_cap": 1, "subset": 10, "duration": "5m", "retrain_seeds": [0]}
#: The seeds the chosen configuration is retrained with.
RETRAIN_SEEDS = [0, 1, 2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_options(p, concurrency_help="trials at once (config: concurrency); with "
                                           "--population, populations at once")
    add_population_options(p, refills=True)  # --population K (auto: refused), --refills R
    add_smoke_options(p, smoke_help="2 trials, 1 epoch, 10 samples per class, 1 retraining "
                                    "seed: checks the whole chain", gpus=False)
    p.add_argument("--graph", type=Path,
                   help=f"the NIR graph to fine-tune (default {DEFAULT_GRAPH.name} beside this "
                        "file, built by make_graph.py when absent)")
    p.add_argument("--data", help="threshold-1 pool file (.pt) or a directory holding "
                   "braille_reduced_th1_pool.pt (else $SPIKETUNE_BRAILLE_TH1_DATA)")
    add_selection_options(p, folds=None, retrain_seeds=RETRAIN_SEEDS)
    add_experiment_options(p)  # --seed, --name, --experiment-dir, --no-report, --quiet
    args = parse_launcher_args(p, argv, smoke=SMOKE)
    if args.population == "auto":
        # The probe times batched recurrent SNNs of LIF or ALIF neurons; the graph's CubaLIF
        # network trains alone in its population (it saves the start of a process per trial).
        raise SystemExit("error: --population auto: not for this template (its CubaLIF network "
                         "trains alone in a population); give a number, e.g. --population 1 "
                         "--refills 8: one process per core, each fine-tuning trials one "
                         "after another")
    return args


def starting_graph(args: argparse.Namespace) -> Path:
    """The graph the trials fine-tune, as an absolute path: ``--graph``, else
    :data:`DEFAULT_GRAPH`, written by ``python make_graph.py`` (seed 0) if it does not
    exist. A ``--graph`` that does not exist is a usage error (exit code 2)."""
    if args.graph is not None:
        graph = args.graph.expanduser().resolve()
        if not graph.is_file():
            sys.stderr.write(f"main.py: error: --graph {args.graph}: no such file\n")
            raise SystemExit(2)
        return graph
    if not DEFAULT_GRAPH.is_file():
        # The same command a user would type (its defaults: 40 neurons, dt 10 ms, seed 0).
        subprocess.run([sys.executable, str(HERE / "make_graph.py"), str(DEFAULT_GRAPH)],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"built the starting graph {DEFAULT_GRAPH} (make_graph.py)", flush=True)
    return DEFAULT_GRAPH


def check_inputs(args: argparse.Namespace, graph: Path) -> None:
    """Read the graph and the data a trial reads (``--graph``, ``--data``, ``--subset``; the
    data at the graph's step), once, before the search: a graph that is no NIR file or has
    no step, data that cannot be binned at its step, or a wrong ``--data`` stops the run with
    the reason, not each of its trials in turn."""
    import spiketune.nir

    setup_hpo = trial_module(HERE)
    try:
        dt = spiketune.nir.read(graph).metadata.get("dt")
    except ExportError as e:
        raise ExportError(f"--graph: {e}") from None
    if dt is None:
        raise ExportError(f"--graph {graph}: the graph's metadata has no 'dt' (the step its "
                          "time constants are written for, also the data's bin size)")
    options = setup_hpo.data_options({"bin_size": float(dt)}, pool=True)
    try:
        setup_hpo.load_data(options, args.data, per_class=args.subset)
    except (DataError, ConfigError) as e:
        raise DataError(f"--data (binned at the graph's step {float(dt):g} s): {e}") from None


def experiment(args: argparse.Namespace, graph: Path | None = None) -> Experiment:
    """``config.toml`` with the command line's changes: the experiment to run. ``graph``
    (absolute) is added to the trial command."""
    config = load_config(CONFIG)
    changes = config_changes(args)  # --trials, --duration, --gpus...: the settings given
    # Options for every trial travel on its command line (recorded with the experiment).
    command = _with_trial_options(shlex.split(config.require_trial_command()), args, graph)
    if command != shlex.split(config.require_trial_command()):
        changes["trial_command"] = shlex.join(command)
    return Experiment(config, **changes)


def _with_trial_options(command: list[str], args: argparse.Namespace,
                        graph: Path | None, *, population: bool = True) -> list[str]:
    """``command`` with the options ``main_hpo.py`` gets from the command line, paths made
    absolute; ``--refills`` only for the search's trials in population mode."""
    refills = args.refills if population and args.population is not None else None
    return with_options(command, {"--graph": graph, "--epochs-cap": args.epochs_cap,
                                  "--subset": args.subset, "--data": args.data,
                                  "--refills": refills},
                        paths=("--graph", "--data"))


def run(argv: list[str] | None = None) -> ExperimentResults:
    """Run the experiment the command line describes, retrain the chosen configuration, build
    the report, print the outcome (``spiketune.launcher.run_experiment``).

    The chosen configuration (the trial whose model the experiment kept) is retrained from
    the same graph once per seed by ``main_hpo.py`` run by hand (``--params FILE --seed K
    --out DIR --threads N`` appended) on the split's training part and tested on the fixed
    test part. The seed changes the order of the training samples; the starting weights are
    the graph's.
    """
    args = parse_args(argv)
    graph = starting_graph(args)
    check_inputs(args, graph)
    exp = experiment(args, graph)
    command = _with_trial_options([sys.executable, "main_hpo.py"], args, graph,
                                  population=False)
    return run_experiment(exp, args, retrain_seeds=RETRAIN_SEEDS, retrain_command=command,
                          cwd=HERE)


if __name__ == "__main__":
    launch(run, sys.argv[1:])  # bad options or settings: the reason alone

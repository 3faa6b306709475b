"""What a template's ``main.py`` (the launcher) shares with the others: the changes its
command line makes to the experiment (settings, trial command, search space), and the lines it
prints while the experiment runs and after.

::

    from spiketune.launcher import (
        config_changes, print_finish, print_start, print_summary, progress_printer, with_options,
    )

    command = with_options(shlex.split(config.trial_command), {"--data": args.data},
                           paths=("--data",))  # the trial command, with --data made absolute
    exp = Experiment(config, **config_changes(args), trial_command=shlex.join(command))
    print_start(exp)
    results = exp.run(progress=progress_printer())
    print_finish(results)
    print_summary(results)  # the best model, the test accuracies, the report

The command line and the run are shared too: ``add_budget_options``, ``add_smoke_options``,
``add_selection_options`` and ``add_experiment_options`` add the options every launcher takes
(the template adds its own between them; ``add_population_options`` and
``use_population_probe`` those of population mode), ``parse_launcher_args`` parses them and applies
``--smoke``, ``trial_command_change`` puts options on every trial's command line, and
``run_experiment`` runs, retrains the chosen configuration with seeds and prints the summary;
``launch(run, sys.argv[1:])`` runs a launcher as a command, an invalid option or setting
ending it with the reason alone::

    p = add_budget_options(argparse.ArgumentParser())
    add_smoke_options(p, smoke_help="2 trials, 1 epoch: checks the whole chain")
    add_selection_options(p, folds=3, retrain_seeds=[0, 1, 2])
    add_experiment_options(p)
    args = parse_launcher_args(p, argv, smoke={"trials": 2, "epochs_cap": 1})
    exp = Experiment(config, **config_changes(args),
                     **trial_command_change(config, {"--folds": args.folds}))
    run_experiment(exp, args, retrain_seeds=[0, 1, 2], cwd=HERE,
                   retrain_command=[sys.executable, "main_hpo.py", "--folds", "1"])

The printed lines are the templates' own (``experiment ... in ...``, one progress line per
finished trial, ``finished in 1m05s: ...``, ``best model: ...``); durations read ``2m05s`` or
``1h02m03s``, accuracies ``93.3%``.
"""

from spiketune.launcher._command import (
    config_changes,
    narrow_choice,
    trial_command_change,
    trial_module,
    with_options,
)
from spiketune.launcher._lines import (
    format_duration,
    format_percent,
    print_finish,
    print_start,
    print_summary,
    progress_printer,
)
from spiketune.launcher._run import (
    add_budget_options,
    add_experiment_options,
    add_population_options,
    add_selection_options,
    add_smoke_options,
    launch,
    parse_launcher_args,
    population_size,
    refill_count,
    run_experiment,
    use_population_probe,
)

__all__ = [
    "add_budget_options",
    "add_experiment_options",
    "add_population_options",
    "add_selection_options",
    "add_smoke_options",
    "config_changes",
    "format_duration",
    "format_percent",
    "launch",
    "narrow_choice",
    "parse_launcher_args",
    "population_size",
    "print_finish",
    "print_start",
    "print_summary",
    "progress_printer",
    "refill_count",
    "run_experiment",
    "trial_command_change",
    "trial_module",
    "use_population_probe",
    "with_options",
]

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

The printed lines are the templates' own (``experiment ... in ...``, one progress line per
finished trial, ``finished in 1m05s: ...``, ``best model: ...``); durations read ``2m05s`` or
``1h02m03s``, accuracies ``93.3%``.
"""

from spiketune.launcher._command import config_changes, narrow_choice, with_options
from spiketune.launcher._lines import (
    format_duration,
    format_percent,
    print_finish,
    print_start,
    print_summary,
    progress_printer,
)

__all__ = [
    "config_changes",
    "format_duration",
    "format_percent",
    "narrow_choice",
    "print_finish",
    "print_start",
    "print_summary",
    "progress_printer",
    "with_options",
]

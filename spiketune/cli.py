"""The ``spiketune`` command: a thin layer over the experiment and results modules.

Each command is one small function; add new ones the same way (``@app.command()``). Exit
codes: 0 done; 2 a usage error (unknown command or option, a missing argument, a value of the
wrong type), with the usage line; 1 a failure, printed as one ``error:`` message without a
traceback: every error spiketune raises on purpose, and every path the command cannot use (a
missing or unwritable directory, a file where a directory belongs). Paths given on the command
line are checked before any work starts. Heavy imports happen inside the commands, so
``--help`` stays fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from spiketune._values import flatten
from spiketune.errors import (
    ConfigError,
    DataError,
    ExportError,
    Problem,
    SpiketuneError,
    StorageError,
)

if TYPE_CHECKING:
    from spiketune import ExperimentResults, Progress, TrialRecord

__all__ = ["app", "main"]


class _Group(typer.core.TyperGroup):
    """Turns :class:`SpiketuneError` and file-system errors into one message on stderr and exit
    code 1 (no traceback)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SpiketuneError as e:
            _error(str(e), _notes(e))
        except OSError as e:  # a path the checks below could not foresee (a full disk...)
            where = f"{e.filename}: " if e.filename else ""
            _error(f"{where}{e.strerror or e}", _notes(e))
        except Exception as e:  # the database's own error nothing before translated
            from spiketune.engine.storage import database_problem

            problem = database_problem(e)
            if problem is None:
                raise
            _error(problem, _notes(e))


def _notes(error: BaseException) -> list[str]:
    """The notes added to ``error`` (what else failed while it was on its way, e.g. ``also:
    FILE: No space left on device``)."""
    return [str(note) for note in getattr(error, "__notes__", ())]


def _error(message: str, notes: Sequence[str] = ()) -> None:
    """Print ``error: message`` on stderr, unwrapped whatever the width, then each of
    ``notes`` on a line of its own, and exit with 1."""
    console = _stderr()
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
    for note in notes:
        console.print(Text(note), soft_wrap=True)
    raise typer.Exit(1)


app = typer.Typer(
    cls=_Group,
    name="spiketune",
    help="Hyperparameter optimisation experiments for spiking neural networks (NNI-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from spiketune import __version__

        typer.echo(f"spiketune {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print spiketune's version and exit.", is_eager=True,
                     callback=_print_version),
    ] = False,
) -> None:
    """Hyperparameter optimisation experiments for spiking neural networks (NNI-compatible)."""


def _root_directory(root: Path | None) -> Path | None:
    """``--root`` / ``$SPIKETUNE_EXPERIMENTS`` (or the default root): refused at once when it
    names something that is not a directory. A root that does not exist yet holds nothing."""
    from spiketune.engine.storage import default_root

    path = root if root is not None else default_root()
    if path.exists() and not path.is_dir():
        raise StorageError(
            f"the experiments root {path} is not a directory (set it with --root or "
            "$SPIKETUNE_EXPERIMENTS)"
        )
    return root


_RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="SPIKETUNE_EXPERIMENTS",
        help="Directory holding experiment directories (default ~/spiketune-experiments).",
        show_default=False,
        callback=_root_directory,
    ),
]
_ExperimentArg = Annotated[
    str, typer.Argument(help="Experiment directory, id, or unique id prefix.", show_default=False)
]
_StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Database URL of the study, e.g. postgresql://user@host/db (overrides the one "
        "recorded; also finds an experiment that has no directory on this machine).",
        show_default=False,
    ),
]
_PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="File whose first line is the database password (instead of a password in the "
        "URL; $SPIKETUNE_DB_PASSWORD and PGPASSWORD work too).",
        show_default=False,
    ),
]


def _stdout(width: int = 10_000) -> Console:
    """stdout: a terminal's own width; elsewhere ``$COLUMNS`` if set, else ``width`` columns
    (by default so wide that files and pipes get table cells unwrapped). Without rich's
    markup: what it prints are the user's names (experiments, parameters, metric keys), which
    ``[/x]`` or ``[bold]`` would otherwise end in an error or hide."""
    console = Console(markup=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=width, markup=False)
    return console


def _stderr() -> Console:
    return Console(stderr=True)


def _find(experiment: str, root: Path | None) -> Path:
    from spiketune.engine.storage import locate_experiment

    found = locate_experiment(experiment, root)
    if found.notice:  # a name shared by several experiments: say which one was taken
        _stderr().print(Text("note: ", style="bold") + Text(found.notice), soft_wrap=True)
    return found.directory


def _password_file(path: Path | None) -> None:
    """Use the password in ``path`` for every database this command opens (the file's name,
    not the password, goes into this process's environment; trials never inherit it)."""
    if path is None:
        return
    from spiketune.engine.storage import PASSWORD_FILE_ENV, read_password_file

    read_password_file(path)  # a clean error now rather than at the first connection
    os.environ[PASSWORD_FILE_ENV] = str(path.expanduser().resolve())


def _writable_root(root: Path) -> None:
    from spiketune.engine.storage._paths import writable_root

    writable_root(root)


def _output_path(path: Path, option: str, *, directory: bool = False) -> Path:
    """An output path given as ``option``: its parent must be an existing directory (nothing
    is created by surprise from a misspelt path), and it must not be of the other kind."""
    path = path.expanduser()
    if path.exists() and path.is_dir() != directory:
        wanted = "a directory to write into" if directory else "the name of the file to write"
        raise ExportError(f"{option} {path}: is {'a file' if directory else 'a directory'}; "
                          f"give {wanted}")
    parent = path.absolute().parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ExportError(f"{option} {path}: the directory {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
        raise ExportError(f"{option} {path}: the directory {parent} is not writable")
    return path


def _results(experiment: str, root: Path | None, storage: str | None) -> ExperimentResults:
    """An experiment's results: found here by directory, id or prefix, else in ``storage``."""
    from spiketune.engine.results import load_results

    try:
        directory = _find(experiment, root)
    except SpiketuneError:
        if storage is None:
            raise
        return load_results(experiment, storage=storage)
    return load_results(directory, storage=storage)


def main() -> None:
    """Console-script entry point."""
    from spiketune.engine.runners import become_subreaper

    # A process of its own that runs trials: orphans of their processes come back to it and
    # are ended with their trial. Not done by the commands themselves: ``app`` run inside
    # another program must not start adopting that program's orphans.
    become_subreaper()
    app()


# ------------------------------------------------------------------------------ run / resume
@app.command()
def run(
    config: Annotated[
        Path, typer.Argument(help="Experiment config: TOML/YAML, or NNI config.yml.")
    ],
    experiment_dir: Annotated[
        Path | None,
        typer.Option("--experiment-dir", help="Root for the experiment directory (overrides "
                     "the config).", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    password_file: _PasswordFileOption = None,
) -> None:
    """Run an experiment described by CONFIG until its budget is used (Ctrl-C stops it cleanly)."""
    from spiketune.engine.config import load_config
    from spiketune.engine.experiment import Experiment

    _password_file(password_file)
    cfg = load_config(config)
    exp = Experiment(cfg, experiment_dir=experiment_dir) if experiment_dir else Experiment(cfg)
    _writable_root(exp.directory.parent)
    _stderr().print(f"experiment [bold]{escape(exp.id)}[/] in {escape(str(exp.directory))}")
    results = _interruptible(exp, exp.run, quiet)
    _print_summary(results, exp.status, exp.id)


@app.command()
def worker(
    config: Annotated[
        Path, typer.Argument(help="Experiment config: TOML/YAML, or NNI config.yml.")
    ],
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Database every worker reaches, e.g. "
                     "postgresql://user@host/db (default: storage in the config).",
                     show_default=False),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="Join this experiment (id or id prefix in the "
                     "database) instead of the one named in the config.", show_default=False),
    ] = None,
    experiment_dir: Annotated[
        Path | None,
        typer.Option("--experiment-dir", help="Root for this machine's experiment directory "
                     "(overrides the config).", show_default=False),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", help="Trials this worker runs at once (overrides the "
                     "config).", show_default=False),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", help='GPU indices for this worker\'s trials, "0,1" or "all" '
                     "(overrides the config).", show_default=False),
    ] = None,
    submitted: Annotated[
        str | None,
        typer.Option("--submitted", help="When this worker was submitted (ISO time, e.g. "
                     "2026-01-31T12:00:00; default: when this command started): a "
                     "'spiketune stop' since then ends it before it starts instead of "
                     "resuming the experiment. Launchers set it.",
                     show_default=False),
    ] = None,
    password_file: _PasswordFileOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Run one worker of a shared experiment: start it on as many machines as you like.

    The first worker creates the experiment in the database, the others join it; each runs
    its own trials until the experiment's budget is spent and no trial is left running.
    A worker resumes a stopped experiment, unless it was submitted (--submitted) or started
    before the stop: a job that starts late, or a worker still connecting when its user
    stops the fleet, does not undo that stop.
    """
    from datetime import datetime

    from spiketune.engine.config import load_config
    from spiketune.engine.launch import join_worker, worker_config
    from spiketune.engine.storage import default_root, redact_url

    # Taken before the database is reached: a stop requested while this worker is still
    # starting up (seconds, on a loaded machine) must reach it too.
    started = datetime.now().astimezone().isoformat()
    _password_file(password_file)
    from spiketune.engine.experiment import check_submitted

    loaded = load_config(config)  # the file's own problems: exit 1, as for run
    options = {"concurrency": "--concurrency", "gpus": "--gpus",
               "experiment_dir": "--experiment-dir", "submitted": "--submitted"}
    try:  # the options' values: usage errors (exit 2) that name the option
        if submitted is not None:
            check_submitted(submitted)
        cfg = worker_config(loaded, concurrency=concurrency, gpus=gpus,
                            experiment_dir=experiment_dir)
    except ConfigError as e:
        first = options.get(e.problems[0].field, e.problems[0].field)
        if len(e.problems) == 1:  # the option is named by the usage error itself
            text = f"{e.problems[0].rule} (got {e.problems[0].value!r})"
        else:
            text = "\n".join(str(Problem(options.get(p.field, p.field), p.value, p.rule))
                             for p in e.problems)
        raise typer.BadParameter(text, param_hint=f"'{first}'") from None
    _writable_root(cfg.experiment_dir or default_root())
    exp = join_worker(cfg, storage=storage, experiment=experiment,
                      submitted=submitted or started)
    _stderr().print(f"worker of [bold]{escape(exp.id)}[/] in "
                    f"{escape(redact_url(exp.storage_url))}; trials in "
                    f"{escape(str(exp.paths.trials))}")
    results = _with_progress(exp.run, quiet)
    _print_summary(results, exp.status if exp.status in ("failed", "stopped") else "done")


@app.command()
def resume(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Continue a stopped or crashed experiment where it was."""
    from spiketune.engine.experiment import Experiment

    _password_file(password_file)
    exp = Experiment.load(_find(experiment, root), storage=storage)
    _stderr().print(f"resuming [bold]{escape(exp.id)}[/]")
    results = _interruptible(exp, exp.resume, quiet)
    _print_summary(results, exp.status, exp.id)


def _interruptible(exp: Any, start: Any, quiet: bool) -> ExperimentResults:
    """``start`` (``exp.run`` or ``exp.resume``) with its progress. A Ctrl-C that comes
    before the scheduler takes it over (which stops the trials cleanly and returns) ends the
    command with exit code 130 and says what is left: nothing, when the experiment was not
    created yet (its directory, announced already, is removed with what was begun of it);
    else an experiment that ``spiketune resume`` continues."""
    try:
        return _with_progress(start, quiet)
    except KeyboardInterrupt:
        if exp.paths.experiment_json.exists():
            message = f"interrupted; `spiketune resume {exp.id}` continues it"
        else:
            message = f"interrupted before experiment {exp.id} was created: nothing was kept"
        _stderr().print(Text(message), soft_wrap=True)
        raise typer.Exit(130) from None


def _with_progress(start: Any, quiet: bool) -> ExperimentResults:
    console = _stderr()
    if quiet or not console.is_terminal:
        return start()
    from rich.live import Live

    with Live(Text("starting..."), console=console, auto_refresh=False, transient=False) as live:

        def show(p: Progress) -> None:
            live.update(_progress_text(p), refresh=True)

        results = start(progress=show)
    return results


def _progress_text(p: Progress) -> Text:
    trials = f"{p.started}" + (f"/{p.max_trials}" if p.max_trials is not None else "")
    best = "-" if p.best_value is None else f"{p.best_value:.6g} (trial {p.best_number})"
    remaining = "" if p.remaining_seconds is None else f", {_hms(p.remaining_seconds)} left"
    text = Text()
    text.append(f"trials started {trials}: ", style="bold")
    text.append(f"{p.done} done", style="green")
    text.append(f", {p.running} running")
    text.append(f", {p.failed} failed", style="red" if p.failed else "")
    text.append(f", {p.early_stopped} early-stopped")
    if p.stopped:
        text.append(f", {p.stopped} stopped", style="yellow")
    text.append(f" | best {best} | elapsed {_hms(p.elapsed_seconds)}{remaining}")
    if p.stopping:
        text.append(" | stopping...", style="yellow")
    elif p.finishing:  # at_max_duration = "finish": nothing starts, nothing is cut short
        text.append(" | max_duration reached: the running trials finish", style="yellow")
    return text


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _print_summary(results: ExperimentResults, status: str,
                   resumable: str | None = None) -> None:
    """The experiment's counts and best trial; with ``resumable`` (its id), a ``stopped``
    experiment (spiketune stop, Ctrl-C) also says how to go on with it."""
    from spiketune.engine.outcome import Outcome

    out = _stdout()
    stopped = results.count(Outcome.STOPPED)
    out.print(
        f"{status}: {len(results.records)} trials, {results.count(Outcome.COMPLETE)} complete, "
        f"{results.count(Outcome.EARLY_STOPPED)} early-stopped, "
        f"{results.count(Outcome.FAILED)} failed" + (f", {stopped} stopped" if stopped else "")
    )
    _print_best(results, out)
    if resumable is not None and status == "stopped":
        out.print(f"`spiketune resume {resumable}` continues it")
    failure = results.failure()
    if failure is not None:  # a script running this command must see it
        _stderr().print(Text(f"error: {failure}"), Text("(`spiketune trials` lists them)",
                                                         style="dim"))
        raise typer.Exit(1)


def _print_best(results: ExperimentResults, out: Console) -> None:
    if results.multi_objective:
        _print_front(results, out)
        return
    best = results.best
    if best is None:
        out.print("no complete trial yet" if not any(r.feasible is False for r in results.records)
                  else "no complete feasible trial yet")
        return
    key, direction = results.goals[0]
    value = (best.metrics or {}).get(key)
    name = "" if key == "default" else f" {key} ="
    out.print(f"best trial {best.number}:{name} {value!r} ({direction})")
    out.print(Text("parameters: " + json.dumps(best.parameters, ensure_ascii=False)))
    extra = {k: v for k, v in (best.metrics or {}).items() if k != "default"}
    if extra:
        out.print(Text("metrics: " + json.dumps(extra, ensure_ascii=False)))
    if results.tradeoffs:
        _print_front(results, out)


def _best_text(results: ExperimentResults) -> str:
    """The best value of the first objective; ``front: N`` with several objectives."""
    if results.multi_objective:
        front = results.pareto_front()
        return f"front: {len(front)}" if front else "-"
    best = results.best
    value = None if best is None else (best.metrics or {}).get(results.goals[0][0])
    return "-" if value is None else f"{value:.6g}"


def _print_front(results: ExperimentResults, out: Console) -> None:
    """The Pareto front as a table: one row per trial, objectives (then trade-off metrics)
    first."""
    front = results.pareto_front(tradeoffs=True)
    goals = ", ".join(f"{d} {k}" for k, d in results.front_goals)
    if not front:
        out.print(f"no complete feasible trial yet ({goals})")
        return
    keys = [k for k, _ in results.front_goals]
    params = list(dict.fromkeys(p for r in front for p in flatten(r.parameters)))
    table = Table("#", *keys, *params,
                  title=f"Pareto front: {len(front)} trial{'s' if len(front) != 1 else ''} "
                        f"({goals})")
    for r in front:
        flat = flatten(r.parameters)
        values = results.objective_values(r, tradeoffs=True) or []
        table.add_row(str(r.number), *(_fmt(v) for v in values),
                      *(_fmt(flat.get(p)) for p in params))
    out.print(table)


# ------------------------------------------------------------------------------ stop
@app.command()
def stop(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the running trials to be ended.",
                            min=0.0, max=1e9)
    ] = 60.0,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
    grace: Annotated[
        str, typer.Option("--grace", help='Submitted jobs (spiketune submit) still running '
                          'this long after the stop request are cancelled, e.g. "60s", "5m"; '
                          "pending ones are cancelled at once.")
    ] = "60s",
) -> None:
    """Stop a running experiment (from any terminal): its trials are ended and recorded.

    For an experiment in a shared database, every worker on every machine stops (each within
    one heartbeat interval). Then its submitted jobs that are still pending, or still running
    after --grace, are cancelled. An experiment whose scheduler was killed: the trial
    processes it left running are ended, and `spiketune resume` records them.
    """
    import time

    from spiketune.engine.config import parse_duration
    from spiketune.engine.experiment import Experiment
    from spiketune.engine.launch import read_jobs

    try:  # seconds (0: cancel at once), or a duration such as "60s", "5m"
        grace_s = float(grace) if grace.strip().replace(".", "", 1).isdigit() \
            else parse_duration(grace) or 0.0
    except ValueError as e:
        raise typer.BadParameter(f"{e} (got {grace!r})", param_hint="'--grace'") from None
    _password_file(password_file)
    try:
        directory = _find(experiment, root)
    except SpiketuneError:
        if storage is None:
            raise
        _stop_in_database(storage, experiment, wait)
        return
    exp = Experiment.load(directory, storage=storage)
    jobs = read_jobs(directory)
    requested = time.monotonic()
    # Its scheduler was killed: no one to ask, so its trials' processes are ended here.
    left = _end_orphans(exp) if exp.status == "interrupted" else None
    running = exp.running
    if running:
        exp.stop(wait=wait)
    if jobs:
        _cancel_jobs(jobs, grace_s, requested)
    if left is not None:
        _error(left)
    if not running:
        _stdout().print(f"{exp.id} is not running ({exp.status})")
        return
    if exp.running:
        _error(f"{exp.id} is still stopping after {wait:g} s")
    _stdout().print(f"{exp.id} {exp.status}")


def _end_orphans(exp: Any) -> str | None:
    """End the trial processes the killed scheduler of ``exp`` left running, and say how
    many; what to say of those that still run (None: none)."""
    from spiketune.engine.experiment import end_orphaned_trials

    orphans = end_orphaned_trials(exp)
    numbers = ", ".join(map(str, orphans.trials))
    noun = "trial" if len(orphans.trials) == 1 else "trials"
    if orphans.ended:
        _stdout().print(f"{exp.id}: its scheduler was killed; ended {orphans.ended} "
                        f"process{'es' if orphans.ended != 1 else ''} of {noun} {numbers} it "
                        f"left running; `spiketune resume {exp.id}` records them")
    if not orphans.running:
        return None
    return (f"{exp.id}: {orphans.running} process{'es' if orphans.running != 1 else ''} of "
            f"{noun} {numbers}, left running by its killed scheduler, could not be ended and "
            "still run")


def _cancel_jobs(jobs: list[Any], grace: float, since: float) -> None:
    """Cancel the submitted jobs still pending, or running ``grace`` seconds after ``since``
    (when the stop was requested), and say which."""
    from spiketune.engine.launch import cancel_jobs

    done = cancel_jobs(jobs, grace, since=since)
    out = _stdout()
    if done.pending:
        out.print(f"cancelled {len(done.pending)} pending jobs: {' '.join(done.pending)}")
    if done.overdue:
        out.print(f"cancelled {len(done.overdue)} jobs still running after {grace:g} s: "
                  f"{' '.join(done.overdue)}")
    out.print(f"jobs: {len(done.ended)} ended, "
              f"{len(done.pending) + len(done.overdue)} cancelled")


def _stop_in_database(url: str, experiment: str, wait: float) -> None:
    """``stop`` of an experiment that has no directory here, only a study in ``url``."""
    from spiketune.engine.experiment import running_in_study, stop_in_study
    from spiketune.engine.storage import find_study

    exp_id = find_study(url, experiment)
    if running_in_study(url, exp_id) == 0:
        _stdout().print(f"{exp_id} is not running (not here)")
        return
    if stop_in_study(url, exp_id, wait=wait) > 0:
        _error(f"{exp_id} is still stopping after {wait:g} s")
    _stdout().print(f"{exp_id} stopped")


# ------------------------------------------------------------------------------ reading
@app.command("ls")
def list_(
    root: _RootOption = None,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """List experiments with their status, trial count and best value (with --storage, also
    those in that database)."""
    from spiketune.engine.experiment import list_experiments
    from spiketune.engine.outcome import Outcome
    from spiketune.engine.results import load_summary  # count and best: no trial read whole
    from spiketune.engine.storage import list_studies

    _password_file(password_file)
    table = Table("id", "status", "trials", "best", "tuner", "created")
    shown: set[str] = set()
    unreadable: list[str] = []  # one message per study that cannot be read; exit 1 after
    given = _stored_form(storage)
    experiments = list_experiments(root)
    for s in experiments:
        shown.add(s.id)
        if s.problem is not None:  # its experiment.json is damaged: listed, and said why
            table.add_row(s.id, "damaged", "-", "-", "", "")
            unreadable.append(s.problem)
            continue
        status = s.status
        try:  # an experiment in the database given: read it with the URL given (its password)
            r = load_summary(s.directory,
                             storage=storage if given is not None and s.storage == given else None)
            trials, best_text = str(len(r.records)), _best_text(r)
        except SpiketuneError as e:
            status, trials, best_text = _unreadable_status(s), "-", "-"
            unreadable.append(f"{s.id}: {e}")
        table.add_row(s.id, status, trials, best_text, str(s.config.get("tuner", "")), s.created)
    if storage is not None:
        for study in list_studies(storage):
            if study["id"] in shown:
                continue
            r = load_summary(study["id"], storage=storage)
            status = "running" if r.count(Outcome.RUNNING) else "in database"
            table.add_row(r.id, status, str(len(r.records)), _best_text(r),
                          str(r.config.get("tuner", "")), "")
    _stdout().print(table)
    _print_jobs(experiments)
    for message in unreadable:
        _stderr().print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
    if unreadable:
        raise typer.Exit(1)


def _print_jobs(experiments: list[Any]) -> None:
    """The jobs submitted for the experiments (``spiketune submit``) and their states, as a
    second table; nothing when there are none."""
    from spiketune.engine.launch import job_states, read_jobs

    jobs = [(s.id, job) for s in experiments for job in read_jobs(s.directory)]
    if not jobs:
        return
    states = job_states([job for _, job in jobs])
    table = Table("experiment", "job", "executor", "state", "submitted", title="jobs")
    for exp_id, job in jobs:
        table.add_row(exp_id, job.id, job.executor, states.get(job.id, "UNKNOWN"),
                      job.submitted)
    _stdout().print(table)


def _stored_form(url: str | None) -> str | None:
    """``url`` as experiment.json records it (no password); None if there is none to use."""
    from spiketune.engine.storage import strip_password

    try:
        return None if url is None else strip_password(url)
    except StorageError:
        return None


def _unreadable_status(summary: Any) -> str:
    """``ls`` status of an experiment whose study cannot be read: ``missing`` (its study.db,
    or its journal file, is gone), ``corrupt`` (study.db is empty or not a study, or holds
    none: its creation was interrupted), else ``unreadable`` (a database that cannot be
    reached)."""
    from spiketune.engine.storage import ExperimentPaths, journal_file, study_file_problem

    if summary.storage is not None:
        try:
            journal = journal_file(summary.storage)
        except SpiketuneError:
            return "unreadable"
        return "missing" if journal is not None and not journal.exists() else "unreadable"
    problem = study_file_problem(ExperimentPaths(summary.directory).study_db, tables=True)
    return {None: "unreadable", "missing": "missing"}.get(problem, "corrupt")


@app.command()
def trials(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    params: Annotated[
        bool, typer.Option("--params", help="Add a column for every parameter.")
    ] = False,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Add a column for every key of the final results.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every trial as JSON: parameters, metrics, "
                           "the whole reason and its one-line cause.")
    ] = False,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Every trial: number, state, objective(s), duration and the cause of its ending; fits a
    100-column terminal (--params and --metrics add columns, --json gives everything)."""
    _password_file(password_file)
    r = _results(experiment, root, storage)
    if as_json:
        typer.echo(json.dumps([{**rec.to_dict(intermediate=False), "cause": _cause(rec.reason)}
                               for rec in r.records], indent=2))
        return
    objectives = [key for key, _ in r.goals]
    names = r.parameter_names if params else []
    extra = [k for k in r.metric_keys if k not in objectives] if metrics else []
    rows = []
    for rec in r.records:
        flat = flatten(rec.parameters)
        values = rec.metrics or {}
        rows.append([
            Text(str(rec.number)),
            _outcome_text(rec),
            *[Text(_fmt(values.get(k))) for k in objectives],
            *[Text(_fmt(flat.get(n))) for n in names],
            *[Text(_fmt(values.get(k))) for k in extra],
            Text(_duration(rec.duration_seconds)),
            Text(_cause(rec.reason)),
        ])
    columns = [("#", True), ("state", False),
               *[("value" if key == "default" else key, True) for key in objectives],
               *[(name, True) for name in [*names, *extra]], ("duration", True)]
    table = Table(title=r.id)
    for name, right in columns:
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    # A file or a pipe gets the 100-column view too; the wide views are not cut. The cause
    # takes what the other columns leave (each keeps its widest cell, and 3 columns of
    # padding and border), so that a long one never squeezes the trial's number and state.
    width = 100 if not (names or extra) else 10_000
    used = sum(3 + max(len(name), *(row[i].cell_len for row in rows)) for i, (name, _) in
               enumerate(columns)) if rows else 0
    table.add_column("cause", overflow="ellipsis", no_wrap=True,
                     max_width=max(10, width - used - 4))
    for row in rows:
        table.add_row(*row)
    _stdout(width).print(table)


@app.command()
def best(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the best trial as JSON (with "
                                          "several objectives, the front's trials).")] = False,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """The best trial: its value, parameters and metrics; with several objectives, the Pareto
    front (the trials no other feasible trial beats in every objective)."""
    _password_file(password_file)
    r = _results(experiment, root, storage)
    if as_json and r.multi_objective:
        typer.echo(json.dumps([t.to_dict(intermediate=False) for t in r.pareto_front()],
                              indent=2))
        return
    if as_json:
        b = r.best
        typer.echo(json.dumps(None if b is None else b.to_dict(intermediate=False), indent=2))
        return
    _print_best(r, _stdout())


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


@app.command()
def export(
    experiment: _ExperimentArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = (
        ExportFormat.csv
    ),
    intermediate: Annotated[
        bool, typer.Option("--intermediate", help="Include every intermediate report.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    root: _RootOption = None,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Export every trial as CSV or JSON."""
    from spiketune.engine.results import export_results
    from spiketune.engine.storage import ExperimentPaths

    if output is not None:
        output = _output_path(output, "--output")
    _password_file(password_file)
    results = _results(experiment, root, storage)
    if (output is not None and results.directory is not None
            and ExperimentPaths(results.directory).owns(output)):
        raise ExportError(f"--output {output}: is one of the files spiketune keeps in the "
                          f"experiment's directory {results.directory}; writing there would "
                          "replace it: give another name")
    text = export_results(results, fmt.value, intermediate=intermediate)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def report(
    experiment: _ExperimentArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default <experiment dir>/report).",
                     show_default=False),
    ] = None,
    root: _RootOption = None,
) -> None:
    """Figures and an offline HTML report: exploration, confusion matrix, history, importance."""
    from spiketune.report import report_command

    if out is not None:
        out = _output_path(out, "--out", directory=True)
    try:
        report_command(_find(experiment, root), out, None, echo=typer.echo)
    except ConfigError as e:  # the library's out_dir is this command's --out
        if out is None or any(p.field != "out_dir" for p in e.problems):
            raise
        raise ExportError("; ".join(f"--out {p.value}: must be {p.rule}" for p in e.problems)
                          ) from None


class ModelFormat(StrEnum):
    nir = "nir"


class ModelImporter(StrEnum):
    generic = "generic"
    snntorch = "snntorch"
    rockpool = "rockpool"
    norse = "norse"


@app.command("export-model")
def export_model(
    experiment: _ExperimentArg,
    fmt: Annotated[ModelFormat, typer.Option("--format", "-f", help="Model format.")] = (
        ModelFormat.nir
    ),
    importer: Annotated[
        ModelImporter,
        typer.Option("--for", help="The framework that will import the file: its node shapes, "
                     "step and readout (generic: NIR's own semantics)."),
    ] = ModelImporter.generic,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default <experiment dir>/"
                     "best_model/best_model.<format>).", show_default=False),
    ] = None,
    dt: Annotated[
        float | None,
        typer.Option("--dt", help="Time step written to the graph, seconds (default: the "
                     "importer's convention, else the model's own).", show_default=False),
    ] = None,
    approximate: Annotated[
        list[str] | None,
        typer.Option("--approximate", help="Allow a named approximation (adaptation, "
                     "refractory, reset, synapse) for what the importer cannot run exactly."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Test data (a TensorDataset file, as `spiketune evaluate` "
                     "reads): print the model's and the exported graph's accuracy on it, and "
                     "record them in <experiment dir>/best_model/exports.json for the report.",
                     show_default=False),
    ] = None,
    root: _RootOption = None,
) -> None:
    """Write the experiment's best model in a neuromorphic exchange format (NIR).

    With --data, the model's and the export's accuracy are also recorded beside the best
    model (exports.json), so that `spiketune report` shows what each approximation costs."""
    from spiketune.nir import APPROXIMATIONS, check_export, export, read
    from spiketune.nir._export import best_network, record_export_check, replaceable_nir

    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise typer.BadParameter(f"must be a number of seconds > 0 (got {dt:g})",
                                 param_hint="'--dt'")
    unknown = sorted(set(approximate or ()) - set(APPROXIMATIONS))
    if unknown:
        raise typer.BadParameter(f"{', '.join(map(repr, unknown))}: not one of "
                                 f"{', '.join(APPROXIMATIONS)}", param_hint="'--approximate'")
    if output is not None:
        output = _output_path(output, "--output")
    directory = _find(experiment, root)
    network = best_network(directory, fmt.value)
    test_data = None
    if data is not None:  # read and checked before anything is written: a bad file changes
        from spiketune.data import load_braille_pool  # nothing
        from spiketune.snn import as_trained

        # As the model was trained (rebinned to its bins): an accuracy on data of another
        # encoding would mean nothing, and go into exports.json and the report.
        checkpoint = Path(directory) / "best_model" / "best_model.pt"
        try:
            test_data = as_trained(checkpoint, load_braille_pool(data))
        except DataError as e:
            raise DataError(f"--data {data}: {e}") from None
    path = output or directory / "best_model" / f"best_model.{fmt.value}"
    replaceable_nir(path, "--output" if output is not None else "the default output")
    written = export(network, path, target=importer.value, dt=dt,
                     approximate=approximate or ())
    notes = str(read(written).metadata.get("approximations", "none"))
    typer.echo(f"wrote {written} (for {importer.value}; approximations: {notes})")
    if test_data is not None and data is not None:  # both or neither
        check = check_export(network, written, test_data)
        typer.echo(check.summary())
        exports, moved = record_export_check(directory, check, written, data)
        if moved is not None:  # kept for whoever wants to look; the new list starts empty
            _stderr().print(Text("warning: ", style="bold yellow")
                            + Text(f"{exports} could not be parsed: moved it to {moved} and "
                                   "started a new list"), soft_wrap=True)
        typer.echo(f"recorded the check in {exports}")
    elif notes != "none":
        typer.echo("pass --data <test file> to compare the model's and the export's accuracy")


class DataPart(StrEnum):
    all = "all"
    train = "train"
    val = "val"
    test = "test"


@app.command()
def evaluate(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="One or more checkpoints written by "
                                   "spiketune.snn.save_checkpoint (e.g. every retrained seed).",
                                   show_default=False)
    ],
    data: Annotated[
        Path, typer.Option("--data", help="A TensorDataset file of the reduced Braille "
                           "encoding (see spiketune.data.load_braille_pool), or a Braille "
                           "event file (or its directory), encoded as each checkpoint "
                           "records (threshold, channels, bins).",
                           show_default=False)
    ],
    mistakes: Annotated[
        bool, typer.Option("--mistakes", help="Also list the positions of the samples each "
                           "checkpoint misclassifies and, with several, those all of them "
                           "miss.")
    ] = False,
    part: Annotated[
        DataPart, typer.Option("--part", help="Score one part of the fixed split the "
                               "Braille example's trials see (stratified 80/10/10 % per class, "
                               "seed 0) instead of the whole file; --mistakes then counts "
                               "positions within that part.")
    ] = DataPart.all,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Checkpoints' accuracy and confusion matrix on a data file of the same encoding."""
    from spiketune.data import is_braille_pool, load_braille_pool, split_parts
    from spiketune.snn import evaluate_checkpoint, load_checkpoint

    networks = [load_checkpoint(c) for c in checkpoints]  # first: a wrong path fails fast
    datasets = _encoded_for(networks, checkpoints, data) if not is_braille_pool(data) else (
        [load_braille_pool(data)] * len(networks))
    described, digest = str(data), None
    if part is not DataPart.all:
        by_data = {id(d): split_parts(d) for d in datasets}  # one split per encoding loaded
        split = [by_data[id(d)] for d in datasets]
        whole = len(datasets[0])
        datasets = [getattr(parts, part.value) for parts in split]
        if not len(datasets[0]):  # an accuracy over no samples would read as 0 %
            raise DataError(f"{data}: its {part.value} part holds no samples (the file has "
                            f"{whole}: too few for a stratified 80/10/10 split per class)")
        digest = split[0].split_digest
        described = (f"{data} ({part.value} part, {len(datasets[0])} samples, split "
                     f"{digest[:16]}…)")
        # A part of another split than the one a network was trained and validated around is
        # not data it never saw: say so rather than let its accuracy pass for a test figure.
        for checkpoint, network, parts in zip(checkpoints, networks, split, strict=True):
            trained_around = network.extra.get("split_digest")
            if trained_around not in (None, parts.split_digest):
                _stderr().print(Text("warning: ", style="bold yellow") + Text(
                    f"{checkpoint} was trained around split {str(trained_around)[:16]}…, not "
                    f"{parts.split_digest[:16]}… (another data file?): samples it trained or "
                    f"was validated on may be in this {part.value} part"), soft_wrap=True)
    scores = [evaluate_checkpoint(n, d) for n, d in zip(networks, datasets, strict=True)]
    missed_by_all = sorted(set.intersection(*(set(s.mistakes) for s in scores)))
    if as_json:
        rows = [{"checkpoint": str(c), "data": str(data), "part": part.value,
                 "split_digest": digest, **s.as_dict()}
                for c, s in zip(checkpoints, scores, strict=True)]
        doc: Any = rows[0] if len(rows) == 1 else {
            "checkpoints": rows, "mean_accuracy": statistics.fmean(s.accuracy for s in scores),
            "missed_by_all": missed_by_all}
        typer.echo(json.dumps(doc, indent=2))
        return
    out = _stdout()
    for checkpoint, score in zip(checkpoints, scores, strict=True):
        out.print(f"accuracy {score.accuracy:.4f} ({score.correct}/{score.total}) of "
                  f"{checkpoint} on {described}", soft_wrap=True)
        if mistakes:
            out.print(f"misclassified samples: {_positions(score.mistakes)}", soft_wrap=True)
        out.print("confusion matrix (rows: true class, columns: predicted class)")
        table = Table()
        table.add_column("true class")
        for name in score.classes:
            table.add_column(name, justify="right")
        for name, row in zip(score.classes, score.matrix.tolist(), strict=True):
            table.add_row(name, *(str(v) for v in row))
        out.print(table)
    if len(scores) > 1:
        accuracies = [s.accuracy for s in scores]
        out.print(f"{len(scores)} checkpoints: accuracy {statistics.fmean(accuracies):.4f} ± "
                  f"{statistics.stdev(accuracies):.4f} (mean ± sample std)")
        if mistakes:
            out.print(f"misclassified by all {len(scores)}: {_positions(missed_by_all)}",
                      soft_wrap=True)


def _encoded_for(networks: Sequence[Any], checkpoints: Sequence[Path], data: Path) -> list[Any]:
    """The Braille event file ``data`` encoded as each checkpoint records its training data
    (``extra["data"]``: threshold, channels, letters, bins), one load per encoding."""
    from spiketune.data import load_braille_encoding

    loaded: dict[str, Any] = {}
    out = []
    for checkpoint, network in zip(checkpoints, networks, strict=True):
        options = network.extra.get("data")
        if not isinstance(options, dict):
            raise typer.BadParameter(
                f"{data} is not a TensorDataset file, and {checkpoint} does not record the "
                "encoding of its training data (extra['data']) to encode an event file as it "
                "was; give a TensorDataset file of its encoding", param_hint="'--data'")
        key = json.dumps(options, sort_keys=True)
        if key not in loaded:
            try:
                loaded[key] = load_braille_encoding(options, data, download=False)
            except DataError as e:
                raise DataError(f"--data {data}, encoded as {checkpoint} records its training "
                                f"data: {e}") from None
        out.append(loaded[key])
    return out


def _positions(indices: Sequence[int]) -> str:
    """Sample positions as ``5, 22, 25`` (``none`` for an empty list)."""
    return ", ".join(map(str, indices)) if indices else "none"


# ------------------------------------------------------------------------------ submit
_SLURM_ONLY = ("--executor", "--partition", "--time", "--mem", "--cpus-per-worker", "--account",
               "--qos", "--constraint", "--array-parallelism", "--slurm-option")
_K8S_ONLY = ("--image", "--namespace", "--cpu", "--memory", "--secret", "--secret-key",
             "--code-dir", "--output", "--apply", "--backoff-limit", "--name")


def _slurm_flag(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False, rich_help_panel="SLURM (--slurm)")


def _k8s_flag(*names: str, help_text: str) -> Any:
    return typer.Option(*names, help=help_text, show_default=False,
                        rich_help_panel="Kubernetes (--k8s)")


@app.command()
def submit(
    config: Annotated[
        Path, typer.Argument(help="Experiment config: TOML/YAML, or NNI config.yml.")
    ],
    workers: Annotated[int, typer.Option("--workers", "-n", help="Number of workers (jobs or "
                                         "pods), each a `spiketune worker`.", min=1)],
    slurm: Annotated[bool, typer.Option("--slurm", help="Submit the workers as SLURM jobs "
                                        "(submitit; pip install 'spiketune\\[slurm]').")] = False,
    k8s: Annotated[bool, typer.Option("--k8s", help="Write a Kubernetes Job manifest of the "
                                      "workers (and apply it with --apply).")] = False,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Database every worker reaches, e.g. "
                     "postgresql://user@host/db, without the password (default: storage in "
                     "the config).", show_default=False),
    ] = None,
    password_file: _PasswordFileOption = None,
    gpus_per_worker: Annotated[
        int | None, typer.Option("--gpus-per-worker", help="GPUs each worker gets; its trials "
                                 "use exactly those.", show_default=False, min=0)] = None,
    executor: Annotated[str | None, _slurm_flag(
        "slurm (default), or local: the same jobs as processes of this machine, for tests "
        "and single machines.")] = None,
    partition: Annotated[str | None, _slurm_flag("SLURM partition.")] = None,
    time_limit: Annotated[str | None, typer.Option(
        "--time", help='Wall time of each job, e.g. "4h", "90m", "1d" (needed for SLURM).',
        show_default=False, rich_help_panel="SLURM (--slurm)")] = None,
    mem: Annotated[str | None, _slurm_flag('Memory of each job, e.g. "16G".')] = None,
    cpus_per_worker: Annotated[int | None, _slurm_flag("CPUs of each job.")] = None,
    account: Annotated[str | None, _slurm_flag("SLURM account to charge.")] = None,
    qos: Annotated[str | None, _slurm_flag("SLURM quality of service.")] = None,
    constraint: Annotated[str | None, _slurm_flag("SLURM node features, e.g. a100.")] = None,
    array_parallelism: Annotated[int | None, _slurm_flag(
        "At most this many of the jobs run at once.")] = None,
    slurm_option: Annotated[list[str] | None, _slurm_flag(
        "Any other submitit SLURM parameter, KEY=VALUE (repeatable), e.g. exclude=node7.")
    ] = None,
    image: Annotated[str | None, _k8s_flag("--image", help_text="Container image with "
                                           "spiketune and the trial code.")] = None,
    namespace: Annotated[str | None, _k8s_flag("--namespace", help_text="Namespace of the "
                                               "Job.")] = None,
    cpu: Annotated[str | None, _k8s_flag("--cpu", help_text='CPU of each pod, e.g. "2" '
                                         '(default 1).')] = None,
    memory: Annotated[str | None, _k8s_flag("--memory", help_text='Memory of each pod, e.g. '
                                            '"8Gi" (default 2Gi).')] = None,
    secret: Annotated[str | None, _k8s_flag("--secret", help_text="Secret holding the "
                                            "database password.")] = None,
    secret_key: Annotated[str | None, _k8s_flag("--secret-key", help_text="Key of the "
                                                "password in the Secret (default "
                                                "password).")] = None,
    code_dir: Annotated[str | None, _k8s_flag("--code-dir", help_text="Directory of the "
                                              "trial code in the image.")] = None,
    output: Annotated[Path | None, _k8s_flag("--output", "-o", help_text="Manifest file to "
                                             "write (default <CONFIG name>.k8s.yaml).")] = None,
    apply: Annotated[bool | None, _k8s_flag("--apply", help_text="Also kubectl apply the "
                                            "manifest.")] = None,
    backoff_limit: Annotated[int | None, _k8s_flag("--backoff-limit", help_text="Restarts "
                                                   "of failed pods allowed (default 6).")
                             ] = None,
    name: Annotated[str | None, _k8s_flag("--name", help_text="Name of the Job (default "
                                          "spiketune-<experiment name>).")] = None,
) -> None:
    """Start WORKERS workers of the experiment on SLURM (--slurm) or Kubernetes (--k8s).

    SLURM: the jobs are submitted, their ids printed and recorded in the experiment
    directory (`spiketune ls` shows their state; `spiketune stop` cancels those still pending,
    or running after --grace). Kubernetes: a Job manifest is written (applied with --apply).
    """
    from spiketune.engine.launch import KubernetesLauncher, Launcher, SlurmLauncher
    from spiketune.engine.launch import submit as submit_workers

    if slurm == k8s:
        raise typer.BadParameter("give one of --slurm or --k8s", param_hint="'--slurm'")
    given = {flag for flag, value in (
        ("--executor", executor), ("--partition", partition), ("--time", time_limit),
        ("--mem", mem), ("--cpus-per-worker", cpus_per_worker), ("--account", account),
        ("--qos", qos), ("--constraint", constraint),
        ("--array-parallelism", array_parallelism), ("--slurm-option", slurm_option),
        ("--image", image), ("--namespace", namespace), ("--cpu", cpu), ("--memory", memory),
        ("--secret", secret), ("--secret-key", secret_key), ("--code-dir", code_dir),
        ("--output", output), ("--apply", apply), ("--backoff-limit", backoff_limit),
        ("--name", name)) if value is not None}
    wrong = sorted(given & set(_K8S_ONLY if slurm else _SLURM_ONLY))
    if wrong:
        kind, other = ("--slurm", "--k8s") if slurm else ("--k8s", "--slurm")
        raise typer.BadParameter(f"{', '.join(wrong)}: not an option of {kind} (of {other}); "
                               f"{kind} takes {', '.join(_SLURM_ONLY if slurm else _K8S_ONLY)}"
                               " and --workers, --storage, --password-file, --gpus-per-worker",
                                 param_hint=f"'{wrong[0]}'")
    _password_file(password_file)
    launcher: Launcher
    try:
        if slurm:
            launcher = SlurmLauncher(
                executor=executor or "slurm",
                options={"partition": partition, "gpus_per_worker": gpus_per_worker,
                         "time": time_limit, "mem": mem, "cpus_per_worker": cpus_per_worker,
                         "account": account, "qos": qos, "constraint": constraint,
                         "array_parallelism": array_parallelism},
                slurm_options=_key_values(slurm_option or []))
        else:
            if image is None:
                raise typer.BadParameter("--k8s needs --image IMAGE (spiketune and the "
                                         "trial code installed)", param_hint="'--image'")
            path = _output_path(output or Path(f"{config.stem}.k8s.yaml"), "--output")
            k8s_options = {"namespace": namespace, "cpu": cpu, "memory": memory,
                           "secret": secret, "secret_key": secret_key, "code_dir": code_dir,
                           "backoff_limit": backoff_limit, "name": name,
                           "gpus_per_worker": gpus_per_worker, "apply": apply}
            launcher = KubernetesLauncher(
                image=image, output=path,
                **{k: v for k, v in k8s_options.items() if v is not None})
    except ConfigError as e:  # an option's value: a usage error, with the usage line
        raise typer.BadParameter("\n".join(str(p) for p in e.problems),
                                 param_hint=f"'{e.problems[0].field.split()[0]}'") from None
    launched = submit_workers(config, launcher, workers=workers, storage=storage)
    out = _stdout()
    if launched.job_ids:
        out.print(f"submitted {len(launched.job_ids)} {launched.kind} jobs of experiment "
                  f"{launched.experiment_id or ''}: {' '.join(launched.job_ids)}",
                  soft_wrap=True)
        out.print(f"recorded in {launched.files[0]}; `spiketune ls` shows their state, "
                  f"`spiketune stop {launched.experiment_id or ''}` stops them", soft_wrap=True)
        return
    (manifest,) = launched.files
    out.print(f"wrote {manifest} (a ConfigMap and a Job of {workers} workers)", soft_wrap=True)
    for note in launched.notes:
        out.print(note, soft_wrap=True)
    if not apply:
        out.print(f"apply it with: kubectl apply -f {manifest}", soft_wrap=True)


def _key_values(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (``--slurm-option``) as a dict; a pair without ``=`` is a usage
    error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE",
                                     param_hint="'--slurm-option'")
        out[key.strip()] = value
    return out


# ------------------------------------------------------------------------------ view
@app.command()
def view(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1 lets "
                          "other machines see the experiment.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).",
                                      min=0, max=65535)] = 0,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Serve a live dashboard of a running or finished experiment (Ctrl-C ends it)."""
    from spiketune.dashboard import LOCAL_HOSTS, serve

    _password_file(password_file)
    try:
        ref: str | Path = _find(experiment, root)
    except SpiketuneError:
        if storage is None:
            raise
        ref = experiment
    if host not in LOCAL_HOSTS:
        _stderr().print(Text(f"warning: listening on {host}: anyone who reaches this machine "
                             "can read the experiment (no login)", style="yellow"))
    dashboard = serve(ref, storage=storage, host=host, port=port)
    _stdout().print(f"dashboard of {dashboard.experiment_id}: {dashboard.url}")
    _stdout().print(f"trial logs: {dashboard.logs_url}")
    _stdout().print("Ctrl-C to stop")
    try:
        dashboard.wait()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.close()


# ------------------------------------------------------------------------------ init
@app.command()
def init(
    # Text, not a Path: typer reads an empty argument (an unset "$DIR") as "." otherwise.
    directory: Annotated[str, typer.Argument(help="New project directory.", show_default=False)],
    template: Annotated[
        str, typer.Option(
            "--template", "-t",
            help="Project template: braille-eprop (the e-prop RSNN on Braille events), "
                 "braille-l2mu, wisdm-l2mu (the L²MU, LMU or RSNN), spike-patterns, "
                 "snntorch-braille (a trial written in snnTorch and `import nni` only), or "
                 "nir-finetune (an NIR graph mapped to a network and tuned).")
    ] = "braille-eprop",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the template's files if present.")
    ] = False,
) -> None:
    """Write a ready-to-run project (launcher, trial code, config.toml) into DIRECTORY."""
    from spiketune._init import init_project

    written = init_project(directory, template, force=force)
    typer.echo(f"wrote {len(written)} files into {directory}; run it with:\n"
               f"  cd {directory} && python main.py --smoke")


# ------------------------------------------------------------------------------ helpers
def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


def _duration(seconds: float | None) -> str:
    """Seconds to a tenth below a minute, ``h:mm:ss`` above."""
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 60 else _hms(seconds)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MARKS_ONLY = re.compile(r"[\s^~|\-=*.:]*")  # traceback carets, rulers, separators


#: The line a traceback ends with: ``ValueError: ...``, ``module.Error: ...``, ``KeyError``.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(:|$)")


def _cause(reason: str | None) -> str:
    """Why a trial ended, on one line: the reason's first line, and where that line quotes a
    stderr tail or a traceback (``exit code 1; stderr tail:`` + lines), its last meaningful
    line, the one that says what went wrong (``ValueError: ...``, ``sh: 1: x: not found``)."""
    if not reason:
        return ""
    head, _, quoted = reason.partition("\n")
    head = head.strip().removesuffix(":").removesuffix("; stderr tail").strip()
    line = _last_meaningful_line(quoted)
    return f"{head}: {line}" if line else head


def _last_meaningful_line(text: str) -> str:
    """The last line with a letter in it, once colour codes, progress-bar redraws (``\\r``)
    and lines of only marks (``^^^^``) are set aside; after a Python traceback, the first
    line of its exception (``RuntimeError: boom``), whose message may go on over more lines."""
    lines = text.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if frames:
        after = [line for line in lines[frames[-1] + 1:] if line and not line[0].isspace()]
        if after and _EXCEPTION_LINE.match(after[0]):
            return _ANSI.sub("", after[0]).strip()
    for raw in reversed(lines):
        line = _ANSI.sub("", raw).rsplit("\r", 1)[-1].strip()
        if line and not _MARKS_ONLY.fullmatch(line) and any(c.isalpha() for c in line):
            return line
    return ""


def _outcome_text(rec: TrialRecord) -> Text:
    """The trial's outcome, coloured; a COMPLETE trial that broke a constraint says so (it is
    never the best, nor on the front)."""
    if rec.outcome.value == "COMPLETE" and rec.feasible is False:
        return Text("COMPLETE (infeasible)", style="yellow")
    style = {"COMPLETE": "green", "FAILED": "red", "EARLY_STOPPED": "yellow",
             "STOPPED": "yellow"}.get(
        rec.outcome.value, ""
    )
    return Text(rec.outcome.value, style=style)


if __name__ == "__main__":
    main()

"""The ``spiketune`` command: a thin layer over the experiment and results modules.

Each command is one small function; add new ones the same way (``@app.command()``). Errors
spiketune raises on purpose are printed as one clean message (exit code 1); usage errors exit
with code 2. Heavy imports happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from spiketune.errors import SpiketuneError

if TYPE_CHECKING:
    from spiketune.engine.results import ExperimentResults, TrialRecord
    from spiketune.engine.scheduler import Progress

__all__ = ["app", "main"]


class _Group(typer.core.TyperGroup):
    """Turns :class:`SpiketuneError` into a message on stderr and exit code 1 (no traceback)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SpiketuneError as e:
            _stderr().print(Text("error: ", style="bold red") + Text(str(e)))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="spiketune",
    help="Hyperparameter optimisation experiments for spiking neural networks (NNI-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="SPIKETUNE_EXPERIMENTS",
        help="Directory holding experiment directories (default ~/spiketune-experiments).",
        show_default=False,
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


def _stdout() -> Console:
    console = Console()
    if not console.is_terminal:  # files and pipes: never wrap table cells
        console = Console(width=10_000)
    return console


def _stderr() -> Console:
    return Console(stderr=True)


def _find(experiment: str, root: Path | None) -> Path:
    from spiketune.engine.storage import find_experiment

    return find_experiment(experiment, root)


def _password_file(path: Path | None) -> None:
    """Use the password in ``path`` for every database this command opens (the file's name,
    not the password, goes into this process's environment; trials never inherit it)."""
    if path is None:
        return
    import os

    from spiketune.engine.storage import PASSWORD_FILE_ENV, read_password_file

    read_password_file(path)  # a clean error now rather than at the first connection
    os.environ[PASSWORD_FILE_ENV] = str(path.expanduser().resolve())


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
    _stderr().print(f"experiment [bold]{escape(exp.id)}[/] in {escape(str(exp.directory))}")
    results = _with_progress(exp.run, quiet)
    _print_summary(results, exp.status)


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
    password_file: _PasswordFileOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Run one worker of a shared experiment: start it on as many machines as you like.

    The first worker creates the experiment in the database, the others join it; each runs
    its own trials until the experiment's budget is spent and no trial is left running.
    """
    from spiketune.engine.config import ExperimentConfig, load_config
    from spiketune.engine.experiment import Experiment
    from spiketune.engine.storage import redact_url

    _password_file(password_file)
    cfg = load_config(config)
    updates = {key: value for key, value in (("concurrency", concurrency), ("gpus", gpus),
                                             ("experiment_dir", experiment_dir))
               if value is not None}
    if updates:
        cfg = ExperimentConfig(**{**cfg.to_dict(), "storage": cfg.storage, **updates})
    exp = Experiment.join(cfg, storage=storage, experiment=experiment)
    _stderr().print(f"worker of [bold]{escape(exp.id)}[/] in "
                    f"{escape(redact_url(exp.storage_url))}; trials in "
                    f"{escape(str(exp.paths.trials))}")
    results = _with_progress(exp.run, quiet)
    _print_summary(results, "done" if exp.status != "failed" else exp.status)


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
    results = _with_progress(exp.resume, quiet)
    _print_summary(results, exp.status)


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
    text.append(f" | best {best} | elapsed {_hms(p.elapsed_seconds)}{remaining}")
    if p.stopping:
        text.append(" | stopping...", style="yellow")
    return text


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _print_summary(results: ExperimentResults, status: str) -> None:
    from spiketune.engine.results import Outcome

    out = _stdout()
    out.print(
        f"{status}: {len(results.records)} trials, {results.count(Outcome.COMPLETE)} complete, "
        f"{results.count(Outcome.EARLY_STOPPED)} early-stopped, "
        f"{results.count(Outcome.FAILED)} failed"
    )
    _print_best(results, out)


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
    out.print(Text("parameters: " + json.dumps(best.parameters)))
    extra = {k: v for k, v in (best.metrics or {}).items() if k != "default"}
    if extra:
        out.print(Text("metrics: " + json.dumps(extra)))


def _best_text(results: ExperimentResults) -> str:
    """The best value of the first objective; ``front: N`` with several objectives."""
    if results.multi_objective:
        front = results.pareto_front()
        return f"front: {len(front)}" if front else "-"
    best = results.best
    value = None if best is None else (best.metrics or {}).get(results.goals[0][0])
    return "-" if value is None else f"{value:.6g}"


def _print_front(results: ExperimentResults, out: Console) -> None:
    """The Pareto front as a table: one row per trial, objectives first."""
    front = results.pareto_front()
    goals = ", ".join(f"{d} {k}" for k, d in results.goals)
    if not front:
        out.print(f"no complete feasible trial yet ({goals})")
        return
    keys = [k for k, _ in results.goals]
    params = list(dict.fromkeys(p for r in front for p in _flat(r.parameters)))
    table = Table("#", *keys, *params,
                  title=f"Pareto front: {len(front)} trial{'s' if len(front) != 1 else ''} "
                        f"({goals})")
    for r in front:
        flat = _flat(r.parameters)
        values = results.objective_values(r) or []
        table.add_row(str(r.number), *(_fmt(v) for v in values),
                      *(escape(_fmt(flat.get(p))) for p in params))
    out.print(table)


# ------------------------------------------------------------------------------ stop
@app.command()
def stop(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the running trials to be ended.")
    ] = 60.0,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Stop a running experiment (from any terminal): its trials are ended and recorded.

    For an experiment in a shared database, every worker on every machine stops (each within
    one heartbeat interval).
    """
    from spiketune.engine.experiment import request_stop_in_study, scheduler_status
    from spiketune.engine.storage import ExperimentPaths, StudyStore, find_study, read_json

    _password_file(password_file)
    try:
        directory: Path | None = _find(experiment, root)
    except SpiketuneError:
        if storage is None:
            raise
        directory = None
    if directory is not None:
        meta = read_json(ExperimentPaths(directory).experiment_json)
        exp_id, url = meta["id"], storage or meta.get("storage")
        local = scheduler_status(directory)
    else:
        assert storage is not None
        exp_id, url, local = find_study(storage, experiment), storage, "not here"

    def running_in_study() -> int:
        if url is None:
            return 0
        store = StudyStore.open(url, exp_id)
        try:
            return sum(1 for r in store.unfinished() if not r.waiting)
        finally:
            store.close()

    if local != "running" and running_in_study() == 0:
        _stdout().print(f"{exp_id} is not running ({local})")
        return
    if url is not None:
        request_stop_in_study(url, exp_id)
    if directory is not None and local == "running":
        ExperimentPaths(directory).stop_file.touch()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (
        (directory is not None and scheduler_status(directory) == "running")
        or running_in_study() > 0
    ):
        time.sleep(0.05 if url is None else 0.5)
    still = (directory is not None and scheduler_status(directory) == "running") \
        or running_in_study() > 0
    if still:
        _stderr().print(f"{exp_id} is still stopping after {wait:g} s")
        raise typer.Exit(1)
    _stdout().print(f"{exp_id} {scheduler_status(directory) if directory else 'stopped'}")


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
    from spiketune.engine.results import Outcome, load_results
    from spiketune.engine.storage import list_studies

    _password_file(password_file)
    table = Table("id", "status", "trials", "best", "tuner", "created")
    shown: set[str] = set()
    for s in list_experiments(root):
        shown.add(s.id)
        try:
            r = load_results(s.directory)
            trials, best_text = str(len(r.records)), _best_text(r)
        except SpiketuneError:
            trials, best_text = "?", "?"
        table.add_row(s.id, s.status, trials, best_text, str(s.config.get("tuner", "")), s.created)
    if storage is not None:
        for study in list_studies(storage):
            if study["id"] in shown:
                continue
            r = load_results(study["id"], storage=storage)
            status = "running" if r.count(Outcome.RUNNING) else "in database"
            table.add_row(r.id, status, str(len(r.records)), _best_text(r),
                          str(r.config.get("tuner", "")), "")
    _stdout().print(table)


@app.command()
def trials(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    storage: _StorageOption = None,
    password_file: _PasswordFileOption = None,
) -> None:
    """Table of every trial: outcome, parameters and every metric key."""
    _password_file(password_file)
    r = _results(experiment, root, storage)
    params, metrics = r.parameter_names, r.metric_keys
    table = Table("#", "outcome", *params, *metrics, "seconds", "reason", title=r.id)
    for rec in r.records:
        flat = _flat(rec.parameters)
        table.add_row(
            str(rec.number),
            _outcome_text(rec),
            *[_fmt(flat.get(p)) for p in params],
            *[_fmt((rec.metrics or {}).get(m)) for m in metrics],
            _fmt(rec.duration_seconds),
            Text((rec.reason or "").splitlines()[0] if rec.reason else ""),
        )
    _stdout().print(table)


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

    _password_file(password_file)
    text = export_results(_results(experiment, root, storage), fmt.value,
                          intermediate=intermediate)
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

    report_command(_find(experiment, root), out, None, echo=typer.echo)


class ModelFormat(StrEnum):
    nir = "nir"


@app.command("export-model")
def export_model(
    experiment: _ExperimentArg,
    fmt: Annotated[ModelFormat, typer.Option("--format", "-f", help="Model format.")] = (
        ModelFormat.nir
    ),
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default <experiment dir>/"
                     "best_model/best_model.<format>).", show_default=False),
    ] = None,
    dt: Annotated[
        float | None,
        typer.Option("--dt", help="Time step written to the graph, seconds (default: the "
                     "model's own).", show_default=False),
    ] = None,
    approximate: Annotated[
        list[str] | None,
        typer.Option("--approximate", help="Allow a named approximation (adaptation, "
                     "refractory, reset) for what the format cannot express."),
    ] = None,
    root: _RootOption = None,
) -> None:
    """Write the experiment's best model in a neuromorphic exchange format (NIR)."""
    from spiketune.snn._nir import export_best_model

    directory = _find(experiment, root)
    path = output or directory / "best_model" / f"best_model.{fmt.value}"
    written = export_best_model(directory, path, fmt.value, dt=dt, approximate=approximate or ())
    typer.echo(f"wrote {written}")


# ------------------------------------------------------------------------------ view
@app.command()
def view(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1 lets "
                          "other machines see the experiment.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = 0,
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
    directory: Annotated[Path, typer.Argument(help="New project directory.", show_default=False)],
    template: Annotated[
        str, typer.Option("--template", "-t", help="Project template: braille-eprop.")
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
def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


def _outcome_text(rec: TrialRecord) -> Text:
    style = {"COMPLETE": "green", "FAILED": "red", "EARLY_STOPPED": "yellow"}.get(
        rec.outcome.value, ""
    )
    return Text(rec.outcome.value, style=style)


if __name__ == "__main__":
    main()

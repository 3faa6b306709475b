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
    from spiketune.results import ExperimentResults, TrialRecord
    from spiketune.scheduler import Progress

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


def _stdout() -> Console:
    console = Console()
    if not console.is_terminal:  # files and pipes: never wrap table cells
        console = Console(width=10_000)
    return console


def _stderr() -> Console:
    return Console(stderr=True)


def _find(experiment: str, root: Path | None) -> Path:
    from spiketune.storage import find_experiment

    return find_experiment(experiment, root)


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
) -> None:
    """Run an experiment described by CONFIG until its budget is used (Ctrl-C stops it cleanly)."""
    from spiketune.config import load_config
    from spiketune.experiment import Experiment

    cfg = load_config(config)
    exp = Experiment(cfg, experiment_dir=experiment_dir) if experiment_dir else Experiment(cfg)
    _stderr().print(f"experiment [bold]{escape(exp.id)}[/] in {escape(str(exp.directory))}")
    results = _with_progress(exp.run, quiet)
    _print_summary(results, exp.status)


@app.command()
def resume(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Continue a stopped or crashed experiment where it was."""
    from spiketune.experiment import Experiment

    exp = Experiment.load(_find(experiment, root))
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
    from spiketune.results import Outcome

    out = _stdout()
    out.print(
        f"{status}: {len(results.records)} trials, {results.count(Outcome.COMPLETE)} complete, "
        f"{results.count(Outcome.EARLY_STOPPED)} early-stopped, "
        f"{results.count(Outcome.FAILED)} failed"
    )
    _print_best(results, out)


def _print_best(results: ExperimentResults, out: Console) -> None:
    best = results.best
    if best is None:
        out.print("no complete trial yet")
        return
    out.print(f"best trial {best.number}: {best.value!r} ({results.optimize_mode})")
    out.print(Text("parameters: " + json.dumps(best.parameters)))
    extra = {k: v for k, v in (best.metrics or {}).items() if k != "default"}
    if extra:
        out.print(Text("metrics: " + json.dumps(extra)))


# ------------------------------------------------------------------------------ stop
@app.command()
def stop(
    experiment: _ExperimentArg,
    root: _RootOption = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the running trials to be ended.")
    ] = 60.0,
) -> None:
    """Stop a running experiment (from any terminal): its trials are ended and recorded."""
    from spiketune.experiment import scheduler_status
    from spiketune.storage import ExperimentPaths

    directory = _find(experiment, root)
    status = scheduler_status(directory)
    if status != "running":
        _stdout().print(f"{directory.name} is not running ({status})")
        return
    ExperimentPaths(directory).stop_file.touch()
    deadline = time.monotonic() + wait
    while scheduler_status(directory) == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = scheduler_status(directory)
    if status == "running":
        _stderr().print(f"{directory.name} is still stopping after {wait:g} s")
        raise typer.Exit(1)
    _stdout().print(f"{directory.name} {status}")


# ------------------------------------------------------------------------------ reading
@app.command("ls")
def list_(root: _RootOption = None) -> None:
    """List experiments with their status, trial count and best value."""
    from spiketune.experiment import list_experiments
    from spiketune.results import load_results

    table = Table("id", "status", "trials", "best", "tuner", "created")
    for s in list_experiments(root):
        try:
            r = load_results(s.directory)
            trials, best = str(len(r.records)), r.best
            best_text = "-" if best is None else f"{best.value:.6g}"
        except SpiketuneError:
            trials, best_text = "?", "?"
        table.add_row(s.id, s.status, trials, best_text, str(s.config.get("tuner", "")), s.created)
    _stdout().print(table)


@app.command()
def trials(
    experiment: _ExperimentArg,
    root: _RootOption = None,
) -> None:
    """Table of every trial: outcome, parameters and every metric key."""
    from spiketune.results import load_results

    r = load_results(_find(experiment, root))
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the best trial as JSON.")] = False,
) -> None:
    """The best trial: its value, parameters and metrics."""
    from spiketune.results import load_results

    r = load_results(_find(experiment, root))
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
) -> None:
    """Export every trial as CSV or JSON."""
    from spiketune.results import export_results, load_results

    text = export_results(
        load_results(_find(experiment, root)), fmt.value, intermediate=intermediate
    )
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

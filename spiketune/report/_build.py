"""``build_report``: every figure and the page, written into one directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from spiketune.engine.results import Retrained, load_results, load_retrained
from spiketune.errors import CheckpointError, ConfigError, Problem, StorageError
from spiketune.report._axes import exploration
from spiketune.report._confusion import plot_confusion_matrix
from spiketune.report._exploration import (
    exploration_div,
    exploration_figure,
    plot_exploration_png,
    write_exploration_html,
)
from spiketune.report._figures import plot_history, plot_importance, plot_intermediate
from spiketune.report._html import Figure, importance_table, render_index
from spiketune.report._importance import param_importances
from spiketune.report._pareto import pareto_caption, pareto_table, plot_pareto

PLOTLY_JS = "plotly.min.js"


@dataclass(frozen=True)
class ReportFiles:
    """The files a report consists of; a figure is ``None`` when there was nothing to draw
    (no finished trial, no intermediate report, no kept best model with predictions)."""

    directory: Path
    index: Path
    plotly_js: Path
    exploration_png: Path | None = None
    exploration_html: Path | None = None
    confusion_matrix: Path | None = None
    history: Path | None = None
    importance: Path | None = None
    intermediate: Path | None = None
    pareto: Path | None = None  # several objectives, or trade-off metrics, only

    def written(self) -> list[Path]:
        """Every file written, the page first."""
        paths = [getattr(self, f.name) for f in fields(self) if f.name != "directory"]
        return [p for p in paths if p is not None]


#: Written into a report's directory before anything else: a build that failed part-way
#: (Ctrl-C, a full disk) leaves its own files there without a page, and the next build must
#: know them for its own rather than refuse them as a user's.
MARKER = ".spiketune-report"

#: Every file a report may write into its directory, besides index.html.
REPORT_FILES = (PLOTLY_JS, "exploration.png", "exploration.html", "confusion_matrix.png",
                "history.png", "importance.png", "intermediate.png", "pareto_front.png")


def _check_not_someone_elses(index: Path) -> None:
    """Refuse to replace an ``index.html`` that is not a spiketune report (a page of the
    user's own in the directory given), or, in a directory without one, a file of the
    user's own that bears the name of a report's file (``history.png``), before anything is
    written: a report rebuilt in its own directory replaces only its own files."""
    if not index.is_file():
        if (index.parent / MARKER).is_file():  # an earlier build of its own, cut short
            return
        clashes = [name for name in REPORT_FILES if (index.parent / name).exists()]
        if clashes:
            raise ConfigError(Problem(
                "out_dir", str(index.parent),
                f"a directory without files of its own: it holds {', '.join(clashes)} but no "
                "report page (index.html), and they would be replaced"))
        return
    try:
        with open(index, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError as e:
        raise ConfigError(Problem("out_dir", str(index.parent),
                                  f"a directory whose index.html can be read ({e.strerror})")
                          ) from None
    if "<title>spiketune report" not in head:  # every report's page says so in its head
        raise ConfigError(Problem("out_dir", str(index.parent),
                                  "a directory without a page of its own: its index.html is "
                                  "not a spiketune report, and would be replaced"))


def build_report(
    experiment: str | Path, out_dir: Path | None = None, storage: str | None = None
) -> ReportFiles:
    """Write the report of ``experiment`` (a directory, id or id prefix).

    ``out_dir`` defaults to ``<experiment dir>/report/``; ``storage`` overrides the study's
    database URL as in :func:`~spiketune.engine.results.load_results`. Works while the experiment
    runs (it shows what has finished) and on any experiment, whatever its parameters and
    metric keys. Open ``index.html`` in a browser; no network is needed.

    When the experiment directory holds a ``retrained.json`` (see
    :func:`~spiketune.engine.results.save_retrained`), the page shows the chosen configuration
    retrained with several seeds after the best trial; when it holds a
    ``best_model/exports.json`` (written by ``spiketune export-model --data``), the page shows
    each checked export's accuracy next to the model's. A file that cannot be read becomes a
    note on the page.
    """
    results = load_results(experiment, storage=storage)
    if out_dir is None:
        if results.directory is None:
            raise StorageError(f"experiment {results.id} has no directory: give out_dir")
        out_dir = results.directory / "report"
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(Problem("out_dir", str(out), "a directory for the report, not a file"))
    _check_not_someone_elses(out / "index.html")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a spiketune report: `spiketune report` rebuilds it here\n",
                              encoding="utf-8")
    notes: list[str] = []

    plotly_js = _write_plotly_js(out / PLOTLY_JS)
    files: dict[str, Path | None] = {}
    ex = exploration(results)
    div = None
    if ex.lines:
        title = f"{results.id}: {len(ex.lines)} trials"
        files["exploration_png"] = plot_exploration_png(ex, out / "exploration.png", title)
        fig = exploration_figure(ex, title)
        files["exploration_html"] = write_exploration_html(fig, out / "exploration.html")
        div = exploration_div(fig)

    best_model = None
    if results.directory is not None:
        from spiketune.trial._artifacts import BestModelKeeper

        try:
            best_model = BestModelKeeper(results.directory).current()
        except CheckpointError as e:
            notes.append(f"The kept best model could not be read: {e}")
    retrained: Retrained | None = None
    if results.directory is not None:
        try:
            retrained = load_retrained(results.directory)
        except StorageError as e:  # shown on the page; the rest of the report still builds
            notes.append(f"The retrained configuration could not be shown: {e}")
    exports = None
    if results.directory is not None:
        try:
            exports = _load_exports(results.directory)
        except StorageError as e:  # shown on the page; the rest of the report still builds
            notes.append(f"The checked exports could not be shown: {e}")
    predictions = None if best_model is None else best_model.predictions
    if predictions is not None and predictions.labels:
        files["confusion_matrix"] = out / "confusion_matrix.png"
        trial = "" if best_model.trial_id is None else f" (trial {best_model.trial_id})"
        plot_confusion_matrix(predictions, files["confusion_matrix"], title=f"Best model{trial}")

    files["history"] = plot_history(results, out / "history.png")
    importances = param_importances(results) if results.best is not None else None
    if importances is not None:
        files["importance"] = plot_importance(importances, out / "importance.png")
    files["intermediate"] = plot_intermediate(results, out / "intermediate.png")

    if results.has_front:
        files["pareto"] = plot_pareto(results, out / "pareto_front.png")
    figures = [] if not results.has_front else [
        Figure("Pareto front", files["pareto"], pareto_caption(results), pareto_table(results)),
    ]
    figures += [
        Figure("Confusion matrix of the best model", files.get("confusion_matrix"),
               "" if files.get("confusion_matrix") else "No kept best model with predictions."),
        Figure("Optimisation history", files["history"]),
        Figure("Hyperparameter importance", files.get("importance"),
               "" if importances is None else f"Method: {importances.method}.",
               importance_table(importances)),
        Figure("Intermediate results", files["intermediate"],
               "" if files["intermediate"] else "No trial reported intermediate results."),
    ]
    links = [p for p in (files.get("exploration_html"), files.get("exploration_png")) if p]
    page = render_index(
        results=results, out_dir=out, exploration_div=div, exploration_links=links,
        figures=figures, best_model=best_model, notes=notes, retrained=retrained,
        exports=exports,
    )
    index = out / "index.html"
    _write_text(index, page)
    for name in REPORT_FILES:  # an earlier report's figures this one has not (its front...)
        if out / name not in (plotly_js, *files.values()):
            (out / name).unlink(missing_ok=True)
    return ReportFiles(directory=out, index=index, plotly_js=plotly_js, **files)


def report_command(
    experiment: str | Path,
    out: Path | None = None,
    storage: str | None = None,
    echo: Callable[[str], object] = print,
) -> ReportFiles:
    """``spiketune report EXP [--out DIR] [--storage URL]``: build the report, say where it is."""
    files = build_report(experiment, out, storage)
    echo(f"report: {files.index} ({len(files.written())} files in {files.directory})")
    return files


def _load_exports(directory: Path) -> list[dict[str, Any]] | None:
    """The export checks of ``spiketune export-model --data``; None when none was recorded.

    The reader (in ``spiketune.nir``) imports torch and nir, so it is imported only when
    there is a file to read: a report without exports stays as quick to build as before."""
    if not (directory / "best_model" / "exports.json").exists():
        return None
    from spiketune.nir._export import load_export_checks

    return load_export_checks(directory)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_plotly_js(path: Path) -> Path:
    """plotly.js beside the page (once; rewritten only when the installed plotly differs)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    data = js.encode("utf-8")
    if not (path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path

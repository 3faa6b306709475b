"""``index.html``: one offline page tying the report together.

Every link is relative (figures beside the page, logs in the experiment's trial directories)
and the only script loaded is ``plotly.min.js`` beside the page, so the report opens from disk
on a machine without network, and keeps working when the experiment directory is moved whole.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from spiketune._values import flatten, is_finite
from spiketune.engine._retrain import trial_split_digest
from spiketune.engine.outcome import Outcome
from spiketune.engine.results import ExperimentResults, Retrained, TrialRecord
from spiketune.report._axes import category_label
from spiketune.report._importance import Importances

#: Files of a trial directory linked from the report, with their link text.
LOG_FILES = {
    "stdout.log": "stdout",
    "stderr.log": "stderr",
    "metrics.jsonl": "metrics",
    "parameter.json": "parameters",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1500px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; font-size: 1.2em; }
.summary { color: #555; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; cursor: pointer; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #fff4d6; font-weight: 600; }
tr.FAILED td.outcome { color: #b00; } tr.EARLY_STOPPED td.outcome { color: #777; }
td.reason { max-width: 30em; white-space: pre-wrap; font-size: 0.9em; color: #633; }
.figures img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.kv td:first-child { font-weight: 600; }
.note { color: #a60; }
.scroll { overflow-x: auto; }
"""

# Click a header to sort the trials table by that column (numbers as numbers).
_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var up = th.dataset.up !== '1'; th.dataset.up = up ? '1' : '0';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


@dataclass(frozen=True)
class Figure:
    """A figure on the page: its file (beside the page) and a caption."""

    title: str
    path: Path | None
    caption: str = ""
    extra_html: str = ""  # shown under the figure (trusted: built here, values escaped)


def fmt(value: Any) -> str:
    """A cell's text: numbers to 4 significant digits, nothing for ``None``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return category_label(value)


def _e(value: Any) -> str:
    return html.escape(fmt(value), quote=True)


def _href(target: Path, base: Path) -> str:
    rel = os.path.relpath(target, base)
    return quote(Path(rel).as_posix())


def _num_cell(value: Any) -> str:
    if is_finite(value):
        return f'<td class="num" data-v="{float(value)!r}">{_e(value)}</td>'
    return f"<td>{_e(value)}</td>"


def trial_dir(results: ExperimentResults, record: TrialRecord) -> Path | None:
    """Where a trial's files are: in this experiment directory (it may have moved since the
    trial ran), else where the trial recorded them."""
    if results.directory is not None:
        here = results.directory / "trials" / str(record.number)
        if here.is_dir():
            return here
    return record.trial_dir


def render_index(
    *,
    results: ExperimentResults,
    out_dir: Path,
    exploration_div: str | None,
    exploration_links: Sequence[Path],
    figures: Sequence[Figure],
    best_model: Any,
    notes: Sequence[str],
    retrained: Retrained | None = None,
    exports: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The page's HTML text; ``retrained`` is the chosen configuration retrained with several
    seeds (``retrained.json``), shown after the best trial; ``exports`` are the records of
    ``best_model/exports.json`` (``spiketune export-model --data``), shown after the best
    model, or None when there is no such file."""
    parts: list[str] = []
    add = parts.append
    title = f"spiketune report: {results.id}"
    add("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>")
    add(f"<title>{html.escape(title)}</title><style>{_CSS}</style>")
    if exploration_div is not None:
        add("<script src='plotly.min.js'></script>")
    add("</head><body>")
    add(f"<h1>{html.escape(title)}</h1>")
    add(f"<p class='summary'>{html.escape(_summary(results))}</p>")
    for note in notes:
        add(f"<p class='note'>{html.escape(note)}</p>")

    add(_best_section(results, out_dir))
    if retrained is not None:
        add(_retrained_section(results, retrained, out_dir))
    add(_optimistic_section(results))
    add(_best_model_section(best_model, out_dir))
    if exports is not None:
        add(_exports_section(exports, out_dir))

    add("<h2>Exploration</h2><div class='figures'>")
    if exploration_div is not None:
        add("<p>One line per finished trial; drag along an axis to keep the lines that cross it "
            "there, click the selection to clear it. Colour: test accuracy (or the objective).</p>")
        add(f"<div class='scroll'>{exploration_div}</div>")
        links = ", ".join(
            f"<a href='{_href(p, out_dir)}'>{html.escape(p.name)}</a>" for p in exploration_links
        )
        add(f"<p>Files: {links}</p>")
    else:
        add("<p>No finished trial with a result yet.</p>")
    add("</div>")

    for fig in figures:
        add(f"<h2>{html.escape(fig.title)}</h2><div class='figures'>")
        if fig.path is None:
            add(f"<p>{html.escape(fig.caption or 'Nothing to show yet.')}</p>")
        else:
            add(f"<img src='{_href(fig.path, out_dir)}' alt='{html.escape(fig.title)}'>")
            if fig.caption:
                add(f"<p>{html.escape(fig.caption)}</p>")
        add(fig.extra_html)
        add("</div>")

    add("<h2>Trials</h2>")
    add(_trials_table(results, out_dir))
    add(f"<p class='summary'>Generated {datetime.now().isoformat(timespec='seconds')} by "
        f"spiketune {_version()}.</p>")
    add(f"<script>{_SORT_JS}</script></body></html>\n")
    return "\n".join(parts)


def _version() -> str:
    from spiketune import __version__

    return __version__


def _summary(results: ExperimentResults) -> str:
    c = results.config
    counts = ", ".join(
        f"{results.count(o)} {o.value.lower().replace('_', ' ')}" for o in Outcome
        if results.count(o)
    )
    bits = [
        f"name {c.get('name', '?')}",
        f"tuner {c.get('tuner', '?')}",
        f"assessor {c.get('assessor') or 'none'}",
        "; ".join(f"{d} {k}" for k, d in results.goals) if results.objectives
        else f"{results.optimize_mode} the objective",
        f"{len(results.records)} trials ({counts or 'none yet'})",
        f"{results.elapsed_seconds:.0f} s of experiment time",
    ]
    if results.directory is not None:
        bits.append(f"directory {results.directory}")
    return "; ".join(bits)


def _best_section(results: ExperimentResults, out_dir: Path) -> str:
    best = results.best
    if best is None:
        broken = sum(1 for r in results.records
                     if r.outcome == Outcome.COMPLETE and r.feasible is False)
        if broken:  # complete, every one outside the constraints: not "none completed"
            return (f"<h2>Best trial</h2><p>No feasible trial: "
                    f"{_plural(broken, 'complete trial')} broke the constraints (a "
                    "constraint value &gt; 0).</p>")
        return "<h2>Best trial</h2><p>No trial has completed with a finite result yet.</p>"
    metrics = best.metrics or {}
    key = results.objective_key
    label = ("validation (objective, default)" if key == "default" else
             f"{key} (objective)" if not results.multi_objective else f"{key} (first objective)")
    rows = [("trial", best.number), (label, best.value)]
    for name in ("test", "train"):
        if name in metrics:
            rows.append((name, metrics[name]))
    shown = (key, "test", "train")
    rows += [(f"metric {k}", v) for k, v in metrics.items() if k not in shown]
    out = ["<h2>Best trial</h2><table class='kv'>"]
    out += [f"<tr><td>{html.escape(k)}</td>{_num_cell(v)}</tr>" for k, v in rows]
    out.append("</table><h3>Parameters</h3><table class='kv'>")
    out += [f"<tr><td>{html.escape(k)}</td>{_num_cell(v)}</tr>"
            for k, v in flatten(best.parameters).items()]
    out.append("</table>")
    logs = _log_links(results, best, out_dir)
    if logs:
        out.append(f"<p>Logs: {logs}</p>")
    return "\n".join(out)


def _retrained_section(results: ExperimentResults, retrained: Retrained, out_dir: Path) -> str:
    """The honest estimate: the configuration chosen on validation, retrained per seed."""
    runs = retrained.runs
    out = [f"<h2>Chosen configuration, retrained with {_plural(len(runs), 'seed')}</h2>"]
    source = next((r for r in results.records if r.number == retrained.trial), None)
    trial_cell = "not recorded" if retrained.trial is None else f"trial {retrained.trial}"
    if source is not None and (logs := _log_links(results, source, out_dir)):
        trial_cell = f"{html.escape(trial_cell)} ({logs})"
    else:
        trial_cell = html.escape(trial_cell)
    digest = retrained.split_digest
    out.append("<table class='kv'>")
    out.append(f"<tr><td>source trial</td><td>{trial_cell}</td></tr>")
    out.append(f"<tr><td>split digest</td><td>{html.escape(digest or 'not recorded')}</td></tr>")
    if retrained.command:
        out.append(f"<tr><td>command</td><td><code>{html.escape(retrained.command)}</code>"
                   "</td></tr>")
    out.append("</table>")
    best = results.best
    if retrained.trial is not None and best is not None and best.number != retrained.trial:
        out.append(f"<p class='note'>The best trial by validation is now trial {best.number}, "
                   f"not the retrained trial {retrained.trial}.</p>")
    # A run on another split than the chosen trial's was tested on other samples, some of which
    # the search may have validated on: its figure is not the search's honest estimate.
    trial_digest = None if source is None else trial_split_digest(source)
    if digest is not None and trial_digest is not None and trial_digest != digest:
        out.append(f"<p class='note'>The runs used another data split than trial "
                   f"{retrained.trial} (split digest {html.escape(trial_digest)}).</p>")
    if retrained.off_split:
        seeds = ", ".join(f"seed {r.seed} (split digest {html.escape(str(r.split_digest))})"
                          for r in retrained.off_split)
        out.append(f"<p class='note'>Not the chosen trial's data split: {seeds} ran on another "
                   f"split than {html.escape(digest or '')}, so the figure below does not "
                   "measure the chosen configuration on the search's test part.</p>")

    out.append(f"<p><strong>{html.escape(_retrained_line(retrained))}</strong></p>")
    keys = [k for k in _ordered_metric_keys(runs) if k != retrained.metric]
    if any(retrained.metric in r.metrics for r in runs):
        keys.insert(0, retrained.metric)
    head = ["seed", *keys, "checkpoint"]
    out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
               + "</tr></thead><tbody>")
    for run in runs:
        cells = [_num_cell(run.seed)] + [_num_cell(run.metrics.get(k)) for k in keys]
        cells.append(f"<td>{_checkpoint_link(results, run.checkpoint, out_dir)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    params = flatten(retrained.parameters)
    if params:
        out.append("<details><summary>Parameters</summary><table class='kv'>")
        out += [f"<tr><td>{html.escape(k)}</td>{_num_cell(v)}</tr>" for k, v in params.items()]
        out.append("</table></details>")
    return "\n".join(out)


def _retrained_line(retrained: Retrained) -> str:
    """``test accuracy 97.00% ± 1.00% (mean ± sample std over 3 seeds)``."""
    label = "test accuracy" if retrained.metric == "test" else retrained.metric
    values, mean, std = retrained.values, retrained.mean, retrained.std
    if mean is None or std is None:
        return f"No run reported a finite {label}."
    show = _percent if all(0.0 <= v <= 1.0 for v in values) else fmt  # accuracy as a fraction
    if len(values) == 1:  # a sample std of one value means nothing
        line = f"{label} {show(mean)} (one seed)"
    else:
        line = (f"{label} {show(mean)} ± {show(std)} "
                f"(mean ± sample std over {_plural(len(values), 'seed')})")
    missing = len(retrained.runs) - len(values)
    if missing:
        line += f"; {_plural(missing, 'run')} without a finite {retrained.metric}"
    return line


def _optimistic_section(results: ExperimentResults) -> str:
    """The best test accuracy of any finished trial, labelled for what it is: choosing by
    the test set flatters it. Empty when no finished trial reported ``test``."""
    scored = [(float((r.metrics or {})["test"]), r.number) for r in results.records
              if r.outcome.finished and is_finite((r.metrics or {}).get("test"))]
    if not scored:
        return ""
    test, number = max(scored, key=lambda s: (s[0], -s[1]))  # lowest number on ties
    value = _percent(test) if 0.0 <= test <= 1.0 else fmt(test)
    return ("<h2>Optimistic test accuracy</h2>"
            f"<p class='note'>Best test accuracy among trials: {html.escape(value)} "
            f"(trial {number}) — optimistic: chosen by looking at the test set</p>"
            "<p>The honest estimate is the test accuracy of the trial chosen by validation "
            "(the best trial), or of its retraining with several seeds when there is one.</p>")


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ordered_metric_keys(runs: Sequence[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.metrics))
    return list(seen)


def _checkpoint_link(results: ExperimentResults, checkpoint: str | None, out_dir: Path) -> str:
    """A link to a run's checkpoint (relative to the experiment directory, or absolute) when
    the file is there; its path as text otherwise."""
    if checkpoint is None:
        return ""
    path = Path(checkpoint)
    if not path.is_absolute():
        if results.directory is None:  # nothing to resolve it against
            return html.escape(checkpoint)
        path = results.directory / path
    if path.exists():
        return f"<a href='{_href(path, out_dir)}'>{html.escape(checkpoint)}</a>"
    return f"{html.escape(checkpoint)} (missing)"


def _best_model_section(best_model: Any, out_dir: Path) -> str:
    if best_model is None:
        return ("<h2>Best model</h2><p>No model was kept (trials keep one with "
                "<code>spiketune.trial.offer_best_model</code>).</p>")
    out = ["<h2>Best model</h2><table class='kv'>"]
    rows: list[tuple[str, Any]] = [
        ("from trial", best_model.trial_id),
        ("score (larger is better)", ", ".join(fmt(s) for s in best_model.score)),
        ("saved", best_model.saved),
    ]
    p = best_model.predictions
    if p is not None:
        rows.append((f"{p.split} accuracy", f"{p.accuracy:.2%} ({p.n_correct}/{len(p.labels)})"))
    rows += [(f"info {k}", v) for k, v in best_model.info.items()]
    out += [f"<tr><td>{html.escape(k)}</td>{_num_cell(v)}</tr>" for k, v in rows]
    out.append("</table>")
    files = [best_model.directory / n for n in [*best_model.files, "parameters.json"]]
    if p is not None:
        files.append(best_model.directory / "predictions.json")
    links = ", ".join(f"<a href='{_href(f, out_dir)}'>{html.escape(f.name)}</a>" for f in files)
    out.append(f"<p>Files: {links}</p>")
    return "\n".join(out)


def _exports_section(exports: Sequence[Mapping[str, Any]], out_dir: Path) -> str:
    """The best model as exported (NIR) next to the model itself, one row per checked file:
    an approximated export can lose accuracy, and this is where that cost is on record."""
    out = ["<h2>Exports</h2>"]
    if not exports:
        return out[0] + ("<p>No export has been checked yet (<code>spiketune export-model "
                         "--data FILE</code> records one).</p>")
    out.append("<p>Accuracy on the test data of the model as trained and of the exported graph "
               "run as its importer runs it (the importer's own conventions); agreement: the "
               "fraction of samples both classify alike.</p>")
    head = ["importer", "approximations", "samples", "model accuracy", "exported accuracy",
            "agreement", "file", "test data", "checked"]
    out.append("<div class='scroll'><table class='sortable'><thead><tr>"
               + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for r in exports:
        cells = [
            f"<td>{_e(r.get('target'))}</td>",
            f"<td>{_e(r.get('approximations'))}</td>",
            _num_cell(r.get("samples")),
            _fraction_cell(r.get("model_accuracy")),
            _fraction_cell(r.get("export_accuracy")),
            _fraction_cell(r.get("agreement")),
            f"<td>{_file_link(r.get('file'), out_dir)}</td>",
            f"<td>{_file_link(r.get('data'), out_dir)}</td>",
            f"<td>{_e(r.get('checked_at'))}</td>",
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _fraction_cell(value: Any) -> str:
    """A fraction (an accuracy) as a percentage, sortable by its value; anything else (a
    missing or hand-edited figure) as it is."""
    if is_finite(value) and 0.0 <= float(value) <= 1.0:
        return f'<td class="num" data-v="{float(value)!r}">{html.escape(_percent(value))}</td>'
    return _num_cell(value)


def _file_link(file: Any, out_dir: Path) -> str:
    """A recorded file by its name, linked when it is still there, its full path on hover."""
    if not isinstance(file, str) or not file:
        return _e(file)
    path = Path(file)
    name = html.escape(path.name or file)
    title = html.escape(file, quote=True)
    if path.is_absolute() and path.is_file():
        return f"<a href='{_href(path, out_dir)}' title='{title}'>{name}</a>"
    return f"<span title='{title}'>{name}</span> (missing)"


def _log_links(results: ExperimentResults, record: TrialRecord, out_dir: Path) -> str:
    d = trial_dir(results, record)
    if d is None:
        return ""
    links = [
        f"<a href='{_href(d / name, out_dir)}'>{text}</a>"
        for name, text in LOG_FILES.items()
        if (d / name).is_file()
    ]
    if d.is_dir():
        links.append(f"<a href='{_href(d, out_dir)}/'>folder</a>")
    return " ".join(links)


def _trials_table(results: ExperimentResults, out_dir: Path) -> str:
    params = results.parameter_names
    key = results.objective_key
    metrics = [k for k in results.metric_keys if k != key]  # the objective has its column
    marked = {r.number for r in results.best_trials}  # the Pareto front, several objectives
    constrained = any(r.constraints is not None for r in results.records)
    head = (["#", "outcome", f"objective ({key})"] + params + [f"metric {m}" for m in metrics]
            + (["feasible"] if constrained else []) + ["seconds", "reason", "logs"])
    out = ["<div class='scroll'><table class='sortable'><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in results.records:
        cls = r.outcome.value + (" best" if r.number in marked else "")
        flat = flatten(r.parameters)
        m = r.metrics or {}
        cells = [_num_cell(r.number), f"<td class='outcome'>{_e(r.outcome.value)}</td>",
                 _num_cell(r.value)]
        cells += [_num_cell(flat.get(p)) for p in params]
        cells += [_num_cell(m.get(k)) for k in metrics]
        if constrained:
            cells.append(_num_cell(None if r.feasible is None else
                                   "yes" if r.feasible else "no"))
        cells.append(_num_cell(None if r.duration_seconds is None
                               else round(r.duration_seconds, 2)))
        cells.append(f"<td class='reason'>{html.escape(r.reason or '')}</td>")
        cells.append(f"<td>{_log_links(results, r, out_dir)}</td>")
        out.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def importance_table(importances: Importances | None) -> str:
    """The importances as a two-column table (empty without any)."""
    if importances is None or not importances.values:
        return ""
    rows = [f"<tr><td>{html.escape(n)}</td>{_num_cell(v)}</tr>"
            for n, v in importances.values.items()]
    return ("<table class='kv'><tr><th>parameter</th><th>importance</th></tr>"
            + "".join(rows) + "</table>")

"""A live dashboard of one experiment, running or finished: optuna-dashboard on its study, plus
its trials' logs.

:func:`serve` starts the web server in a background thread and returns a :class:`Dashboard`
(its ``url``; ``close()`` ends it); ``spiketune view EXP`` does the same and waits for Ctrl-C.
The server listens on 127.0.0.1 unless told otherwise, on a free port, and shows only this
experiment's study, read-only (no study can be deleted or trial changed from the page).

What the page shows, per trial: state, parameters, the objective and its intermediate curve,
every final metric key as its own column (user attributes ``metric.<key>``, sortable), the
raw spiketune attributes, and a note holding the last lines of the trial's ``stdout.log`` and
``stderr.log`` with links to the whole files. Study-wide: history, parallel coordinates,
importance, slices. Routes served beside optuna-dashboard's own:

* ``/logs/`` – every trial of this machine's experiment directory, with links to its logs;
* ``/logs/<number>/stdout`` and ``/logs/<number>/stderr`` – the log as text (its last MiB).

Logs live in the trial directories of the machine that ran each trial: a dashboard shows those
found in its own experiment directory.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from spiketune.engine.runners import STDERR_FILE, STDOUT_FILE
from spiketune.engine.storage import (
    ExperimentPaths,
    StudyStore,
    find_experiment,
    find_study,
    read_json,
    sqlite_url,
)
from spiketune.errors import StorageError

__all__ = ["Dashboard", "serve"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_TAIL_LINES = 30  # lines of each log in a trial's note
_LOG_BYTES = 1 << 20  # the most of a log file one request returns (its end)
_LOG_ROUTE = re.compile(r"^/logs/(\d+)/(stdout|stderr)$")


class Dashboard:
    """A dashboard server running in a background thread (see :func:`serve`)."""

    def __init__(self, server: WSGIServer, experiment_id: str, store: StudyStore) -> None:
        self._server = server
        self._store = store
        self.experiment_id = experiment_id
        host, port = server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        self.url = f"http://{shown}:{port}/dashboard"
        self.logs_url = f"http://{shown}:{port}/logs/"
        self._thread = threading.Thread(target=server.serve_forever, name="spiketune-dashboard",
                                        daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until the server ends (Ctrl-C in the main thread ends the wait)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._store.close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    experiment: str | Path,
    *,
    storage: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Dashboard:
    """Serve the dashboard of ``experiment`` (a directory, id or id prefix; with ``storage``
    also an experiment known only to that database) on ``host``:``port`` (0: a free port).

    Returns once the server listens; read the address from ``Dashboard.url``.
    """
    directory, experiment_id, url = _locate(experiment, storage)
    store = StudyStore.open(url, experiment_id)
    try:
        app = _application(store, directory)
        server = make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as e:
        store.close()
        raise StorageError(f"cannot serve the dashboard on {host}:{port}: {e.strerror or e}") \
            from None
    except BaseException:
        store.close()
        raise
    return Dashboard(server, experiment_id, store)


def _locate(experiment: str | Path, storage: str | None) -> tuple[Path | None, str, str]:
    """(local directory or None, experiment id, storage URL)."""
    try:
        directory = find_experiment(experiment)
    except StorageError:
        if storage is None:
            raise
        return None, find_study(storage, str(experiment)), storage
    paths = ExperimentPaths(directory)
    meta = read_json(paths.experiment_json)
    return directory, meta["id"], storage or meta.get("storage") or sqlite_url(paths.study_db)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr (the page polls every few seconds)."""


def _application(store: StudyStore, directory: Path | None) -> Callable[..., Iterable[bytes]]:
    """optuna-dashboard's WSGI app on a read-only view of the study, plus the log routes."""
    from optuna_dashboard import wsgi

    view = _ExperimentView(store, directory)
    dashboard = wsgi(view)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/") == "/logs":
            return _respond(start_response, "200 OK", "text/html", _log_index(view))
        match = _LOG_ROUTE.match(path)
        if match:
            text = view.log(int(match.group(1)), match.group(2))
            if text is None:
                return _respond(start_response, "404 Not Found", "text/plain",
                                "no such log on this machine\n")
            return _respond(start_response, "200 OK", "text/plain", text)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _respond(start_response, "405 Method Not Allowed", "application/json",
                            '{"reason": "this dashboard is read-only"}')
        return dashboard(environ, start_response)

    return app


def _respond(start: Callable[..., Any], status: str, kind: str, body: str) -> list[bytes]:
    data = body.encode("utf-8")
    start(status, [("Content-Type", f"{kind}; charset=utf-8"),
                   ("Content-Length", str(len(data))), ("Cache-Control", "no-store")])
    return [data]


def _log_index(view: _ExperimentView) -> str:
    rows = []
    for t in view.get_all_trials(view.study_id, deepcopy=False):
        links = " ".join(f'<a href="/logs/{t.number}/{kind}">{kind}</a>'
                         for kind in ("stdout", "stderr") if view.log_path(t, kind) is not None)
        state = html.escape(str(t.user_attrs.get("outcome") or t.state.name))
        rows.append(f"<tr><td>{t.number}</td><td>{state}</td><td>{links or '-'}</td></tr>")
    name = html.escape(view.study_name)
    return (f"<!doctype html><meta charset=utf-8><title>{name}: trial logs</title>"
            f"<h1>{name}: trial logs</h1><p><a href=/dashboard>dashboard</a></p>"
            "<table><tr><th>trial</th><th>outcome</th><th>logs</th></tr>"
            + "".join(rows) + "</table>")


def _tail(path: Path, max_bytes: int) -> str:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = f"[... first {size - max_bytes} bytes left out ...]\n" + text.split("\n", 1)[-1]
    return text


class _ExperimentView(optuna.storages.BaseStorage):
    """What the dashboard reads: one study, its trials with each final metric as a user
    attribute and a note with log tails; every write refused."""

    def __init__(self, store: StudyStore, directory: Path | None) -> None:
        self._rdb = store._rdb
        self.study_id = store._study_id
        self.study_name = store.study_name
        self._directory = directory
        # trial id -> ((path, size, mtime) of each log, its note): the page asks every few
        # seconds, and a log is read again only when it has changed
        self._notes: dict[int, tuple[tuple[Any, ...], str | None]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ logs
    def log_path(self, trial: optuna.trial.FrozenTrial, kind: str) -> Path | None:
        name = STDOUT_FILE if kind == "stdout" else STDERR_FILE
        candidates = []
        if trial.user_attrs.get("trial_dir"):
            candidates.append(Path(str(trial.user_attrs["trial_dir"])) / name)
        if self._directory is not None:
            candidates.append(ExperimentPaths(self._directory).trial_dir(trial.number) / name)
        for path in candidates:
            if path.is_file():
                return path
        return None

    def log(self, number: int, kind: str) -> str | None:
        for t in self._rdb.get_all_trials(self.study_id, deepcopy=False):
            if t.number == number:
                path = self.log_path(t, kind)
                return None if path is None else _tail(path, _LOG_BYTES)
        return None

    def _note(self, trial: optuna.trial.FrozenTrial) -> str | None:
        paths = [self.log_path(trial, kind) for kind in ("stdout", "stderr")]
        key = tuple((p, p.stat().st_size, p.stat().st_mtime_ns) if p else None for p in paths)
        with self._lock:
            cached = self._notes.get(trial._trial_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        note = self._read_note(trial)
        with self._lock:
            self._notes[trial._trial_id] = (key, note)
        return note

    def _read_note(self, trial: optuna.trial.FrozenTrial) -> str | None:
        parts = []
        for kind in ("stdout", "stderr"):
            path = self.log_path(trial, kind)
            if path is None:
                continue
            lines = _tail(path, 64 * 1024).splitlines()[-_TAIL_LINES:]
            body = "\n".join(lines).replace("```", "'''") or "(empty)"
            parts.append(f"**{kind}** ([whole log](/logs/{trial.number}/{kind}), last "
                         f"{_TAIL_LINES} lines)\n\n```\n{body}\n```")
        return "\n\n".join(parts) if parts else None

    # ------------------------------------------------------------------ the study
    def get_all_studies(self) -> list[Any]:
        return [self._with_notes(s) for s in self._rdb.get_all_studies()
                if s._study_id == self.study_id]

    def _with_notes(self, study: Any) -> Any:
        study = copy.copy(study)
        study.system_attrs = self.get_study_system_attrs(self.study_id)
        return study

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self.study_name:
            raise KeyError(study_name)
        return self.study_id

    def _check(self, study_id: int) -> None:
        if study_id != self.study_id:
            raise KeyError(f"study id {study_id} is not this experiment's")

    def get_study_name_from_id(self, study_id: int) -> str:
        self._check(study_id)
        return self.study_name

    def get_study_directions(self, study_id: int) -> list[Any]:
        self._check(study_id)
        return self._rdb.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        self._check(study_id)
        return self._rdb.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        """The stored attributes, plus a log note for each trial that has none of its own."""
        from optuna_dashboard._note import note_ver_key, split_body

        self._check(study_id)
        attrs = dict(self._rdb.get_study_system_attrs(study_id))
        # the objective as trials report it: metrics["default"]
        attrs.setdefault("study:metric_names", ["default"])
        trials = self._rdb.get_all_trials(study_id, deepcopy=False)
        attrs.update(self._curves(trials))
        for t in trials:
            if note_ver_key(t._trial_id) in attrs:
                continue
            with contextlib.suppress(OSError):
                note = self._note(t)
                if note is not None:
                    attrs[note_ver_key(t._trial_id)] = 0
                    attrs.update(split_body(note, t._trial_id))
        return attrs

    def _curves(self, trials: list[optuna.trial.FrozenTrial]) -> dict[str, str]:
        """One figure per intermediate metric key besides ``default`` (``val_acc``, ``loss``,
        ...): every trial's reports by step, as optuna-dashboard's custom plots (plotly JSON
        in study system attributes, computed here, never stored)."""
        from optuna_dashboard._custom_plot_data import SYSTEM_ATTR_PLOT_DATA, split_plot_data

        key = tuple((t._trial_id, len(t.user_attrs.get("intermediate") or ())) for t in trials)
        with self._lock:
            if getattr(self, "_curves_key", None) == key:
                return self._curves_attrs
        series: dict[str, list[dict[str, Any]]] = {}
        for t in trials:
            reports = t.user_attrs.get("intermediate") or []
            names = [k for r in reports if isinstance(r, dict) for k in r if k != "default"]
            for name in dict.fromkeys(names):
                steps = [(i, r[name]) for i, r in enumerate(reports, start=1)
                         if isinstance(r, dict) and isinstance(r.get(name), int | float)
                         and not isinstance(r.get(name), bool) and math.isfinite(r[name])]
                series.setdefault(name, []).append({
                    "type": "scatter", "mode": "lines+markers", "name": f"trial {t.number}",
                    "x": [s for s, _ in steps], "y": [v for _, v in steps],
                })
        attrs: dict[str, str] = {}
        for name, data in series.items():
            figure = {"data": data, "layout": {
                "title": {"text": f"intermediate {name}"},
                "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": name}},
            }}
            ident = "intermediate-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
            attrs.update(split_plot_data(json.dumps(figure, default=str),
                                         f"{SYSTEM_ATTR_PLOT_DATA}{ident}:"))
        with self._lock:
            self._curves_key, self._curves_attrs = key, attrs
        return attrs

    # ------------------------------------------------------------------ trials
    @staticmethod
    def _shown(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        metrics = trial.user_attrs.get("metrics")
        if not isinstance(metrics, dict):
            return trial
        shown = copy.copy(trial)
        extra = {f"metric.{k}": v for k, v in metrics.items()
                 if isinstance(v, int | float | str | bool)}
        shown._user_attrs = {**extra, **trial.user_attrs}
        return shown

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        trial = self._rdb.get_trial(trial_id)
        if self._rdb.get_study_id_from_trial_id(trial_id) != self.study_id:
            raise KeyError(f"trial id {trial_id} is not this experiment's")
        return self._shown(trial)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Any = None,
    ) -> list[optuna.trial.FrozenTrial]:
        self._check(study_id)
        trials = self._rdb.get_all_trials(study_id, deepcopy=False, states=states)
        return [self._shown(t) for t in trials]

    # ------------------------------------------------------------------ writes: refused
    def _read_only(self, *_args: Any, **_kwargs: Any) -> Any:
        raise StorageError("the dashboard is read-only: spiketune's scheduler alone writes "
                           "the study")

    create_new_study = _read_only
    delete_study = _read_only
    set_study_user_attr = _read_only
    set_study_system_attr = _read_only
    create_new_trial = _read_only
    set_trial_param = _read_only
    set_trial_state_values = _read_only
    set_trial_intermediate_value = _read_only
    set_trial_user_attr = _read_only
    set_trial_system_attr = _read_only

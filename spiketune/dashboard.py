"""A live dashboard of one experiment, running or finished: optuna-dashboard on its study, plus
its trials' logs.

:func:`serve` starts the web server in a background thread and returns a :class:`Dashboard`
(its ``url``; ``close()`` ends it); ``spiketune view EXP`` does the same and waits for Ctrl-C.
The server listens on 127.0.0.1 unless told otherwise, on a free port, and shows only this
experiment's study, read-only: the study is opened read-only, and no study can be deleted or
trial changed from the page.

It answers only requests addressed to it by a loopback name (``localhost``, ``127.0.0.1``,
``[::1]``, with its port): a web page elsewhere that points a name of its own at 127.0.0.1
(DNS rebinding) gets ``421 Misdirected Request``, not the experiment. Bound to another address
on purpose (``--host``), it also answers to that address, and bound to every address
(``0.0.0.0``, ``::``) to this machine's names and addresses; ``allowed_hosts`` adds names (a
reverse proxy's, for instance).

What the page shows, per trial: state, parameters, the objective and its intermediate curve,
every final metric key as its own column (user attributes ``metric.<key>``, sortable), the
raw spiketune attributes, and a note holding the last lines of the trial's ``stdout.log`` and
``stderr.log`` with links to the whole files. Study-wide: history, parallel coordinates,
importance, slices, and one figure per intermediate metric key. In a constrained experiment
the best trials are spiketune's, the feasible ones, and infeasible trials are greyed out in
the figures. Notes and figures are made with optuna-dashboard's public ``save_note`` and
``save_plotly_graph_object`` into this process's memory, never into the study. Routes served
beside optuna-dashboard's own:

* ``/logs/`` – every trial of this machine's experiment directory, with links to its logs;
* ``/logs/<number>/stdout`` and ``/logs/<number>/stderr`` – the log as text (its last MiB).

Logs live in the trial directories of the machine that ran each trial: a dashboard shows those
found in its own experiment directory.
"""

from __future__ import annotations

import copy
import html
import ipaddress
import json
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import psutil
from optuna.trial import FrozenTrial

from spiketune._values import is_finite
from spiketune.engine.runners import STDERR_FILE, STDOUT_FILE
from spiketune.engine.storage import (
    ATTR_CONFIG,
    ExperimentPaths,
    StudyStore,
    experiment_location,
)
from spiketune.errors import StorageError

__all__ = ["Dashboard", "serve"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")
_TAIL_LINES = 30  # lines of each log in a trial's note
_LOG_BYTES = 1 << 20  # the most of a log file one request returns (its end)
_LOG_ROUTE = re.compile(r"^/logs/(\d+)/(stdout|stderr)$")
_STUDY_ROUTE = re.compile(r"^/api/studies/\d+$")  # optuna-dashboard's study detail
_NO_LOGS = (None, None)  # the log key of a trial with neither log on this machine

_App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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
    allowed_hosts: Iterable[str] = (),
) -> Dashboard:
    """Serve the dashboard of ``experiment`` (a directory, id, name or id prefix; with
    ``storage`` also an experiment known only to that database) on ``host``:``port`` (0: a
    free port). ``allowed_hosts``: more names the requests may be addressed to, besides the
    loopback names and ``host`` (see the module docstring).

    Returns once the server listens; read the address from ``Dashboard.url``.
    """
    directory, experiment_id, url = experiment_location(experiment, storage)
    store = StudyStore.open(url, experiment_id, read_only=True)
    try:
        hosts = _HostCheck(host, allowed_hosts)
        app = hosts.wrap(_application(store, directory))
        server = make_server(host, port, app, handler_class=_QuietHandler)
        hosts.port = int(server.server_address[1])
    except OSError as e:
        store.close()
        raise StorageError(f"cannot serve the dashboard on {host}:{port}: {e.strerror or e}") \
            from None
    except BaseException:
        store.close()
        raise
    return Dashboard(server, experiment_id, store)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr (the page polls every few seconds)."""


# ------------------------------------------------------------------------------ Host header
def _host_name(value: str) -> str:
    """A host name or address as compared: lower case, no trailing dot, IPv6 unbracketed."""
    return value.strip().strip("[]").rstrip(".").lower()


def _split_host(header: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (name, port or None); None when it is not a host[:port]."""
    header = header.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?", header) \
        or re.fullmatch(r"([^:\[\]/@\s]+)(?::(\d{1,5}))?", header)
    if match is None:
        return None
    return _host_name(match.group(1)), int(match.group(2)) if match.group(2) else None


def _machine_names() -> set[str]:
    """This machine's names and the addresses of its network interfaces."""
    names = {socket.gethostname(), socket.getfqdn()}
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                names.add(a.address.split("%", 1)[0])  # an IPv6 zone (%eth0) is not sent
    return {_host_name(n) for n in names if n}


class _HostCheck:
    """Which ``Host`` headers the server answers (see the module docstring).

    ``port`` is the port the server listens on, set once it is bound: a Host header that
    names another port is refused, except for the ``allowed`` names (a proxy may use its own).
    """

    def __init__(self, bound: str, allowed: Iterable[str]) -> None:
        self.port: int | None = None
        self._local = {_host_name(h) for h in LOCAL_HOSTS}
        self._extra = {_host_name(h) for h in allowed}
        if _host_name(bound) in _WILDCARDS:
            self._local |= _machine_names()
        else:
            self._local.add(_host_name(bound))

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        parsed = _split_host(header)
        if parsed is None:
            return False
        name, port = parsed
        if name in self._extra:
            return True
        with_port = port is None or port == self.port
        return name in self._local and with_port and _plausible(name)

    def wrap(self, app: _App) -> _App:
        def checked(environ: dict[str, Any], start_response: Callable[..., Any]) \
                -> Iterable[bytes]:
            if self.allows(environ.get("HTTP_HOST")):
                return app(environ, start_response)
            names = ", ".join(sorted(f"[{n}]" if ":" in n else n for n in self._local))
            return _respond(start_response, "421 Misdirected Request", "text/plain",
                            f"this dashboard answers only to {names} (port {self.port}): "
                            "the Host header names another server\n")

        return checked


def _plausible(name: str) -> bool:
    """Not an address that cannot be this machine's (a guard against odd spellings)."""
    try:
        return not ipaddress.ip_address(name).is_multicast
    except ValueError:
        return True


# ------------------------------------------------------------------------------ application
def _application(store: StudyStore, directory: Path | None) -> _App:
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
        # optuna-dashboard reads this header unguarded (a 500 for its script bundle when a
        # client such as curl or a proxy sends none); none means: no encoding.
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        if _STUDY_ROUTE.match(path):
            view.refresh()
            return _with_feasible_best(view, dashboard, environ, start_response)
        return dashboard(environ, start_response)

    return app


def _with_feasible_best(view: _ExperimentView, dashboard: _App, environ: dict[str, Any],
                        start_response: Callable[..., Any]) -> Iterable[bytes]:
    """optuna-dashboard's study detail with the best trials of a constrained experiment
    replaced by spiketune's (:meth:`_ExperimentView.best_numbers`).

    Why: optuna-dashboard picks its best trial, and its Pareto front, among every complete
    trial, feasible or not (its page only greys infeasible ones out in the figures), so it
    would show as best a trial that broke a constraint. The trials are taken from the answer
    as optuna-dashboard serialised them; a best trial that the answer does not hold (a poll
    for the trials after a number, ``?after=N``) is read from a second answer, for the
    trials from the first one missing on (trial numbers are list positions). With one
    objective there is none: optuna-dashboard asks the view for the best trial
    (:meth:`_ExperimentView.get_best_trial`), which gives spiketune's."""
    pristine = dict(environ)  # the framework caches what it parsed in the environ it reads
    status, headers, body = _call(dashboard, environ)
    numbers = view.best_numbers() if status.startswith("200") else None
    if numbers is not None:
        detail = json.loads(body)
        serialised = {t["number"]: t for t in detail["trials"] + detail["best_trials"]}
        missing = [n for n in numbers if n not in serialised]
        if missing:
            query = f"after={min(missing)}"
            _, _, more = _call(dashboard, {**pristine, "QUERY_STRING": query})
            serialised.update((t["number"], t) for t in json.loads(more)["trials"])
        detail["best_trials"] = [serialised[n] for n in numbers if n in serialised]
        body = json.dumps(detail).encode("utf-8")
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def _call(app: _App, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a WSGI ``app``'s answer to ``environ``."""
    got: dict[str, Any] = {}
    written: list[bytes] = []

    def start(status: str, headers: list[tuple[str, str]], _exc_info: Any = None) \
            -> Callable[[bytes], Any]:
        got["status"], got["headers"] = status, list(headers)
        return written.append

    chunks = app(environ, start)
    try:
        written.extend(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return got["status"], got["headers"], b"".join(written)


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


def _trials_ttl(count: int) -> float:
    """Seconds a read of ``count`` trials serves every request (:class:`_ExperimentView`):
    optuna-dashboard's own rule for its copy of the trials."""
    return 2.0 if count < 100 else 5.0 if count < 500 else 10.0


def _curve_figures(trials: list[FrozenTrial]) -> dict[str, dict[str, Any]]:
    """One plotly figure per intermediate metric key besides ``default`` (``val_acc``,
    ``loss``, ...): every trial's reports by step."""
    series: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        reports = t.user_attrs.get("intermediate") or []
        names = [k for r in reports if isinstance(r, dict) for k in r if k != "default"]
        for name in dict.fromkeys(names):
            steps = [(i, r[name]) for i, r in enumerate(reports, start=1)
                     if isinstance(r, dict) and is_finite(r.get(name))]
            series.setdefault(name, []).append({
                "type": "scatter", "mode": "lines+markers", "name": f"trial {t.number}",
                "x": [s for s, _ in steps], "y": [v for _, v in steps],
            })
    figures: dict[str, dict[str, Any]] = {}
    for name, data in series.items():
        # a readable id, made unique: "a,b" and "a;b" are both "a_b", and one would be lost
        slug = "intermediate-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        key, n = slug, 1
        while key in figures:
            n += 1
            key = f"{slug}-{n}"
        figures[key] = {"data": data, "layout": {
            "title": {"text": f"intermediate {name}"},
            "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": name}},
        }}
    return figures


class _ExperimentView(optuna.storages.BaseStorage):
    """What the dashboard reads: one study, its trials with each final metric as a user
    attribute, a log note per trial and a figure per intermediate metric; every write from
    the page refused.

    Notes, figures and objective names are written by optuna-dashboard's and Optuna's public
    functions (``save_note``, ``save_plotly_graph_object``, ``Study.set_metric_names``) on a
    study whose storage is this view: their study system attributes land in memory
    (``_made``), one entry per thing made, replaced whole when it is made again, and are
    shown over the stored attributes. :meth:`refresh` makes them, before each study detail
    the page asks for (the study list shows none of them).

    The trials are read once for every use within :func:`_trials_ttl` seconds (:meth:`_read`):
    the refresh, optuna-dashboard's trial list and best trial, and spiketune's best trials
    share that one read. Why: reading every trial of a big study takes seconds (about 1.3 s
    for 3,000 SQLite trials), and the page polls every few seconds; optuna-dashboard keeps
    its own copy of the trials as long.
    """

    def __init__(self, store: StudyStore, directory: Path | None) -> None:
        self._store = store
        self._rdb = store.storage
        self.study_id = store.study_id
        self.study_name = store.study_name
        self._directory = directory
        self._lock = threading.RLock()
        # what each thing made wrote: "names", "curves", or a trial number -> its attributes
        self._made: dict[str | int, dict[str, Any]] = {}
        self._made_all: dict[str, Any] | None = None  # _made merged; None: to merge again
        # (key it was made from) of each thing made: remade only when its key changes
        self._keys: dict[str | int, Any] = {}
        self._capture: dict[str, Any] | None = None  # while making one thing: what it writes
        self._stored: dict[str, Any] = {}  # the stored attributes, read once per refresh
        self._study: optuna.Study | None = None
        self._read_at = -float("inf")  # time.monotonic() of the last read of the trials
        self._trials: list[FrozenTrial] = []  # as stored, by number
        self._shown_trials: list[FrozenTrial] = []  # as shown (:meth:`_shown`)
        self._by_id: dict[int, FrozenTrial] = {}  # shown trials by storage id
        self._by_number: dict[int, FrozenTrial] = {}  # shown trials by number
        self._refreshed: list[FrozenTrial] | None = None  # the read the last refresh made from
        self._best: tuple[list[FrozenTrial], list[int] | None] | None = None  # (read, numbers)

    def _read(self) -> list[FrozenTrial]:
        """Every trial as stored, read again when the last read is :func:`_trials_ttl` old."""
        with self._lock:
            if time.monotonic() - self._read_at >= _trials_ttl(len(self._trials)):
                trials = self._rdb.get_all_trials(self.study_id, deepcopy=False)
                self._read_at = time.monotonic()
                self._trials = trials
                self._shown_trials = [self._shown(t) for t in trials]
                self._by_id = {self._store.trial_id(t): t for t in self._shown_trials}
                self._by_number = {t.number: t for t in self._shown_trials}
            return self._trials

    # ------------------------------------------------------------------ logs
    def log_path(self, trial: FrozenTrial, kind: str) -> Path | None:
        name = STDOUT_FILE if kind == "stdout" else STDERR_FILE
        candidates = []
        if trial.user_attrs.get("trial_dir"):
            candidates.append(Path(str(trial.user_attrs["trial_dir"])) / name)
        if self._directory is not None:
            candidates.append(ExperimentPaths(self._directory).trial_dir(trial.number) / name)
        for path in dict.fromkeys(candidates):  # usually one place: looked at once
            if path.is_file():
                return path
        return None

    def log(self, number: int, kind: str) -> str | None:
        """The end of trial ``number``'s log, read now (a trial newer than the last read of
        the trials too); None when there is no such trial or log."""
        try:
            trial_id = self._rdb.get_trial_id_from_study_id_trial_number(self.study_id, number)
            trial = self._rdb.get_trial(trial_id)
        except KeyError:
            return None
        path = self.log_path(trial, kind)
        return None if path is None else _tail(path, _LOG_BYTES)

    def _log_key(self, trial: FrozenTrial) -> tuple[Any, ...]:
        paths = [self.log_path(trial, kind) for kind in ("stdout", "stderr")]
        return tuple((p, p.stat().st_size, p.stat().st_mtime_ns) if p else None for p in paths)

    def _read_note(self, trial: FrozenTrial) -> str | None:
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

    # ------------------------------------------------------------------ made in memory
    def _view_study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.load_study(study_name=self.study_name, storage=self,
                                            sampler=optuna.samplers.RandomSampler())
        return self._study

    def _stored_only(self, read: Callable[[], Any]) -> Any:
        """``read()`` seeing the stored attributes alone (none of this view's making)."""
        self._capture = {}
        try:
            return read()
        finally:
            self._capture = None

    def _make(self, what: str | int, key: Any, write: Callable[[], None]) -> None:
        """Run ``write`` (public optuna-dashboard / Optuna calls on the view's study) unless
        ``key`` is what ``what`` was last made from; keep what it wrote as ``what``'s."""
        if what in self._keys and self._keys[what] == key:
            return
        self._capture = {}
        try:
            write()
            self._made[what] = self._capture
            self._made_all = None
        finally:
            self._capture = None
        self._keys[what] = key

    def refresh(self) -> None:
        """Make again what changed since the trials were last read: objective names, curves,
        the note of each trial whose logs changed (a trial with a note of its own, stored,
        keeps it). Nothing when the trials were read less than :func:`_trials_ttl` ago."""
        from optuna_dashboard import get_note, save_note, save_plotly_graph_object
        from plotly.graph_objects import Figure

        with self._lock:
            trials = self._read()
            if trials is self._refreshed:
                return
            self._stored = dict(self._rdb.get_study_system_attrs(self.study_id))
            study = self._view_study()
            names = self._objective_names()
            with warnings.catch_warnings():  # naming objectives is experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if names is not None and self._stored_only(lambda: study.metric_names) is None:
                    self._make("names", names, lambda: study.set_metric_names(names))
            curves_key = tuple((t.number, len(t.user_attrs.get("intermediate") or ()))
                               for t in trials)

            def curves() -> None:
                for ident, figure in _curve_figures(trials).items():
                    save_plotly_graph_object(study, Figure(figure), graph_object_id=ident)

            self._make("curves", curves_key, curves)
            for t in trials:
                try:
                    key = self._log_key(t)
                except OSError:
                    continue
                if self._keys.get(t.number) == key:
                    continue
                if key == _NO_LOGS:  # nothing to write: no trial handle, no note
                    if self._made.pop(t.number, None):
                        self._made_all = None
                    self._keys[t.number] = key
                    continue
                handle = optuna.trial.Trial(study, self._store.trial_id(t))
                own = self._stored_only(lambda handle=handle: get_note(handle))
                note = None if own else self._read_note(t)

                def write(handle: optuna.trial.Trial = handle, note: str | None = note) \
                        -> None:
                    if note is not None:
                        save_note(handle, note)

                self._make(t.number, key, write)
            self._refreshed = trials

    def _objective_names(self) -> list[str] | None:
        """``default``, or the keys of the configured objectives (one per direction)."""
        config = self._rdb.get_study_user_attrs(self.study_id).get(ATTR_CONFIG) or {}
        objectives = config.get("objectives") if isinstance(config, dict) else None
        names = [str(o.get("key")) for o in objectives if isinstance(o, dict)] \
            if isinstance(objectives, list) and objectives else ["default"]
        count = len(self._rdb.get_study_directions(self.study_id))
        return names if len(names) == count else None

    # ------------------------------------------------------------------ the study
    def get_all_studies(self) -> list[Any]:
        out = []
        for s in self._rdb.get_all_studies():
            if s.study_name == self.study_name:
                s = copy.copy(s)
                s.system_attrs = self.get_study_system_attrs(self.study_id)
                out.append(s)
        return out

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
        """The stored attributes, with what this view made in memory (by the last
        :meth:`refresh`) over them."""
        self._check(study_id)
        with self._lock:
            if self._capture is not None:  # inside _make: the stored ones and this thing's
                return {**self._stored, **self._capture}
            stored = self._rdb.get_study_system_attrs(study_id)
            if self._made_all is None:
                self._made_all = {}
                for attrs in self._made.values():
                    self._made_all.update(attrs)
            return {**stored, **self._made_all}

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        """Only this view's own making writes here (the page's writes are refused before
        they reach it); into memory."""
        self._check(study_id)
        if self._capture is None:
            self._read_only()
        self._capture[key] = value

    # ------------------------------------------------------------------ trials
    @staticmethod
    def _shown(trial: FrozenTrial) -> FrozenTrial:
        """The trial with each final metric as a user attribute ``metric.<key>`` and, in a
        constrained experiment, its constraint values as the system attribute
        ``constraints`` (a list): the form optuna-dashboard's page reads to grey out
        infeasible trials (Optuna's ``Trial.set_constraint`` stores them by name, which the
        page does not read; a study recorded before spiketune stored them has the user
        attribute alone)."""
        metrics = trial.user_attrs.get("metrics")
        constraints = trial.user_attrs.get("constraints")
        if not isinstance(metrics, dict) and not isinstance(constraints, list):
            return trial
        shown = copy.copy(trial)
        if isinstance(metrics, dict):
            extra = {f"metric.{k}": v for k, v in metrics.items()
                     if isinstance(v, int | float | str | bool)}
            shown.user_attrs = {**extra, **trial.user_attrs}
        if isinstance(constraints, list):
            shown.system_attrs = {**trial.system_attrs, "constraints": constraints}
        return shown

    def best_numbers(self) -> list[int] | None:
        """The numbers of the experiment's best trials as spiketune counts them (the best
        feasible trial; with several objectives the Pareto front of the feasible ones), in a
        constrained experiment; None in an unconstrained one, where optuna-dashboard's own
        choice is the same. Of the last read of the trials: worked out once per read, and
        only when a trial carries constraint values (an unconstrained experiment's trials
        never do), so that an unconstrained experiment builds no results at all."""
        from spiketune.engine.results import results_from_store

        with self._lock:
            trials = self._read()
            if self._best is not None and self._best[0] is trials:
                return self._best[1]
            numbers = None
            if any(t.user_attrs.get("constraints") is not None for t in trials):
                results = results_from_store(self._store, self._directory, trials=trials)
                numbers = [r.number for r in results.best_trials]
            self._best = (trials, numbers)
            return numbers

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        """Spiketune's best trial in a constrained experiment with one objective (the best
        feasible one: what the page then shows as best, with no second answer to serialise
        in :func:`_with_feasible_best`); else Optuna's choice among the complete trials."""
        self._check(study_id)
        with self._lock:
            numbers = self.best_numbers()
            if numbers and len(self.get_study_directions(study_id)) == 1:
                return self._by_number[numbers[0]]
        return super().get_best_trial(study_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            self._read()
            found = self._by_id.get(trial_id)
        if found is not None:
            return found
        trial = self._rdb.get_trial(trial_id)
        if self._rdb.get_trial_id_from_study_id_trial_number(self.study_id, trial.number) \
                != trial_id:
            raise KeyError(f"trial id {trial_id} is not this experiment's")
        return self._shown(trial)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Any = None,
    ) -> list[FrozenTrial]:
        self._check(study_id)
        with self._lock:
            self._read()
            trials = self._shown_trials
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    # ------------------------------------------------------------------ writes: refused
    def _read_only(self, *_args: Any, **_kwargs: Any) -> Any:
        raise StorageError("the dashboard is read-only: spiketune's scheduler alone writes "
                           "the study")

    create_new_study = _read_only
    delete_study = _read_only
    set_study_user_attr = _read_only
    create_new_trial = _read_only
    set_trial_param = _read_only
    set_trial_state_values = _read_only
    set_trial_intermediate_value = _read_only
    set_trial_user_attr = _read_only
    set_trial_system_attr = _read_only

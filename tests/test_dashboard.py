"""The live dashboard (`spiketune view`): one experiment, read-only, metrics and logs; and a
browser opening it and the HTML report."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from spiketune import Experiment
from spiketune.dashboard import serve
from spiketune.engine.storage import StudyStore, sqlite_url

TRIAL = """
    import sys
    import spiketune.trial as st
    p = st.get_next_parameter()
    print("training with", p)
    print("a warning", file=sys.stderr)
    st.report_intermediate_result({"default": p["x"] / 2, "val_acc": p["x"] / 3})
    st.report_final_result({"default": p["x"], "train_acc": 0.9, "val_acc": 0.8,
                            "test_acc": 0.7})
"""
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def _finished(exp_root: Path, code: Path, **fields) -> Experiment:
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space=SPACE, max_trials=4, experiment_dir=exp_root, seed=1,
                     tuner="Random", name="watched", **fields)
    exp.run()
    return exp


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_dashboard_shows_one_experiment_read_only(exp_root: Path, trial_script) -> None:
    code = trial_script(TRIAL)
    other = _finished(exp_root, code)  # a second study in another file is not shown anyway
    exp = _finished(exp_root, code)
    best = exp.results().best
    with serve(exp.id) as dash:
        assert dash.url.startswith("http://127.0.0.1:") and dash.url.endswith("/dashboard")
        api = dash.url.replace("/dashboard", "/api")
        studies = json.loads(_get(f"{api}/studies"))["study_summaries"]
        assert [s["study_name"] for s in studies] == [exp.id] != [other.id]
        detail = json.loads(_get(f"{api}/studies/{studies[0]['study_id']}"))
        assert len(detail["trials"]) == 4
        assert detail["best_trials"][0]["number"] == best.number
        trial = next(t for t in detail["trials"] if t["number"] == best.number)
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        for key in ("train_acc", "val_acc", "test_acc"):  # every metric key, as a column
            assert float(attrs[f"metric.{key}"]) == best.metrics[key]
        assert trial["intermediate_values"][0]["value"] == pytest.approx(best.value / 2)
        curves = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
        val = curves["intermediate-val_acc"]["data"]  # every intermediate key has its curves
        assert sorted(d["name"] for d in val) == [f"trial {n}" for n in range(4)]
        shown = next(d for d in val if d["name"] == f"trial {best.number}")
        assert shown["y"] == [pytest.approx(best.parameters["x"] / 3)]
        note = trial["note"]["body"]
        assert "training with" in note and "a warning" in note
        assert f"/logs/{best.number}/stdout" in note
        log = _get(dash.logs_url + f"{best.number}/stdout").decode()
        assert log.startswith("training with") and str(best.parameters["x"]) in log
        assert b"/logs/3/stderr" in _get(dash.logs_url)
        # A client that sends no Accept-Encoding (curl, a proxy) gets the page's script too.
        host = urllib.parse.urlsplit(dash.url)
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.putrequest("GET", "/static/bundle.js", skip_accept_encoding=True)
        conn.endheaders()
        bundle = conn.getresponse()
        assert bundle.status == 200 and len(bundle.read()) > 1000
        conn.close()
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(dash.logs_url + "99/stdout")
        assert missing.value.code == 404
        for method in ("DELETE", "POST", "PUT"):
            request = urllib.request.Request(f"{api}/studies/{studies[0]['study_id']}",
                                             method=method, data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 405
    assert len(exp.results().records) == 4  # nothing was changed


def test_view_command_prints_its_address_and_warns_when_open(exp_root: Path,
                                                             trial_script) -> None:
    exp = _finished(exp_root, trial_script(TRIAL))
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "spiketune.cli", "view", exp.id, "--host", host],
            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = proc.stdout.readline()
            assert line.startswith(f"dashboard of {exp.id}: http://{host}:"), line
            url = line.split(": ", 1)[1].strip()
            page = _get(url.replace(host, "127.0.0.1")).decode()
            assert "<html" in page.lower()
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
        assert ("warning: listening on 0.0.0.0" in err) == warned


@pytest.mark.parametrize("objectives", [None, [{"key": "default", "direction": "maximize"},
                                                {"key": "cost", "direction": "minimize"}]])
def test_best_trials_of_a_constrained_experiment_are_feasible(exp_root: Path,
                                                              objectives: Any) -> None:
    """optuna-dashboard would pick its best trial (its Pareto front) among every complete
    trial: the page shows spiketune's, the feasible ones, and greys infeasible ones out."""
    space = {"x": {"_type": "choice", "_value": [0.2, 0.9, 0.4, 0.7]}}
    exp = Experiment(trial=_constrained, search_space=space, tuner="GridSearch",
                     constraints=True, objectives=objectives, experiment_dir=exp_root,
                     name="feasible")
    results = exp.run()
    wanted = [r.number for r in results.best_trials]
    assert wanted and all(r.feasible for r in results.best_trials)
    x = {r.number: r.parameters["x"] for r in results.records}
    with serve(exp.id) as dash:
        api = dash.url.replace("/dashboard", "/api")
        study_id = json.loads(_get(f"{api}/studies"))["study_summaries"][0]["study_id"]
        detail = json.loads(_get(f"{api}/studies/{study_id}"))
        assert [t["number"] for t in detail["best_trials"]] == wanted
        shown = {t["number"]: t["constraints"] for t in detail["trials"]}
        assert all((shown[n][0] > 0) == (x[n] > 0.5) for n in shown)  # greyed out
        # a poll for the newer trials alone still names the best ones
        later = json.loads(_get(f"{api}/studies/{study_id}?after=3"))
        assert [t["number"] for t in later["trials"]] == [3]
        assert [t["number"] for t in later["best_trials"]] == wanted


def _constrained(p: dict) -> dict:
    return {"default": p["x"], "cost": p["x"] ** 2, "constraints": p["x"] - 0.5}


def _wsgi_get(app: Any, path: str, query: str = "") -> tuple[str, bytes]:
    """``app``'s answer (status, body) to a GET of ``path``, in this process."""
    import io

    from spiketune.dashboard import _call

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
               "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"}
    status, _headers, body = _call(app, environ)
    return status, body


def test_one_read_of_the_trials_serves_the_page_until_it_is_old(
        exp_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading every trial of a big study takes seconds, and the page polls every few: the
    study list reads no trial, one read serves the study detail and its polls until it is
    as old as optuna-dashboard keeps its own copy, a trial without logs costs no read of its
    own, an unconstrained experiment builds no results for its best trials, and a log is
    found by its trial's number (also a trial newer than the read)."""
    import optuna

    import spiketune.dashboard as dashboard
    import spiketune.engine.results as results_module

    exp = Experiment(trial=_in_process, search_space=SPACE, max_trials=3, name="reads",
                     experiment_dir=exp_root, tuner="Random", seed=0)
    best = exp.run().best
    url = sqlite_url(exp.directory / "study.db")
    store = StudyStore.open(url, exp.id, read_only=True)
    reads = {"all": 0, "one": 0}
    rdb = store.storage
    read_all, read_one = rdb.get_all_trials, rdb.get_trial

    def counted_all(*args: Any, **kwargs: Any) -> Any:
        reads["all"] += 1
        return read_all(*args, **kwargs)

    def counted_one(*args: Any, **kwargs: Any) -> Any:
        reads["one"] += 1
        return read_one(*args, **kwargs)

    def no_results(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("an unconstrained experiment builds no results")

    monkeypatch.setattr(rdb, "get_all_trials", counted_all)
    monkeypatch.setattr(rdb, "get_trial", counted_one)
    monkeypatch.setattr(results_module, "results_from_store", no_results)
    ttl = [3600.0]
    monkeypatch.setattr(dashboard, "_trials_ttl", lambda _count: ttl[0])
    try:
        app = dashboard._application(store, exp.directory)
        status, body = _wsgi_get(app, "/api/studies")
        assert status.startswith("200") and reads == {"all": 0, "one": 0}
        study_id = json.loads(body)["study_summaries"][0]["study_id"]
        detail = json.loads(_wsgi_get(app, f"/api/studies/{study_id}")[1])
        assert [t["number"] for t in detail["trials"]] == [0, 1, 2]
        assert [t["number"] for t in detail["best_trials"]] == [best.number]
        for _ in range(3):  # polls
            later = json.loads(_wsgi_get(app, f"/api/studies/{study_id}", "after=2")[1])
            assert [t["number"] for t in later["trials"]] == [2]
        assert reads == {"all": 1, "one": 0}
        # a trial recorded after the read: its log is found at once, the list shows it
        # once the read is old
        study = optuna.load_study(study_name=exp.id, storage=url)
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5, "y": 0.5}, value=0.5,
            distributions={k: optuna.distributions.FloatDistribution(0, 1) for k in "xy"}))
        log = exp.directory / "trials" / "3" / "stdout.log"
        log.parent.mkdir(parents=True)
        log.write_text("late words\n", encoding="utf-8")
        assert _wsgi_get(app, "/logs/3/stdout") == ("200 OK", b"late words\n")
        assert _wsgi_get(app, "/logs/9/stdout")[0].startswith("404")
        assert reads["all"] == 1 and b"/logs/3/stdout" not in _wsgi_get(app, "/logs/")[1]
        ttl[0] = 0.0
        assert b"/logs/3/stdout" in _wsgi_get(app, "/logs/")[1]
        assert reads["all"] == 2
    finally:
        store.close()


# ------------------------------------------------------------------------------ browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """The system Chromium, installed with apt-get when missing (root only); skip otherwise,
    except in CI."""
    if not Path(CHROMIUM).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"no {CHROMIUM} (apt-get install chromium chromium-driver)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Playwright is not installed (pip install playwright)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.mark.slow
def test_browser_sees_trials_and_best_value(exp_root: Path, trial_script, tmp_path: Path,
                                            postgres_url: str) -> None:
    """Headless Chromium opens the live dashboard of a finished PostgreSQL-backed experiment
    and its HTML report; screenshots are kept as artifacts under the test's tmp_path."""
    from playwright.sync_api import sync_playwright

    from spiketune.report import build_report

    executable = _chromium()
    exp = _finished(exp_root, trial_script(TRIAL), storage=postgres_url)
    results = exp.results()
    best = results.best
    report = build_report(exp.directory, storage=postgres_url)
    index = exp.directory / "report" / "index.html"
    assert Path(getattr(report, "index", index)).is_file()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with serve(exp.id, storage=postgres_url) as dash, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(dash.url)
        page.get_by_text(exp.id).first.click()  # the study list, then the study
        page.get_by_text(f"Best Trial (number={best.number})").wait_for(timeout=30_000)
        page.get_by_text(repr(best.value)).first.wait_for(timeout=30_000)
        page.screenshot(path=shots / "dashboard.png", full_page=True)
        page.goto(dash.url + "/studies/1/trials")
        for r in results.records:
            page.get_by_text(f"Trial {r.number}", exact=True).first.wait_for(timeout=30_000)
        page.get_by_text("metric.test_acc").first.wait_for(timeout=30_000)
        page.get_by_text("training with").first.wait_for(timeout=30_000)  # the log note
        page.screenshot(path=shots / "trials.png", full_page=True)
        page.goto(index.as_uri())
        body = page.inner_text("body")
        assert f"Best trial\ntrial\t{best.number}\n" in body
        assert f"(objective, default)\t{best.value:.4g}\n" in body
        for r in results.records:  # every trial's row: number, outcome, value
            assert f"\n{r.number}\tCOMPLETE\t{r.value:.4g}\t" in body
        page.screenshot(path=shots / "report.png", full_page=True)
        browser.close()
    print(f"screenshots: {shots}")
    assert all((shots / f"{n}.png").stat().st_size > 10_000
               for n in ("dashboard", "trials", "report"))


# ------------------------------------------------------------------------------ Host header
def _in_process(params: dict) -> float:
    import spiketune.trial as st

    print("training with", params)
    st.report_intermediate_result({"default": params["x"] / 2, "val_acc": params["x"] / 3})
    return params["x"]


def _ask(port: int, host: str | None, path: str = "/api/studies") -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port`` with the Host header ``host`` (None: none)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_only_loopback_host_headers_are_answered(exp_root: Path) -> None:
    """A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) must not read
    the experiment: only loopback names, with the dashboard's port, are answered."""
    exp = Experiment(trial=_in_process, search_space=SPACE, max_trials=2, name="hosts",
                     experiment_dir=exp_root, tuner="Random", seed=0)
    exp.run()
    study_db = exp.directory / "study.db"
    before = hashlib.sha256(study_db.read_bytes()).hexdigest()
    with serve(exp.id) as dash:
        port = int(dash.url.split(":")[2].split("/")[0])
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                     f"LocalHost:{port}", "localhost", "127.0.0.1", "[::1]"):
            for path in ("/api/studies", "/logs/", "/dashboard"):
                status, _ = _ask(port, host, path)
                assert status == 200, (host, path)
        for host in ("evil.example", f"evil.example:{port}", f"localhost:{port + 1}",
                     f"127.0.0.1.evil.example:{port}", f"localhost.evil.example:{port}",
                     f"user@localhost:{port}", "", None):
            for path in ("/api/studies", "/logs/", "/logs/0/stdout"):
                status, body = _ask(port, host, path)
                assert status == 421, (host, path)
                assert b"answers only to" in body and b"hosts-" not in body
    # bound to every address on purpose: also this machine's own name
    with serve(exp.id, host="0.0.0.0") as dash:
        port = int(dash.url.split(":")[2].split("/")[0])
        assert _ask(port, f"{socket.gethostname()}:{port}")[0] == 200
        assert _ask(port, f"127.0.0.1:{port}")[0] == 200
        assert _ask(port, f"evil.example:{port}")[0] == 421
    # a name given on purpose (a reverse proxy's), on any port
    with serve(exp.id, allowed_hosts=["hpo.example"]) as dash:
        port = int(dash.url.split(":")[2].split("/")[0])
        assert _ask(port, "hpo.example")[0] == 200 and _ask(port, "hpo.example:443")[0] == 200
        assert _ask(port, f"evil.example:{port}")[0] == 421
    # read-only throughout: the study file is as it was, and nothing was stored in it
    assert hashlib.sha256(study_db.read_bytes()).hexdigest() == before
    store = StudyStore.open(sqlite_url(study_db), exp.id, read_only=True)
    stored = store.storage.get_study_system_attrs(store.study_id)
    store.close()
    assert not [k for k in stored if k.startswith("dashboard:")]


def test_every_intermediate_key_keeps_a_figure_of_its_own() -> None:
    """Keys that differ only in characters an id cannot hold ("a,b", "a;b"; "é", "ü") each
    get their figure; the first keeps the readable id."""
    import optuna

    from spiketune.dashboard import _curve_figures

    reports = [{"default": 0.1, "a,b": 1.0, "a;b": 2.0, "é": 3.0, "ü": 4.0, "val_acc": 0.5}]
    trial = optuna.trial.create_trial(value=0.1, user_attrs={"intermediate": reports})
    figures = _curve_figures([trial])
    titles = sorted(f["layout"]["title"]["text"] for f in figures.values())
    assert titles == sorted(f"intermediate {k}" for k in reports[0] if k != "default")
    assert {"intermediate-val_acc", "intermediate-a_b", "intermediate-a_b-2"} <= set(figures)

"""Many schedulers on one study (SQLite and PostgreSQL): heartbeats, lost trials settled from
their files, retries and lost claims, workers joining one experiment, credentials, chaos.
(The storage's own conformance cases are in test_storage.py.)"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from _processes import alive, wait_for
from _storages import optuna_storage

from spiketune import ConfigError, Experiment, ExperimentConfig, Outcome, StorageError
from spiketune.engine.config import SESSION_FIELDS, WORKER_FIELDS
from spiketune.engine.results import export_results, load_results
from spiketune.engine.runners import InProcessRunner
from spiketune.engine.scheduler import Budget, Scheduler
from spiketune.engine.space import SearchSpace
from spiketune.engine.storage import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    ExperimentPaths,
    StudyStore,
    is_transient,
    journal_file,
    redact_url,
    resolve_url,
    strip_password,
    url_password,
    with_password,
)
from spiketune.engine.workers import fail_lost_trial

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def _scheduler(store: StudyStore, directory: Path, trial: Callable[[dict], Any],
               max_trials: int, **options: Any) -> Scheduler:
    """A scheduler of ``store``'s study that runs ``trial`` in-process on ``x`` in [0, 1], with
    the short heartbeat (0.1 s) and grace period (0.6 s) of these tests; ``options`` are
    further Scheduler arguments, or other values for those two."""
    return Scheduler(
        store=store,
        runner=InProcessRunner(trial),
        paths=ExperimentPaths(directory),
        experiment_id=store.study_name,
        space=SearchSpace.from_nni({"x": {"_type": "uniform", "_value": [0, 1]}}),
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=None,
        budget=Budget(max_trials=max_trials),
        **{"heartbeat_interval": 0.1, "grace_period": 0.6, **options},
    )


def _quadratic(params: dict) -> dict:
    import spiketune.trial as st

    st.report_intermediate_result({"default": params["x"], "loss": 1 - params["x"]})
    return {"default": -(params["x"] - 0.3) ** 2, "train_acc": params["x"], "test_acc": 0.5}


# ------------------------------------------------------------------------------ credentials
def test_passwords_are_masked_stripped_and_resolved(tmp_path: Path, monkeypatch) -> None:
    url = "postgresql://ana:s3cr%40t@db.example:5432/hpo?sslmode=require"
    assert url_password(url) == "s3cr@t"
    assert redact_url(url) == "postgresql://ana:***@db.example:5432/hpo?sslmode=require"
    assert strip_password(url) == "postgresql://ana@db.example:5432/hpo?sslmode=require"
    assert url_password(with_password(strip_password(url), "p:@/w")) == "p:@/w"
    query = "postgresql://db/hpo?user=ana&password=hunter2"
    assert "hunter2" not in redact_url(query) and "hunter2" not in strip_password(query)
    assert url_password(query) == "hunter2"
    # the password comes from the URL, else the environment, else a file
    plain = strip_password(url)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_FILE_ENV, raising=False)
    assert resolve_url(plain) == plain
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert url_password(resolve_url(plain)) == "from-env"
    assert url_password(resolve_url(url)) == "s3cr@t"  # the URL's own wins
    monkeypatch.delenv(PASSWORD_ENV)
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    assert url_password(resolve_url(plain)) == "from-file"
    # the stored form of a config never holds it
    config = ExperimentConfig(search_space=SPACE, storage=url)
    assert config.storage == url and config.to_dict()["storage"] == plain


def test_wrong_password_is_a_clean_error_without_the_password(postgres_server) -> None:
    url = with_password(postgres_server.url(), "not-the-Password-42")
    with pytest.raises(StorageError) as err:
        StudyStore.open(url, "nothing")
    assert "not-the-Password-42" not in str(err.value)
    assert "***" in str(err.value)


# ------------------------------------------------------------------------------ conformance
def test_experiment_on_both_storages(storage_url: str, exp_root: Path, tmp_path: Path,
                                     monkeypatch) -> None:
    """The engine's key case on each storage: run, read back by directory and by database."""
    exp = Experiment(trial=_quadratic, search_space=SPACE, max_trials=6, storage=storage_url,
                     experiment_dir=exp_root, seed=3, tuner="Random")
    results = exp.run()
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 6
    assert sorted(r.sequence_id for r in results.records) == list(range(6))
    assert results.best.value == max(r.value for r in results.records)
    assert results.best.metrics["train_acc"] == results.best.parameters["x"]
    assert results.records[0].intermediate[0]["loss"] == pytest.approx(
        1 - results.records[0].parameters["x"])
    # known only to the database (no directory on this machine): by id prefix
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(tmp_path / "another-machine"))
    remote = load_results(exp.id[:-2], storage=storage_url)
    assert remote.records == results.records and remote.directory is None
    # credentials appear in no file and no export
    password = url_password(storage_url)
    texts = [p.read_text() for p in exp.directory.rglob("*.json")]
    texts += [export_results(results, "json"), export_results(results, "csv")]
    if password:
        assert not any(password in t for t in texts)
    meta = json.loads(ExperimentPaths(exp.directory).experiment_json.read_text())
    assert meta["storage"] == strip_password(storage_url)


def _start_one(store: StudyStore, x: float, seq: int) -> tuple[int, int]:
    dist = optuna.distributions.FloatDistribution(0, 1)
    return store.start_trial({"x": x}, {"x": dist}, {"parameters": {"x": x}, "sequence_id": seq})


def test_a_trial_end_is_written_once_through_a_lost_connection(storage_url: str,
                                                               monkeypatch) -> None:
    """A connection lost (a database's; a network disk's stale handle, for a journal) before
    or after the commit: the write is retried, lands once."""
    import errno

    import sqlalchemy as sa

    store = StudyStore.open(storage_url, "blip", create=True)
    store.retry_seconds = 10.0
    writes = store._optuna()
    real_begin = writes.begin
    failures = {"before": 1, "after": 1}

    def lost(what: str) -> Exception:
        if journal_file(storage_url) is not None:
            return OSError(errno.ESTALE, f"Stale file handle ({what})")
        return sa.exc.OperationalError(what, {}, ConnectionResetError("reset"))

    class Flaky:
        """A transaction that fails once before and once after committing."""

        def __init__(self) -> None:
            self.ctx = real_begin()

        def __enter__(self):
            if failures["before"]:
                failures["before"] -= 1
                raise lost("UPDATE")
            return self.ctx.__enter__()

        def __exit__(self, *exc):
            out = self.ctx.__exit__(*exc)
            if exc[0] is None and failures["after"]:
                failures["after"] -= 1  # committed, but the answer never arrived
                raise lost("COMMIT")
            return out

    for case in ("before", "after"):
        tid, _ = _start_one(store, 0.5, 0)
        failures.update(before=int(case == "before"), after=int(case == "after"))
        monkeypatch.setattr(writes, "begin", Flaky)
        attrs = {"metrics": {"default": 0.5}, "intermediate": [], "outcome": "COMPLETE",
                 "reason": None}
        assert store.finish_trial(tid, optuna.trial.TrialState.COMPLETE, 0.5, attrs, {1: 0.1})
        monkeypatch.setattr(writes, "begin", real_begin)
        t = store.trial(tid)
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == 0.5
        assert t.intermediate_values == {1: 0.1} and t.user_attrs["outcome"] == "COMPLETE"
        assert failures == {"before": 0, "after": 0}
    # a trial recorded by someone else is not overwritten: False, nothing written
    tid, _ = _start_one(store, 0.1, 1)
    other = StudyStore.open(storage_url, "blip")
    assert fail_lost_trial(other, other.trial(tid), "worker lost: test", 0) == -1
    assert not store.finish_trial(tid, optuna.trial.TrialState.COMPLETE, 1.0,
                                  {"metrics": None, "intermediate": [], "outcome": "COMPLETE",
                                   "reason": None}, {})
    assert store.trial(tid).user_attrs["reason"] == "worker lost: test"
    other.close()
    store.close()


def test_a_full_disk_or_a_damaged_file_is_not_waited_out() -> None:
    """SQLite raises a full disk, a read-only file and a damaged one as operational errors,
    as it does a lock; only the lock (or a lost connection) is worth retrying: the others
    would stall every write for retry_seconds and then fail anyway."""
    import sqlite3

    import sqlalchemy as sa

    def operational(words: str) -> Exception:
        return sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(words))

    assert is_transient(operational("database is locked"))
    assert is_transient(sa.exc.OperationalError("SELECT", {}, ConnectionResetError("reset")))
    for words in ("database or disk is full", "attempt to write a readonly database",
                  "database disk image is malformed"):
        assert not is_transient(operational(words)), words
        wrapped = optuna.exceptions.StorageInternalError("commit")
        wrapped.__cause__ = operational(words)
        assert not is_transient(wrapped), words


def test_lost_trial_is_failed_and_retried_with_its_parameters(storage_url: str,
                                                              tmp_path: Path) -> None:
    """A trial whose scheduler went silent is recorded FAILED (worker lost) after the grace
    period, and re-run once, same parameters and sequence id, by the surviving scheduler."""
    StudyStore.open(storage_url, "lost", create=True).close()
    ghost = StudyStore.open(storage_url, "lost")
    ghost._owner = "another-host:4242"  # a worker on another machine, that then dies
    assert ghost.claim(4) == 0
    _, lost_number = _start_one(ghost, 0.25, 0)
    ghost.close()

    store = StudyStore.open(storage_url, "lost")
    ran: list[float] = []
    scheduler = _scheduler(store, tmp_path / "survivor",
                           lambda p: (ran.append(p["x"]), time.sleep(0.05), p["x"])[-1],
                           max_trials=4, max_retries=1)
    started = time.monotonic()
    assert scheduler.run() == "done"
    assert time.monotonic() - started >= 0.6  # it waited for the grace period
    trials = {t.number: t for t in store.trials()}
    store.close()
    lost = trials[lost_number]
    assert lost.state == optuna.trial.TrialState.FAIL
    assert lost.user_attrs["reason"].startswith("worker lost: no heartbeat from another-host:4242")
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == lost_number]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["attempt"] == 1 and retry.user_attrs["sequence_id"] == 0
    assert retry.user_attrs["parameters"] == {"x": 0.25} and retry.params == {"x": 0.25}
    assert retry.value == 0.25 and 0.25 in ran
    complete = [t for t in trials.values() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4  # max_trials distinct claims complete; the retry made none
    assert sorted(t.user_attrs["sequence_id"] for t in complete) == [0, 1, 2, 3]
    assert len(trials) == 5


def _dead_owner(tag: str) -> str:
    """The owner name of a scheduler of this machine that has exited."""
    import socket
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{socket.gethostname()}:{gone.pid}/{tag}"


def _start_in(store: StudyStore, paths: ExperimentPaths, x: float, seq: int,
              lines: list[dict | str]) -> int:
    """Start a trial with its directory, holding ``lines`` in its metrics.jsonl (a dict as a
    JSON line, a string as it is); its number."""
    dist = optuna.distributions.FloatDistribution(0, 1)
    _, number = store.start_trial({"x": x}, {"x": dist},
                                  {"parameters": {"x": x}, "sequence_id": seq},
                                  trial_dir=paths.trial_dir)
    d = paths.trial_dir(number)
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text("".join(
        line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
    return number


def test_a_lost_trial_that_reported_its_result_is_complete(storage_url: str,
                                                            tmp_path: Path) -> None:
    """The sweep reads a lost trial's metrics.jsonl (its worker ran on this machine): a final
    result there makes it COMPLETE with exactly those values, and it is not run again."""
    StudyStore.open(storage_url, "reported", create=True).close()
    ghost = StudyStore.open(storage_url, "reported")
    ghost._owner = _dead_owner("ghost")  # a worker of this machine, killed after the report
    assert ghost.claim(3) == 0
    lines = [{"type": "intermediate", "value": 0.1},
             {"type": "final", "value": {"default": 0.25, "acc": 0.9}}]
    lost_number = _start_in(ghost, ExperimentPaths(tmp_path / "ghost"), 0.25, 0, lines)
    ghost.close()

    store = StudyStore.open(storage_url, "reported")
    scheduler = _scheduler(store, tmp_path / "survivor", lambda p: p["x"], max_trials=3,
                           max_retries=1)
    assert scheduler.run() == "done"
    trials = {t.number: t for t in store.trials()}
    store.close()
    lost = trials[lost_number]
    assert lost.state == optuna.trial.TrialState.COMPLETE and lost.value == 0.25
    assert lost.user_attrs["metrics"] == {"default": 0.25, "acc": 0.9}
    assert lost.user_attrs["intermediate"] == [{"default": 0.1}]
    assert lost.intermediate_values == {1: 0.1}
    assert lost.user_attrs["reason"].startswith("result read from metrics.jsonl; worker lost")
    assert len(trials) == 3 and not any("retry_of" in t.user_attrs for t in trials.values())
    assert sorted(t.user_attrs["sequence_id"] for t in trials.values()) == [0, 1, 2]


def test_recovery_settles_each_trial_from_its_metrics(tmp_path: Path) -> None:
    """A finite final result: COMPLETE. A non-finite one: FAILED, its own fault, not retried.
    None: FAILED (interrupted) and queued again."""
    from spiketune.engine.storage import sqlite_url
    from spiketune.engine.workers import recover_interrupted

    url = sqlite_url(tmp_path / "study.db")
    StudyStore.open(url, "crashed", create=True).close()
    ghost = StudyStore.open(url, "crashed")
    ghost._owner = _dead_owner("crashed")
    paths = ExperimentPaths(tmp_path / "exp")
    final = {"type": "final", "value": {"default": 0.5}}
    nan = {"type": "final", "value": {"default": None}}
    step = {"type": "intermediate", "value": 0.2}
    numbers = [_start_in(ghost, paths, 0.5, 0, [step, final]),
               _start_in(ghost, paths, 0.6, 1, [nan]),
               _start_in(ghost, paths, 0.7, 2, [step, '{"type": "fin'])]
    ghost.close()
    store = StudyStore.open(url, "crashed")
    assert sorted(recover_interrupted(store, paths, max_retries=1)) == numbers
    trials = {t.number: t for t in store.trials()}
    store.close()
    done, bad, cut = (trials[n] for n in numbers)
    assert done.state == optuna.trial.TrialState.COMPLETE and done.value == 0.5
    assert bad.state == optuna.trial.TrialState.FAIL and "nan" in bad.user_attrs["reason"]
    assert cut.state == optuna.trial.TrialState.FAIL
    assert cut.user_attrs["reason"].startswith("interrupted: the scheduler ended")
    assert cut.user_attrs["intermediate"] == [{"default": 0.2}]  # read up to the cut line
    (retry,) = [t for t in trials.values() if "retry_of" in t.user_attrs]
    assert retry.user_attrs["retry_of"] == cut.number and retry.user_attrs["sequence_id"] == 2
    assert retry.state == optuna.trial.TrialState.WAITING


def test_a_claim_of_a_scheduler_that_died_is_run(storage_url: str, tmp_path: Path) -> None:
    """A scheduler killed between claiming a sequence id and starting its trial: the claim is
    run by a scheduler that finds it (at once when the claimer ran on this machine, after the
    grace period for another machine's), so max_trials stays exact."""
    StudyStore.open(storage_url, "gap", create=True).close()
    for owner, sequence_id in ((_dead_owner("here"), 0), ("another-host:4242/far", 1)):
        ghost = StudyStore.open(storage_url, "gap")
        ghost._owner = owner
        assert ghost.claim(4) == sequence_id  # ... and died before its trial was written
        ghost.close()
    store = StudyStore.open(storage_url, "gap")
    scheduler = _scheduler(store, tmp_path / "survivor", lambda p: p["x"], max_trials=4)
    started = time.monotonic()
    assert scheduler.run() == "done"
    assert time.monotonic() - started >= 0.6  # the other machine's claim had its grace
    trials = store.trials()
    assert sorted(t.user_attrs["sequence_id"] for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert set(store.claims().values()) == {store.owner}  # every claim taken over, once
    store.close()


def test_retries_stop_after_max_retries(storage_url: str) -> None:
    StudyStore.open(storage_url, "again", create=True).close()
    store = StudyStore.open(storage_url, "again")
    tid, number = _start_one(store, 0.5, 0)
    retry = fail_lost_trial(store, store.trial(tid), "worker lost", max_retries=1)
    assert retry is not None and retry > number
    taken = store.take_waiting(lambda n: Path(f"/trials/{n}"))
    assert taken is not None and taken.number == retry and taken.user_attrs["attempt"] == 1
    assert taken.user_attrs["trial_dir"] == f"/trials/{retry}"
    assert store.take_waiting(lambda n: Path(".")) is None  # taken once
    assert fail_lost_trial(store, store.trial(store.trial_id(taken)), "worker lost", 1) == -1
    assert store.unfinished() == []
    store.close()


# ------------------------------------------------------------------------------ joining
def _worker_config(url: str, root: Path, **changes) -> ExperimentConfig:
    fields = dict(name="shared", search_space=SPACE, max_trials=10, storage=url,
                  experiment_dir=root, tuner="Random")
    return ExperimentConfig(**{**fields, **changes})


def test_workers_join_one_study_and_a_different_config_is_refused(storage_url: str,
                                                                  tmp_path: Path) -> None:
    joined: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def join(i: int) -> None:
        try:
            config = _worker_config(storage_url, tmp_path / f"machine{i}", concurrency=i + 1)
            barrier.wait()
            exp = Experiment.join(config, trial=_quadratic)
            joined.append(exp.id)
            exp._joined.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(joined)) == 1  # created once, joined by the others
    (exp_id,) = set(joined)
    assert all((tmp_path / f"machine{i}" / exp_id / "experiment.json").is_file()
               for i in range(4))
    optuna_studies = optuna.get_all_study_names(optuna_storage(storage_url))
    assert optuna_studies == [exp_id]  # the losers of the race removed their own

    changed = _worker_config(storage_url, tmp_path / "m", max_trials=20, tuner="TPE")
    with pytest.raises(ConfigError) as err:
        Experiment.join(changed, trial=_quadratic)
    fields = {p.field for p in err.value.problems}
    assert fields == {"max_trials", "tuner"}
    assert "stored value 10" in str(err.value) and exp_id in str(err.value)
    password = url_password(storage_url)
    assert password is None or password not in str(err.value)
    # and by id, from a config with another name
    exp = Experiment.join(_worker_config(storage_url, tmp_path / "m", name="shared"),
                          experiment=exp_id, trial=_quadratic)
    assert exp.id == exp_id
    exp._joined.close()


def _fields_named(doc: str, start: str, end: str) -> set[str]:
    """The names in backquotes of ``docs/<doc>`` from ``start`` to ``end``."""
    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    begin = text.index(start)
    return set(re.findall(r"`([a-z_]+)`", text[begin:text.index(end, begin)]))


def test_the_docs_name_every_field_workers_and_resumed_sessions_may_change() -> None:
    assert _fields_named("scaleout.md", "**Same configuration.**",
                         "* **Budgets shared.**") == WORKER_FIELDS
    assert _fields_named("engine.md", "It runs the configuration of `experiment.json`",
                         "; any other change") == SESSION_FIELDS


def test_worker_runs_the_shared_budget(storage_url: str, tmp_path: Path) -> None:
    """Two workers in threads of one process: max_trials between them, both take part."""
    results = []
    started = [threading.Event(), threading.Event()]

    def trial(i: int, p: dict) -> float:
        # each worker's first trial waits for the other's: on a loaded machine the second
        # worker may otherwise join after the first has run all 12
        started[i].set()
        started[1 - i].wait(timeout=60)
        time.sleep(0.02)
        return p["x"]

    def work(i: int) -> None:
        # No worker dies here: a long grace period keeps a loaded machine's slow heartbeat
        # from being taken for a lost worker.
        config = _worker_config(storage_url, tmp_path / f"w{i}", max_trials=12,
                                heartbeat_interval=0.2, grace_period=60)
        results.append(Experiment.join(config, trial=lambda p: trial(i, p)).run())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    records = results[-1].records
    outcomes = [(r.number, r.outcome.value, r.reason) for r in records]
    assert len(records) == 12, outcomes
    assert all(r.outcome == Outcome.COMPLETE for r in records), outcomes
    assert sorted(r.sequence_id for r in records) == list(range(12))
    dirs = {r.trial_dir.parents[2].name for r in records}
    assert dirs == {"w0", "w1"}


# ------------------------------------------------------------------------------ processes
WORKER_TRIAL = """
    import os, random, time
    import spiketune.trial as st
    params = st.get_next_parameter()
    st.report_intermediate_result(params["x"])
    stuck = os.environ.get("STUCK_MARKER")
    if stuck:
        try:  # the first trial to get here hangs: its worker is killed meanwhile
            fd = os.open(stuck, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, os.environ["SPIKETUNE_TRIAL_DIR"].encode())
            os.close(fd)
            time.sleep(60)
        except FileExistsError:
            pass
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")) or random.uniform(0.1, 0.5))
    print("done", params)
    st.report_final_result({"default": params["x"], "train_acc": params["y"]})
"""


def _worker_files(tmp_path: Path, code: Path, root: Path, max_trials: int) -> Path:
    cfg = tmp_path / "worker.toml"
    cfg.write_text(
        f'name = "fleet"\n'
        f'trial_command = "python3 trial.py"\n'
        f'trial_code_directory = "{code}"\n'
        f'experiment_dir = "{root}"\n'
        f"max_trials = {max_trials}\n"
        f'tuner = "Random"\n'
        f"max_retries = 1\n"
        f"heartbeat_interval = 0.3\n"
        f"grace_period = 2.0\n"
        f"[search_space]\n"
        f'x = {{_type = "uniform", _value = [0, 1]}}\n'
        f'y = {{_type = "uniform", _value = [0, 1]}}\n'
    )
    return cfg


def _start_workers(cfg: Path, url: str, n: int, env: dict[str, str]) -> list:
    import os
    import subprocess
    import sys

    return [
        subprocess.Popen(
            [sys.executable, "-m", "spiketune.cli", "worker", str(cfg), "--storage", url, "-q"],
            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(n)
    ]






def _shared_storage(kind: str, request: pytest.FixtureRequest,
                    tmp_path: Path) -> tuple[str, str | None]:
    """(URL, password or None) of a new study storage every worker process reaches: a
    PostgreSQL database of the session's server, or a journal file."""
    if kind == "journal":
        from spiketune.engine.storage import journal_url

        (tmp_path / "shared").mkdir()
        return journal_url(tmp_path / "shared" / "study.log"), None
    server = request.getfixturevalue("postgres_server")
    return server.new_database(), server.password


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgresql", "journal"])
@pytest.mark.parametrize("kill", [False, True], ids=["three-workers", "one-killed"])
def test_worker_processes_share_max_trials(request, tmp_path: Path, trial_script,
                                           monkeypatch, kill: bool, kind: str) -> None:
    """Three `spiketune worker` processes, max_trials=24, trials of 0.1-0.5 s: exactly 24 end
    COMPLETE, no parameters run twice; with one worker killed (-9) mid-trial, its trial is
    recorded lost after the grace period and run once more by a survivor. On PostgreSQL and
    on a journal file (claims, heartbeats and the registry in its lock-protected logs)."""
    import os
    import signal

    url, password = _shared_storage(kind, request, tmp_path)
    plain = strip_password(url)
    root = tmp_path / "experiments"
    cfg = _worker_files(tmp_path, trial_script(WORKER_TRIAL), root, max_trials=24)
    marker = tmp_path / "stuck"
    env = {**({PASSWORD_ENV: password} if password else {}),
           **({"STUCK_MARKER": str(marker)} if kill else {})}
    workers = _start_workers(cfg, plain, 3, env)
    victim = None
    try:
        if kill:
            wait_for(lambda: marker.exists() and marker.read_text(), 60, "a trial to hang")
            hung_dir = Path(marker.read_text())
            pid = json.loads((hung_dir / "process.json").read_text())["scheduler_pid"]
            victim = next(w for w in workers if w.pid == pid)
            os.kill(victim.pid, signal.SIGKILL)
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
    for w, (out, err) in zip(workers, outputs, strict=True):
        if w is victim:
            assert w.returncode == -signal.SIGKILL
            continue
        assert w.returncode == 0, err.decode()
        if password is not None:  # the URL is shown, never the password
            assert password.encode() not in out + err
            assert b"***" in err or plain.encode() in err

    (directory,) = [p for p in root.iterdir() if p.is_dir()]
    store = StudyStore.open(url, directory.name)
    trials = store.trials()
    assert store.unfinished() == []
    store.close()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 24
    assert sorted(t.user_attrs["sequence_id"] for t in complete) == list(range(24))
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    originals = [t for t in trials if "retry_of" not in t.user_attrs]
    params = [tuple(sorted(t.user_attrs["parameters"].items())) for t in originals]
    assert len(set(params)) == len(params)  # no parameter set ran twice but for a retry
    if not kill:
        assert len(trials) == 24 and not retries
        pids = {json.loads((Path(t.user_attrs["trial_dir"]) / "process.json").read_text())
                ["scheduler_pid"] for t in trials}
        assert pids == {w.pid for w in workers}  # every worker took part
    else:
        failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
        assert len(failed) == 1, [(t.number, t.user_attrs.get("reason")) for t in failed]
        (lost,) = failed
        # Found by the heartbeat sweep, or (all workers share this host) by a worker that
        # joins after the kill and sees the dead scheduler's pid: either way, lost and retried.
        reason = lost.user_attrs["reason"]
        assert reason.startswith(("worker lost", "interrupted: the scheduler ended")), reason
        assert f":{victim.pid}/" in lost.user_attrs["reason"]
        (retry,) = retries
        assert retry.user_attrs["retry_of"] == lost.number and retry.user_attrs["attempt"] == 1
        assert retry.user_attrs["parameters"] == lost.user_attrs["parameters"]
        assert retry.state == optuna.trial.TrialState.COMPLETE
        assert len(trials) == 25
        hung = json.loads((Path(lost.user_attrs["trial_dir"]) / "process.json").read_text())
        assert not alive(hung["pid"])  # its orphan was killed
    if password is None:  # a journal: its logs end whole, and its lock is released
        log = journal_file(url)
        assert log.read_bytes().endswith(b"\n")
        assert (log.parent / (log.name + ".spiketune")).read_bytes().endswith(b"\n")
        assert not (log.parent / (log.name + ".lock")).exists()
        return
    # no file of the experiment holds the password
    assert not any(password in p.read_text(errors="replace")
                   for p in directory.rglob("*") if p.is_file() and p.suffix != ".db")
    if not kill:
        _cli_reads_the_shared_study(tmp_path, plain, password, directory.name, monkeypatch)


def _cli_reads_the_shared_study(tmp_path: Path, url: str, password: str, exp_id: str,
                                monkeypatch) -> None:
    """Every reading command on a machine that has no directory of the experiment."""
    from typer.testing import CliRunner

    from spiketune.cli import app

    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(tmp_path / "laptop"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n")
    runner = CliRunner()
    common = ["--storage", url, "--password-file", str(secret)]
    listed = runner.invoke(app, ["ls", *common])
    assert listed.exit_code == 0, listed.output
    assert exp_id in listed.output
    table = runner.invoke(app, ["trials", "fleet", "--metrics", *common])  # by workers' name
    assert table.exit_code == 0, table.output
    assert table.output.count("COMPLETE") == 24 and "train_acc" in table.output
    best = runner.invoke(app, ["best", exp_id[:-3], "--json", *common])
    assert best.exit_code == 0, best.output
    assert json.loads(best.output)["value"] == max(
        r.value for r in load_results(exp_id, storage=url).records)
    exported = runner.invoke(app, ["export", exp_id, "--format", "csv", *common])
    assert exported.exit_code == 0  # a header and 24 rows:
    assert len(exported.output.strip().splitlines()) == 25
    stopped = runner.invoke(app, ["stop", exp_id, *common])
    assert stopped.exit_code == 0 and "not running" in stopped.output
    for result in (listed, table, best, exported, stopped):
        assert password not in result.output
    monkeypatch.delenv(PASSWORD_FILE_ENV, raising=False)  # set by --password-file
    missing = runner.invoke(app, ["trials", exp_id, "--storage", url])
    assert missing.exit_code == 1 and "error" in missing.output  # no password: clean error


@pytest.mark.slow
def test_stop_reaches_every_worker(postgres_server, tmp_path: Path, trial_script) -> None:
    import os
    import signal

    from typer.testing import CliRunner

    from spiketune.cli import app

    url = postgres_server.new_database()
    root = tmp_path / "experiments"
    cfg = _worker_files(tmp_path, trial_script(WORKER_TRIAL), root, max_trials=500)
    workers = _start_workers(cfg, url, 2, {"TRIAL_SLEEP": "0.3"})
    try:
        wait_for(lambda: len(list(root.glob("*/trials/*/metrics.jsonl"))) >= 4, 60, "trials")
        (directory,) = [p for p in root.iterdir() if p.is_dir()]
        stopped = CliRunner().invoke(app, ["stop", directory.name, "--storage", url,
                                           "--wait", "30"])
        assert stopped.exit_code == 0, stopped.output
        for w in workers:
            w.communicate(timeout=30)
            assert w.returncode == 0
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
    records = load_results(directory, storage=url).records
    assert 4 <= len(records) < 100
    assert not any(r.outcome == Outcome.RUNNING for r in records)


def test_an_outage_between_writes_ends_no_trial(storage_url: str, tmp_path: Path,
                                                monkeypatch) -> None:
    """Heartbeats, sweeps and syncs that meet a lost connection are skipped, not fatal."""
    import sqlalchemy as sa

    StudyStore.open(storage_url, "outage", create=True).close()
    store = StudyStore.open(storage_url, "outage")
    calls = {"n": 0}
    real = store.unfinished

    def flaky() -> list:
        calls["n"] += 1
        if calls["n"] % 2:
            raise sa.exc.OperationalError("SELECT", {}, ConnectionResetError("reset"))
        return real()

    monkeypatch.setattr(store, "unfinished", flaky)
    scheduler = _scheduler(store, tmp_path / "w", lambda p: (time.sleep(0.03), p["x"])[1],
                           max_trials=6, heartbeat_interval=0.02, grace_period=1.0,
                           sync_interval=0.0)
    assert scheduler.run() == "done"
    assert calls["n"] >= 4
    trials = store.trials()
    store.close()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 6


def test_cli_run_and_resume_on_postgresql(postgres_server, tmp_path: Path, trial_script,
                                          monkeypatch) -> None:
    """`spiketune run` of a config whose storage is PostgreSQL (no password in the file),
    then `resume`: the password comes from --password-file and is written nowhere."""
    from typer.testing import CliRunner

    from spiketune.cli import app

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    url = strip_password(postgres_server.new_database())
    secret = tmp_path / "pw"
    secret.write_text(postgres_server.password)
    root = tmp_path / "experiments"
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(root))
    cfg = _worker_files(tmp_path, trial_script(WORKER_TRIAL), root, max_trials=3)
    cfg.write_text(cfg.read_text().replace("max_retries", f'storage = "{url}"\nmax_retries'))
    monkeypatch.setenv("TRIAL_SLEEP", "0.01")
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(cfg), "-q", "--password-file", str(secret)])
    assert ran.exit_code == 0, ran.output
    assert "done: 3 trials, 3 complete" in ran.output
    (directory,) = list(root.iterdir())
    monkeypatch.delenv(PASSWORD_FILE_ENV)
    resumed = runner.invoke(app, ["resume", directory.name, "-q", "--password-file",
                                  str(secret)])
    assert resumed.exit_code == 0, resumed.output
    assert "done: 3 trials" in resumed.output  # the budget was spent already
    assert json.loads((directory / "experiment.json").read_text())["storage"] == url
    assert not any(postgres_server.password in p.read_text(errors="replace")
                   for p in directory.rglob("*") if p.is_file())


@pytest.mark.slow
def test_chaos_with_workers(postgres_server, tmp_path: Path) -> None:
    """The chaos benchmark, small: 3 workers on PostgreSQL, 12 trials (with seed 2, every
    kind of trial is among them), 3 workers killed -9 (each replaced by a new one)."""
    import _chaos

    url = postgres_server.new_database()
    report = _chaos.run_workers(strip_password(url), 12, 3, workers=3, seed=2, work=tmp_path,
                               env={PASSWORD_ENV: postgres_server.password}, timeout=240)
    assert report.ok, report.text()
    assert report.kills >= 1 and report.records >= 12

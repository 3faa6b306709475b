"""A scheduler killed with SIGKILL, then resumed; and a stop from another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import optuna
import pytest
from _processes import alive, wait_for
from typer.testing import CliRunner

from spiketune import ConfigError, Experiment, Outcome, StorageError
from spiketune.cli import app
from spiketune.engine.outcome import END_LAG_ATTR
from spiketune.engine.results import load_results
from spiketune.engine.storage import ATTR_ELAPSED, StudyStore, sqlite_url

SLOW_TRIAL = """
    import os, pathlib, subprocess, sys, time
    import spiketune.trial as st
    st.get_next_parameter()
    seq = st.get_sequence_id()
    d = st.get_trial_dir()
    if seq > 0 and pathlib.Path(os.environ["SLOW_MARKER"]).exists():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (d / "child.pid").write_text(str(child.pid))
        st.report_intermediate_result(0.5)
        time.sleep(120)
    st.report_final_result(float(seq))
"""


def _config(tmp_path: Path, code: Path, root: Path, max_trials: int,
            concurrency: int = 2, start_with: tuple[float, ...] = ()) -> Path:
    cfg = tmp_path / "experiment.toml"
    points = ", ".join(f"{{x = {x}}}" for x in start_with)
    cfg.write_text(
        f'name = "crashy"\n'
        f'trial_command = "python3 trial.py"\n'
        f'trial_code_directory = "{code}"\n'
        f'experiment_dir = "{root}"\n'
        f"max_trials = {max_trials}\n"
        f"concurrency = {concurrency}\n"
        f'tuner = "Random"\n'
        f"{f'start_with = [{points}]' if start_with else ''}\n"
        f"[search_space]\n"
        f'x = {{_type = "uniform", _value = [0, 1]}}\n'
    )
    return cfg


def _start_scheduler(cfg: Path, marker: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SLOW_MARKER=str(marker))
    return subprocess.Popen(
        [sys.executable, "-m", "spiketune.cli", "run", str(cfg), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


def _experiment_dir(root: Path) -> Path | None:
    found = [p for p in root.iterdir() if (p / "experiment.json").exists()] if root.exists() else []
    return found[0] if found else None


def _running_children(directory: Path, n: int) -> list[Path]:
    dirs = sorted((directory / "trials").glob("*/child.pid")) if directory else []
    return dirs if len(dirs) >= n else []


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path, exp_root: Path, trial_script, monkeypatch) -> None:
    code = trial_script(SLOW_TRIAL)
    marker = tmp_path / "slow"
    marker.touch()
    monkeypatch.setenv("SLOW_MARKER", str(marker))
    # known start points for every trial: the resumed session must go on with the next ones
    points = (0.125, 0.25, 0.375, 0.5, 0.625)
    scheduler = _start_scheduler(_config(tmp_path, code, exp_root, max_trials=5,
                                         start_with=points), marker)
    try:
        wait_for(lambda: _experiment_dir(exp_root) is not None, 20, "the experiment directory")
        directory = _experiment_dir(exp_root)
        assert directory is not None
        wait_for(lambda: len(_running_children(directory, 2)) == 2, 20, "two slow trials")
        time.sleep(1.2)  # long enough for the scheduler to have saved its elapsed time
    finally:
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
    pids = []
    for f in _running_children(directory, 2):
        info = json.loads((f.parent / "process.json").read_text())
        pids += [info["pid"], int(f.read_text())]
    assert all(alive(p) for p in pids)  # orphans: still running after the scheduler died

    meta = json.loads((directory / "experiment.json").read_text())
    store = StudyStore.open(sqlite_url(directory / "study.db"), meta["id"])
    elapsed_before = store.study_attrs()[ATTR_ELAPSED]
    store.close()
    assert elapsed_before >= 1.0
    before = load_results(directory)
    assert [r.outcome for r in before.records] == [Outcome.COMPLETE, Outcome.RUNNING,
                                                   Outcome.RUNNING]
    assert before.records[1].trial_dir == directory / "trials" / "1"  # known while running
    assert Experiment.load(directory).status == "interrupted"

    marker.unlink()
    exp = Experiment.load(directory, kill_grace=0.5)
    after = exp.resume()
    assert not any(alive(p) for p in pids)  # the interrupted trials' processes are gone
    outcomes = [r.outcome for r in after.records]
    assert outcomes == [Outcome.COMPLETE, Outcome.FAILED, Outcome.FAILED, Outcome.COMPLETE,
                        Outcome.COMPLETE]  # max_trials counts the trials started before
    for r in after.records[1:3]:
        assert "interrupted" in r.reason
        assert r.intermediate == [{"default": 0.5}]  # recovered from metrics.jsonl
        assert r.parameters == before.records[r.number].parameters
    assert [r.sequence_id for r in after.records] == [0, 1, 2, 3, 4]
    assert tuple(r.parameters["x"] for r in after.records) == points  # none run twice, none skipped
    assert after.elapsed_seconds > elapsed_before  # the duration budget went on
    assert exp.status == "done"


SLEEPER = """
    import os, time
    import spiketune.trial as st
    st.get_next_parameter()
    st.report_intermediate_result(0.5)
    (st.get_trial_dir() / "pid").write_text(str(os.getpid()))
    time.sleep(120)
"""


@pytest.mark.parametrize("how", ["spiketune stop", "Experiment.stop"])
def test_stop_ends_the_trials_a_killed_scheduler_left_running(
    tmp_path: Path, exp_root: Path, trial_script, how: str
) -> None:
    """Its scheduler killed, an experiment is interrupted and its trial runs on, holding its
    CPU or GPU: stop ends it, as resume would, and leaves its record to resume."""
    code = trial_script(SLEEPER)
    scheduler = _start_scheduler(_config(tmp_path, code, exp_root, max_trials=1,
                                         concurrency=1), tmp_path / "unused")
    try:
        wait_for(lambda: _experiment_dir(exp_root) is not None, 20, "the experiment directory")
        directory = _experiment_dir(exp_root)
        assert directory is not None
        pid_file = directory / "trials" / "0" / "pid"
        wait_for(pid_file.exists, 20, "the trial to start")
    finally:
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
    pid = int(pid_file.read_text())
    try:
        assert alive(pid) and Experiment.load(directory).status == "interrupted"
        if how == "spiketune stop":
            result = CliRunner().invoke(app, ["stop", directory.name])
            assert result.exit_code == 0, result.output
            said = " ".join(result.output.split())
            assert (f"{directory.name}: its scheduler was killed; ended 1 process of trial 0 "
                    f"it left running; `spiketune resume {directory.name}` records them") in said
        else:
            assert Experiment.load(directory, kill_grace=1.0).stop() == "interrupted"
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    (record,) = load_results(directory).records
    assert record.outcome == Outcome.RUNNING  # recorded by resume, from what it reported


IN_PROCESS_SCHEDULER = """
import pathlib, sys, time
import spiketune.trial as st
from spiketune import Experiment

marker, root = pathlib.Path(sys.argv[1]), sys.argv[2]

def trial(p):
    st.report_intermediate_result(0.25)
    st.report_intermediate_result(0.5)
    if p["x"] == 1:
        st.report_final_result(0.75)
    (marker.parent / f"ready{p['x']}").touch()
    while marker.exists():
        time.sleep(0.05)
    return 1.0

Experiment(trial=trial, search_space={"x": {"_type": "choice", "_value": [0, 1]}},
           tuner="GridSearch", concurrency=2, max_trials=2, experiment_dir=root).run()
"""


def test_in_process_trials_keep_what_they_reported_when_their_scheduler_is_killed(
    tmp_path: Path, exp_root: Path
) -> None:
    """In-process trials die with the scheduler they share a process with; resume finds
    their reports in metrics.jsonl as it does a trial process's: the intermediate results of
    one, the final result that makes the other COMPLETE."""
    script = tmp_path / "scheduler.py"
    script.write_text(IN_PROCESS_SCHEDULER)
    marker = tmp_path / "hold"
    marker.touch()
    scheduler = subprocess.Popen([sys.executable, str(script), str(marker), str(exp_root)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
    try:
        wait_for(lambda: all((tmp_path / f"ready{x}").exists() for x in (0, 1)), 30,
                 "both trials to have reported")
    finally:
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
    directory = _experiment_dir(exp_root)
    assert directory is not None
    after = Experiment.load(directory, trial=lambda p: 0.0).resume()
    by_x = {r.parameters["x"]: r for r in after.records}
    assert by_x[0].outcome == Outcome.FAILED and "interrupted" in by_x[0].reason
    assert by_x[0].intermediate == [{"default": 0.25}, {"default": 0.5}]
    assert by_x[1].outcome == Outcome.COMPLETE and by_x[1].value == 0.75
    assert len(after.records) == 2


@pytest.mark.slow
@pytest.mark.parametrize("how", ["spiketune stop", "Ctrl-C"])
def test_stop_from_another_process(tmp_path: Path, exp_root: Path, trial_script, how) -> None:
    code = trial_script(SLOW_TRIAL)
    marker = tmp_path / "slow"
    marker.touch()
    scheduler = _start_scheduler(_config(tmp_path, code, exp_root, max_trials=6), marker)
    try:
        wait_for(lambda: _experiment_dir(exp_root) is not None, 20, "the experiment directory")
        directory = _experiment_dir(exp_root)
        assert directory is not None
        wait_for(lambda: len(_running_children(directory, 2)) == 2, 20, "two slow trials")
        pids = [int(f.read_text()) for f in _running_children(directory, 2)]
        t0 = time.monotonic()
        if how == "Ctrl-C":  # what a terminal sends to its foreground process (the scheduler)
            os.kill(scheduler.pid, signal.SIGINT)
        else:
            result = CliRunner().invoke(app, ["stop", directory.name, "--wait", "20"])
            assert result.exit_code == 0, result.output
            assert "stopped" in result.output
        assert scheduler.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if scheduler.poll() is None:
            os.kill(scheduler.pid, signal.SIGKILL)
            scheduler.wait()
    records = load_results(directory).records
    # Stopped, not failed: stored as Optuna FAIL (which the samplers skip), with no value
    assert [r.outcome for r in records] == [Outcome.COMPLETE, Outcome.STOPPED, Outcome.STOPPED]
    assert all(r.reason.startswith("stopped:") for r in records[1:])
    if how == "Ctrl-C":
        assert "SIGINT" in records[1].reason
    study = optuna.load_study(study_name=directory.name,
                              storage=sqlite_url(directory / "study.db"))
    states = [(t.state, t.value) for t in study.get_trials()]
    assert states[1:] == [(optuna.trial.TrialState.FAIL, None)] * 2
    assert "1 complete, 0 early-stopped, 0 failed, 2 stopped" in scheduler.stdout.read().decode()
    wait_for(lambda: not any(alive(p) for p in pids), 5, "the trials' children to end")
    assert not (directory / "stop").exists()
    assert json.loads((directory / "scheduler.json").read_text())["status"] == "stopped"


# ------------------------------------------------------------------------------ after a crash
AROUND_A_CRASH = """
    import os, pathlib, signal, sys, time
    import spiketune.trial as st
    p = st.get_next_parameter()
    seq = st.get_sequence_id()
    d = st.get_trial_dir()
    crash = pathlib.Path(os.environ["CRASH_DIR"])
    if seq < 4:
        def checkpoint(signum, frame):  # what a trial that saves its state on SIGTERM does
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(d / "checkpoint.txt", "a") as f:
                f.write("begin\\n")
            time.sleep(0.5)
            with open(d / "checkpoint.txt", "a") as f:
                f.write("end\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, checkpoint)
        (d / "started").touch()
        while not (crash / "killed").exists():  # the scheduler is killed meanwhile
            time.sleep(0.02)
        if seq == 3:  # never reports: still at work when the experiment is resumed
            time.sleep(120)
        st.report_final_result({"default": p["x"], "seq": seq})
        if seq == 1:  # reported, still at work (saving a model) when resumed
            time.sleep(120)
        sys.exit(3 if seq == 2 else 0)  # seq 2: reported, then exited non-zero
    st.report_final_result({"default": p["x"], "seq": seq})
"""


@pytest.mark.slow
def test_trials_that_finish_around_a_crash_keep_their_results(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch
) -> None:
    """kill -9 of `spiketune run` while four trials run, which then report their final result
    (or not) with nobody watching: `resume` records each from its metrics.jsonl."""
    crash = tmp_path / "crash"
    crash.mkdir()
    code = trial_script(AROUND_A_CRASH)
    cfg = _config(tmp_path, code, exp_root, max_trials=5, concurrency=4)
    monkeypatch.setenv("CRASH_DIR", str(crash))  # for the trials of both sessions
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "spiketune.cli", "run", str(cfg), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        wait_for(lambda: _experiment_dir(exp_root) is not None, 30, "the experiment directory")
        directory = _experiment_dir(exp_root)
        assert directory is not None
        trials = directory / "trials"
        wait_for(lambda: len(list(trials.glob("*/started"))) == 4, 30, "four trials")
    finally:
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.communicate()
    (crash / "killed").touch()

    def reported(n: int) -> bool:
        return '"final"' in (trials / str(n) / "metrics.jsonl").read_text()

    def exited(n: int) -> bool:
        return not alive(json.loads((trials / str(n) / "process.json").read_text())["pid"])

    wait_for(lambda: all(reported(n) for n in (0, 1, 2)) and exited(0) and exited(2), 30,
             "trials 0 and 2 to report and exit, trial 1 to report")
    assert not exited(1) and not exited(3)

    time.sleep(1.5)  # the results were written well before the resume records them
    results = Experiment.load(directory, kill_grace=3.0).resume()
    by_number = {r.number: r for r in results.records}
    assert [r.sequence_id for r in results.records] == [0, 1, 2, 3, 4]  # the budget stays exact
    for n in (0, 1, 2):  # reported before resume: COMPLETE with exactly what they reported
        r = by_number[n]
        assert r.outcome == Outcome.COMPLETE, r.reason
        assert r.metrics == {"default": r.parameters["x"], "seq": n}
        assert "result read from metrics.jsonl" in r.reason
    assert by_number[3].outcome == Outcome.FAILED
    assert by_number[3].reason.startswith("interrupted: the scheduler ended")
    assert by_number[4].outcome == Outcome.COMPLETE
    # the leftovers were ended as a stop ends a trial: SIGTERM first, so checkpoints complete
    assert (trials / "1" / "checkpoint.txt").read_text() == "begin\nend\n"
    assert (trials / "3" / "checkpoint.txt").read_text() == "begin\nend\n"
    assert exited(1) and exited(3)
    study = optuna.load_study(study_name=directory.name,
                              storage=sqlite_url(directory / "study.db"))
    stored = {t.number: t for t in study.get_trials()}
    assert [stored[n].state for n in range(5)] == [optuna.trial.TrialState.COMPLETE] * 3 + [
        optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert [stored[n].value for n in range(3)] == [by_number[n].value for n in range(3)]
    # Their end is when they wrote their result, not when the resume recorded them.
    for n in (0, 1, 2):
        lag = stored[n].user_attrs[END_LAG_ATTR]
        written = (trials / str(n) / "metrics.jsonl").stat().st_mtime
        assert lag >= 1.5 and by_number[n].finished is not None
        assert by_number[n].finished == stored[n].datetime_complete - timedelta(seconds=lag)
        assert by_number[n].duration_seconds == pytest.approx(
            (stored[n].datetime_complete - stored[n].datetime_start).total_seconds() - lag)
        assert time.time() - written >= lag
    assert END_LAG_ATTR not in stored[3].user_attrs  # lost: it ended when the resume ended it


REPORTS_THEN_LINGERS = """
    import os, pathlib, time
    import spiketune.trial as st
    p = st.get_next_parameter()
    st.report_intermediate_result(0.1)
    if st.get_sequence_id() == 0:
        st.report_final_result({"default": p["x"], "seq": 0})
        pathlib.Path(os.environ["REPORTED"]).touch()
    time.sleep(60)  # still running when the scheduler fails
"""


def test_a_failing_scheduler_keeps_the_results_its_running_trials_reported(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch
) -> None:
    """The scheduler fails (here: its progress callback raises) while two trials run, one of
    which has reported its final result: that one is recorded COMPLETE from its
    metrics.jsonl, as a resume would; the other FAILED, interrupted."""
    marker = tmp_path / "reported"
    monkeypatch.setenv("REPORTED", str(marker))
    exp = Experiment(trial_command="python3 trial.py",
                     trial_code_directory=trial_script(REPORTS_THEN_LINGERS),
                     search_space={"x": {"_type": "uniform", "_value": [0, 1]}}, max_trials=2,
                     concurrency=2, tuner="Random", experiment_dir=exp_root, kill_grace=1.0)

    def progress(_: object) -> None:
        if marker.exists() and all(
                (exp.directory / "trials" / str(n) / "metrics.jsonl").is_file()
                for n in (0, 1)):
            raise RuntimeError("the display broke")

    with pytest.raises(RuntimeError, match="the display broke"):
        exp.run(progress=progress)
    by_number = {r.number: r for r in load_results(exp.directory).records}
    assert by_number[0].outcome == Outcome.COMPLETE, by_number[0].reason
    assert by_number[0].metrics == {"default": by_number[0].parameters["x"], "seq": 0}
    assert len(by_number[0].intermediate) == 1
    assert by_number[1].outcome == Outcome.FAILED
    assert by_number[1].reason == "interrupted: the scheduler failed"
    assert len(by_number[1].intermediate) == 1


def test_decide_when_the_scheduler_died_or_the_trial_exited_badly() -> None:
    """The rules for an ending whose exit status is unknown, or that contradicts a result."""
    from spiketune.engine.outcome import decide
    from spiketune.engine.runners import Ended

    lost = "interrupted: the scheduler ended while the trial was running"
    # the scheduler died: a valid final result is taken at its word
    v = decide(Ended(1, final={"default": 0.5}), stop_reason=None, interrupted=lost)
    assert (v.outcome, v.metrics) == (Outcome.COMPLETE, {"default": 0.5})
    assert v.reason == f"result read from metrics.jsonl; {lost}"
    v = decide(Ended(1, final=None), stop_reason=None, interrupted=lost)
    assert (v.outcome, v.reason) == (Outcome.FAILED, lost)
    v = decide(Ended(1, final={"default": float("nan")}), stop_reason=None, interrupted=lost)
    assert v.outcome == Outcome.FAILED and "nan" in v.reason  # its own failure, not ours
    # watched to the end: a final result, then a non-zero exit, is a failure (metrics kept)
    v = decide(Ended(1, final={"default": 0.5}, exit_code=3, error="Traceback: boom"),
               stop_reason=None)
    assert v.outcome == Outcome.FAILED and v.reason.startswith("exit code 3")
    assert v.metrics == {"default": 0.5}
    # a signal is named, whether the runner read it behind a shell or from the exit status
    v = decide(Ended(1, final=None, exit_code=139, signal=11), stop_reason=None)
    assert v.reason == "killed by signal SIGSEGV"
    # spiketune sends SIGKILL only to trials it stops: any other says where to look
    v = decide(Ended(1, final=None, exit_code=-9), stop_reason=None)
    assert v.reason.startswith("killed by signal SIGKILL from outside spiketune (")
    assert "out-of-memory killer" in v.reason and "dmesg" in v.reason
    v = decide(Ended(1, final=None, exit_code=-9, error="Traceback"), stop_reason=None)
    assert v.reason.splitlines()[0].endswith("see dmesg); stderr tail:")
    v = decide(Ended(1, final=None, exit_code=-15), stop_reason=None)
    assert v.reason == "killed by signal SIGTERM"


# ------------------------------------------------------------------------------ stopped trials
@pytest.mark.slow
def test_a_trial_cut_by_max_duration_is_stopped(tmp_path: Path, exp_root: Path,
                                                trial_script) -> None:
    """max_duration ends the running trial: STOPPED, stored as Optuna FAIL with no value, and
    it keeps its claim on max_trials."""
    code = trial_script("""
        import time
        import spiketune.trial as st
        st.get_next_parameter()
        st.report_intermediate_result(0.25)
        time.sleep(60)
    """)
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                     max_trials=3, max_duration="1.5s", experiment_dir=exp_root,
                     tuner="Random", kill_grace=0.5)
    (record,) = exp.run().records
    assert record.outcome == Outcome.STOPPED
    assert record.reason.startswith("stopped: max_duration of 1.5 s reached")
    assert record.intermediate == [{"default": 0.25}]
    (trial,) = optuna.load_study(study_name=exp.id,
                                 storage=sqlite_url(exp.directory / "study.db")).get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL and trial.value is None
    assert exp.status == "done"
    again = Experiment.load(exp.directory).resume()  # the budget is spent: nothing more runs
    assert len(again.records) == 1


# ------------------------------------------------------------------------------ one session
def test_two_resumes_of_one_experiment_do_not_both_run(exp_root: Path, monkeypatch) -> None:
    """Two `resume` started at the same moment both pass the status check; the directory's
    lock lets one run and refuses the other with a message naming the holder."""
    gate = threading.Event()

    def waits(params: dict) -> float:
        gate.wait(30)
        return params["x"]

    exp = Experiment(trial=waits, search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                     max_trials=2, experiment_dir=exp_root, tuner="Random")
    errors: list[BaseException] = []

    def first() -> None:
        try:
            exp.run()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        wait_for(lambda: (exp.directory / "trials" / "0").is_dir(), 20, "the first session")
        # as when both commands read the status before either has written it
        monkeypatch.setattr(Experiment, "status", property(lambda self: "interrupted"))
        second = Experiment.load(exp.directory, trial=waits)
        with pytest.raises(StorageError) as err:
            second.resume()
        assert "already running in another process" in str(err.value)
        assert f"pid {os.getpid()}" in str(err.value) and exp.id in str(err.value)
    finally:
        gate.set()
        thread.join(30)
    assert not errors
    monkeypatch.undo()
    records = load_results(exp.directory).records
    assert [r.sequence_id for r in records] == [0, 1]  # only the first session ran trials
    again = Experiment.load(exp.directory, trial=waits).resume()  # and the lock is free again
    assert len(again.records) == 2


# ------------------------------------------------------------------------------ chaos
@pytest.mark.slow
def test_chaos_on_sqlite(tmp_path: Path) -> None:
    """The chaos benchmark, small: 12 trials (with seed 1, every kind of trial is among
    them), 3 kill -9 of the scheduler, each resumed."""
    import _chaos

    report = _chaos.run_sqlite(12, 3, seed=1, work=tmp_path, timeout=240)
    assert report.ok, report.text()
    assert report.kills >= 1 and report.records >= 12


# ------------------------------------------------------------------------------ changed config
def _two_objectives(params: dict) -> dict:
    x = params["x"]
    return {"default": x, "acc": x, "cost": x * x, "energy": 1.0 - x}


@pytest.mark.parametrize(("field", "value"), [
    ("objectives", [{"key": "acc", "direction": "maximize"},
                    {"key": "cost", "direction": "minimize"},
                    {"key": "energy", "direction": "minimize"}]),
    ("search_space", {"x": {"_type": "choice", "_value": ["a", "b"]}}),
])
def test_resume_refuses_a_configuration_that_changes_the_study(exp_root: Path, field: str,
                                                                value: object) -> None:
    """An ``experiment.json`` edited after the run: objectives or a search space other than the
    study's are refused by name before anything runs (three values in a study of two
    directions would break Optuna's reading of it); a larger budget is taken."""
    exp = Experiment(trial=_two_objectives, tuner="Random", seed=0, max_trials=2,
                     search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                     objectives=[{"key": "acc", "direction": "maximize"},
                                 {"key": "cost", "direction": "minimize"}],
                     experiment_dir=exp_root)
    exp.run()
    meta_path = exp.directory / "experiment.json"
    meta = json.loads(meta_path.read_text())
    meta["config"] = {**meta["config"], field: value, "max_trials": 4}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as refused:
        Experiment.load(exp.directory, trial=_two_objectives).resume()
    assert [p.field for p in refused.value.problems] == [field]
    assert "stored with other values" in str(refused.value)
    assert len(exp.results().records) == 2 and exp.status == "done"
    # back as stored: the larger budget alone is a resumed session's to change
    stored = StudyStore.open(sqlite_url(exp.directory / "study.db"), exp.id, read_only=True)
    meta["config"][field] = stored.study_attrs()["spiketune_config"][field]
    stored.close()
    meta_path.write_text(json.dumps(meta))
    results = Experiment.load(exp.directory, trial=_two_objectives).resume()
    assert len(results.records) == 4
    study = optuna.load_study(study_name=exp.id, storage=sqlite_url(exp.directory / "study.db"))
    assert all(len(t.values) == 2 for t in study.trials) and study.best_trials

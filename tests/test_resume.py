"""A scheduler killed with SIGKILL, then resumed; and a stop from another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import alive, wait_for
from typer.testing import CliRunner

from spiketune import Experiment, Outcome
from spiketune.cli import app
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






def _config(tmp_path: Path, code: Path, root: Path, max_trials: int) -> Path:
    cfg = tmp_path / "experiment.toml"
    cfg.write_text(
        f'name = "crashy"\n'
        f'trial_command = "python3 trial.py"\n'
        f'trial_code_directory = "{code}"\n'
        f'experiment_dir = "{root}"\n'
        f"max_trials = {max_trials}\n"
        f"concurrency = 2\n"
        f'tuner = "Random"\n'
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
    scheduler = _start_scheduler(_config(tmp_path, code, exp_root, max_trials=5), marker)
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
    assert after.elapsed_seconds > elapsed_before  # the duration budget went on
    assert exp.status == "done"


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
    assert [r.outcome for r in records] == [Outcome.COMPLETE, Outcome.FAILED, Outcome.FAILED]
    assert all(r.reason.startswith("stopped:") for r in records[1:])
    if how == "Ctrl-C":
        assert "SIGINT" in records[1].reason
    wait_for(lambda: not any(alive(p) for p in pids), 5, "the trials' children to end")
    assert not (directory / "stop").exists()
    assert json.loads((directory / "scheduler.json").read_text())["status"] == "stopped"

"""Runner conformance: every runner passes the same tests; then what only processes can do.

The trials are in ``_trials.py``: the in-process runner calls them, the subprocess runner runs
that file as the trial command, so each test below holds for both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _trials
import pytest
from _processes import alive, wait_for

from spiketune.engine.runners import (
    Ended,
    Event,
    InProcessRunner,
    Launch,
    Reported,
    Runner,
    StopReason,
    SubprocessRunner,
    signal_from_status,
)
from spiketune.errors import TrialError

TESTS = Path(__file__).resolve().parent
KINDS = ["subprocess", "inprocess"]
# Generous: two cores are shared with other work while the suite runs.
DEADLINE = 30.0

MakeRunner = Callable[..., Runner]


@pytest.fixture(params=KINDS)
def make_runner(request: pytest.FixtureRequest) -> Iterator[MakeRunner]:
    """``make_runner(trial_name, kill_grace=...)``: a runner of the parametrised kind for one
    of the trials of ``_trials.py``; closed after the test."""
    made: list[Runner] = []

    def make(name: str, kill_grace: float = 5.0) -> Runner:
        runner: Runner
        if request.param == "subprocess":
            runner = SubprocessRunner(f"python3 {TESTS / '_trials.py'} {name}", TESTS,
                                      kill_grace=kill_grace)
        else:
            runner = InProcessRunner(_trials.TRIALS[name])
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def _launch(tmp_path: Path, number: int = 0, params: dict[str, Any] | None = None,
            text: str | None = None) -> Launch:
    params = {} if params is None else params
    return Launch(number=number, sequence_id=number + 10, parameters=params,
                  parameters_json=json.dumps(params) if text is None else text,
                  trial_dir=tmp_path / "trials" / str(number), experiment_id="conf-0000abcd")


def _until_ended(runner: Runner, numbers: set[int], stop_after: dict[int, StopReason]
                 | None = None) -> dict[int, list[Event]]:
    """Poll until every trial in ``numbers`` has ended; stop a trial (with its reason) at its
    first report. Returns each trial's events in order."""
    events: dict[int, list[Event]] = {n: [] for n in numbers}
    stop_after = dict(stop_after or {})
    ended: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while ended != numbers:
        assert time.monotonic() < deadline, f"trials {numbers - ended} did not end"
        for ev in runner.poll(0.05):
            events[ev.number].append(ev)
            if isinstance(ev, Ended):
                assert ev.number not in ended, "a second Ended"
                ended.add(ev.number)
            elif ev.number in stop_after:
                runner.stop(ev.number, stop_after.pop(ev.number))
    return events


def _ended(events: list[Event]) -> Ended:
    last = events[-1]
    assert isinstance(last, Ended)
    assert all(isinstance(e, Reported) for e in events[:-1])  # Ended comes last, once
    return last


# ------------------------------------------------------------------------------ conformance
def test_reports_arrive_in_order_then_the_final(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("reporting")
    runner.start(_launch(tmp_path, params={"steps": 4}))
    events = _until_ended(runner, {0})[0]
    ended = _ended(events)
    assert [e.value for e in events[:-1]] == [{"default": float(s), "step": s}
                                              for s in (1, 2, 3, 4)]
    assert ended.final is not None and ended.final["default"] == 1.0
    assert ended.error is None and ended.protocol_errors == [] and ended.signal is None
    assert ended.exit_code in (0, None)


def test_parameters_arrive_byte_for_byte(make_runner: MakeRunner, tmp_path: Path) -> None:
    params = {"lr": 0.1 + 0.2, "name": "τ_mem ü", "nested": {"_name": "adam", "b": [1, 2.5]},
              "big": 12345678901234567890, "steps": 0}
    text = json.dumps(params)
    runner = make_runner("reporting")
    launch = _launch(tmp_path, params=params, text=text)
    runner.start(launch)
    ended = _ended(_until_ended(runner, {0})[0])
    assert (launch.trial_dir / "parameter.json").read_bytes() == text.encode("utf-8")
    assert ended.final is not None and ended.final["params"] == params


def test_the_trial_knows_who_it_is(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("reporting")
    launch = _launch(tmp_path, number=7, params={"steps": 0})
    runner.start(launch)
    final = _ended(_until_ended(runner, {7})[7]).final
    assert final is not None
    assert (final["trial_id"], final["experiment_id"], final["sequence_id"]) == (
        "7", "conf-0000abcd", 17)
    assert final["trial_dir"] == str(launch.trial_dir)


def test_only_the_first_final_result_counts(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("two_finals")
    runner.start(_launch(tmp_path))
    final = _ended(_until_ended(runner, {0})[0]).final
    assert final == {"default": 1.0, "which": "first"}


def test_a_crash_ends_with_its_error(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("crash")
    runner.start(_launch(tmp_path))
    events = _until_ended(runner, {0})[0]
    ended = _ended(events)
    assert [e.value for e in events[:-1]] == [{"default": 0.5}]
    assert ended.final is None
    assert ended.error is not None and "boom in layer 3" in ended.error
    assert ended.exit_code in (1, None) and ended.signal is None


@pytest.mark.parametrize("reason", list(StopReason))
def test_stop_ends_the_trial_for_each_reason(make_runner: MakeRunner, tmp_path: Path,
                                             reason: StopReason) -> None:
    runner = make_runner("endless", kill_grace=2.0)
    launch = _launch(tmp_path)
    runner.start(launch)
    t0 = time.monotonic()
    events = _until_ended(runner, {0}, stop_after={0: reason})[0]
    ended = _ended(events)
    assert time.monotonic() - t0 < DEADLINE
    assert ended.final is None
    assert not (launch.trial_dir / "finished").exists()
    assert ended.stopped or ended.signal == signal.SIGTERM


def test_concurrent_trials_keep_their_own_events(make_runner: MakeRunner,
                                                 tmp_path: Path) -> None:
    runner = make_runner("reporting")
    for n in range(3):
        runner.start(_launch(tmp_path, number=n, params={"steps": n + 1, "n": n}))
    events = _until_ended(runner, {0, 1, 2})
    for n in range(3):
        ended = _ended(events[n])
        assert len(events[n]) == n + 2
        assert ended.final is not None and ended.final["params"]["n"] == n


def test_stopping_an_ended_trial_does_nothing(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("reporting")
    runner.start(_launch(tmp_path, params={"steps": 0}))
    _until_ended(runner, {0})
    runner.stop(0, StopReason.STOP)
    runner.stop(0, StopReason.STOP, force=True)
    assert runner.poll(0.01) == []


def test_close_ends_what_still_runs(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner("endless", kill_grace=1.0)
    launch = _launch(tmp_path)
    runner.start(launch)
    deadline = time.monotonic() + DEADLINE
    while not any(isinstance(e, Reported) for e in runner.poll(0.05)):
        assert time.monotonic() < deadline, "no report"
    runner.close()
    steps = launch.trial_dir / "steps.log"
    wait_for(lambda: _unchanged_for(steps, 0.5), DEADLINE, "the trial to stop stepping")
    assert not (launch.trial_dir / "finished").exists()


def _unchanged_for(path: Path, seconds: float) -> bool:
    before = path.read_text()
    time.sleep(seconds)
    return path.read_text() == before


# ------------------------------------------------------------------------------ processes
def _subprocess_runner(name: str, kill_grace: float = 5.0) -> SubprocessRunner:
    return SubprocessRunner(f"python3 {TESTS / '_trials.py'} {name}", TESTS,
                            kill_grace=kill_grace)


def test_subprocess_environment(tmp_path: Path) -> None:
    runner = SubprocessRunner(
        f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'", tmp_path)
    launch = Launch(number=3, sequence_id=5, parameters={}, parameters_json="{}",
                    trial_dir=tmp_path / "exp" / "trials" / "3", experiment_id="e-1", gpu=2)
    runner.start(launch)
    _until_ended(runner, {3})
    runner.close()
    env = json.loads((launch.trial_dir / "stdout.log").read_text())
    assert {k: env[k] for k in ("SPIKETUNE_TRIAL_DIR", "SPIKETUNE_TRIAL_ID",
                                "SPIKETUNE_EXPERIMENT_ID", "SPIKETUNE_SEQUENCE_ID",
                                "SPIKETUNE_EXPERIMENT_DIR", "CUDA_VISIBLE_DEVICES",
                                "NNI_PLATFORM", "NNI_EXP_ID", "NNI_TRIAL_JOB_ID",
                                "NNI_TRIAL_SEQ_ID", "NNI_SYS_DIR", "NNI_OUTPUT_DIR")} == {
        "SPIKETUNE_TRIAL_DIR": str(launch.trial_dir), "SPIKETUNE_TRIAL_ID": "3",
        "SPIKETUNE_EXPERIMENT_ID": "e-1", "SPIKETUNE_SEQUENCE_ID": "5",
        "SPIKETUNE_EXPERIMENT_DIR": str(tmp_path / "exp"), "CUDA_VISIBLE_DEVICES": "2",
        "NNI_PLATFORM": "local", "NNI_EXP_ID": "e-1", "NNI_TRIAL_JOB_ID": "3",
        "NNI_TRIAL_SEQ_ID": "5", "NNI_SYS_DIR": str(launch.trial_dir),
        "NNI_OUTPUT_DIR": str(launch.trial_dir)}
    assert env["PYTHONPATH"].split(os.pathsep)[0].endswith(os.path.join("spiketune", "compat"))
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert "SPIKETUNE_PARAMETERS" not in env
    info = json.loads((launch.trial_dir / "process.json").read_text())
    assert info["pgid"] == info["pid"] and info["scheduler_pid"] == os.getpid()


def test_subprocess_runner_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(TrialError, match="empty"):
        SubprocessRunner("  ", tmp_path)
    with pytest.raises(TrialError, match=r"kill_grace.*-1"):
        SubprocessRunner("true", tmp_path, kill_grace=-1)


@pytest.mark.parametrize("reason", list(StopReason))
def test_sigterm_grace_is_honoured_through_the_shell(tmp_path: Path, reason: StopReason) -> None:
    """A shell that runs the program as its child (not the last command: bash does not exec
    it) dies of SIGTERM at once; the program still gets its grace period to save a
    checkpoint, and the trial ends only after it has."""
    runner = SubprocessRunner(f"python3 {TESTS / '_trials.py'} checkpoint_on_sigterm; true",
                              TESTS, kill_grace=10.0)
    launch = _launch(tmp_path)
    runner.start(launch)
    try:
        events = _until_ended(runner, {0}, stop_after={0: reason})[0]
    finally:
        runner.close()
    ended = _ended(events)
    assert (launch.trial_dir / "sigterm.log").read_text() == "saving\nsaved\n"
    assert ended.signal == signal.SIGTERM  # the shell's death; the program exited 0


def test_grace_ends_with_sigkill(tmp_path: Path) -> None:
    """A process that ignores SIGTERM is killed when the grace period is over."""
    code = tmp_path / "stubborn.py"
    code.write_text(textwrap.dedent("""
        import signal, sys, time
        import spiketune.trial as st
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        st.report_intermediate_result(1.0)
        time.sleep(60)
    """))
    runner = SubprocessRunner(f"python3 {code}; true", tmp_path, kill_grace=0.5)
    runner.start(_launch(tmp_path))
    t0 = time.monotonic()
    try:
        ended = _ended(_until_ended(runner, {0}, stop_after={0: StopReason.TIMEOUT})[0])
    finally:
        runner.close()
    assert 0.4 < time.monotonic() - t0 < DEADLINE
    assert ended.signal == signal.SIGTERM  # the shell; its child died of the SIGKILL


def test_leftovers_of_a_trial_that_ended_get_sigterm_and_grace(tmp_path: Path) -> None:
    """The leader exits by itself while a child it left behind still runs: the child gets
    SIGTERM and its grace period, and the trial ends once it is gone."""
    code = tmp_path / "leaves.py"
    code.write_text(textwrap.dedent("""
        import subprocess, sys
        import spiketune.trial as st
        d = st.get_trial_dir()
        child = (
            "import pathlib, signal, sys, time\\n"
            "log = pathlib.Path(sys.argv[1])\\n"
            "def term(*_):\\n"
            "    log.write_text('term\\\\n'); time.sleep(0.5)\\n"
            "    log.write_text('term\\\\nclean\\\\n'); sys.exit(0)\\n"
            "signal.signal(signal.SIGTERM, term)\\n"
            "(log.parent / 'child-ready').write_text('y')\\n"
            "time.sleep(60)\\n"
        )
        subprocess.Popen([sys.executable, "-c", child, str(d / "child.log")])
        import time
        while not (d / "child-ready").exists():
            time.sleep(0.01)
        st.report_final_result(1.0)
    """))
    runner = SubprocessRunner(f"python3 {code}", tmp_path, kill_grace=10.0)
    launch = _launch(tmp_path)
    runner.start(launch)
    try:
        ended = _ended(_until_ended(runner, {0})[0])
    finally:
        runner.close()
    assert ended.exit_code == 0 and ended.final == {"default": 1.0}
    assert (launch.trial_dir / "child.log").read_text() == "term\nclean\n"


def test_a_signal_death_is_named(tmp_path: Path) -> None:
    runner = _subprocess_runner("segfault")
    runner.start(_launch(tmp_path))
    ended = _ended(_until_ended(runner, {0})[0])
    runner.close()
    assert ended.signal == signal.SIGSEGV
    assert ended.exit_code == -signal.SIGSEGV  # bash execs a lone command: its own death


def test_a_signal_death_through_the_shell_is_named(tmp_path: Path) -> None:
    runner = SubprocessRunner(f"python3 {TESTS / '_trials.py'} segfault; exit $?", TESTS)
    runner.start(_launch(tmp_path))
    ended = _ended(_until_ended(runner, {0})[0])
    runner.close()
    assert ended.signal == signal.SIGSEGV
    assert ended.exit_code == 128 + signal.SIGSEGV  # how a shell reports its child's death


def test_trial_commands_run_under_bash_as_in_nni(tmp_path: Path) -> None:
    """NNI's local training service runs the trial command with bash: ``source``, ``[[ ]]``
    and ``&>`` in a copied NNI config work here too."""
    (tmp_path / "env.sh").write_text("export GREETING=hello\n")
    runner = SubprocessRunner(
        "source env.sh && [[ -f env.sh ]] && python3 -c 'import os, spiketune.trial as st; "
        "st.report_final_result(float(len(os.environ[\"GREETING\"])))' &> out.log",
        tmp_path)
    assert runner.shell.endswith("bash")
    runner.start(_launch(tmp_path))
    ended = _ended(_until_ended(runner, {0})[0])
    runner.close()
    assert ended.exit_code == 0, (tmp_path / "out.log").read_text()
    assert ended.final == {"default": 5.0}


def test_a_plain_exit_code_is_no_signal(tmp_path: Path) -> None:
    runner = _subprocess_runner("exit_code")
    runner.start(_launch(tmp_path, params={"code": 3}))
    ended = _ended(_until_ended(runner, {0})[0])
    runner.close()
    assert (ended.exit_code, ended.signal) == (3, None)


def test_signal_from_status() -> None:
    assert signal_from_status(-11, shell=False) == signal.SIGSEGV
    assert signal_from_status(-9, shell=True) == signal.SIGKILL
    assert signal_from_status(139, shell=True) == signal.SIGSEGV
    assert signal_from_status(139, shell=False) is None
    assert signal_from_status(128, shell=True) is None
    assert signal_from_status(1, shell=True) is None
    assert signal_from_status(0, shell=True) is None
    assert signal_from_status(None, shell=True) is None
    assert signal_from_status(255, shell=True) is None  # beyond the last signal


def test_a_child_that_left_the_session_is_ended_with_the_trial(tmp_path: Path) -> None:
    """A child started with ``start_new_session=True`` leaves the trial's process group; the
    runner saw it while the trial ran, and ends it with the trial."""
    runner = _subprocess_runner("escaped_child")
    launch = _launch(tmp_path, params={"wait": 2.5})
    runner.start(launch)
    try:
        ended = _ended(_until_ended(runner, {0})[0])
    finally:
        runner.close()
    assert ended.final == {"default": 1.0}
    pid = int((launch.trial_dir / "escaped.pid").read_text())
    wait_for(lambda: not alive(pid), 10, "the escaped child to end")


SUBREAPER_SCRIPT = """
import json, sys, time
from pathlib import Path
from spiketune.engine.runners import Launch, SubprocessRunner, become_subreaper
from spiketune.engine.runners._processes import is_subreaper

made = become_subreaper() if sys.argv[2] == "yes" else False
trial_dir = Path(sys.argv[1])
runner = SubprocessRunner(sys.argv[3], Path(sys.argv[4]), kill_grace=2.0)
params = {"double_fork": True, "wait": 0.0}
runner.start(Launch(0, 0, params, json.dumps(params), trial_dir, "sub-0000abcd"))
ended = None
deadline = time.monotonic() + 30
while ended is None and time.monotonic() < deadline:
    for ev in runner.poll(0.05):
        if ev.__class__.__name__ == "Ended":
            ended = ev
pid = int((trial_dir / "escaped.pid").read_text())
runner.close()
print(json.dumps({"subreaper": made and is_subreaper(), "final": ended.final, "pid": pid}))
"""


@pytest.mark.parametrize("subreaper", [True, False])
def test_an_orphan_comes_back_to_a_subreaper_and_is_ended(tmp_path: Path,
                                                          subreaper: bool) -> None:
    """A trial's double-forked daemon is orphaned at once, never seen below the trial. In a
    child subreaper (the command line) it is adopted and ended with the trial; elsewhere it
    goes to init and survives: the documented limit."""
    script = tmp_path / "scheduler.py"
    script.write_text(SUBREAPER_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "trial"), "yes" if subreaper else "no",
         f"python3 {TESTS / '_trials.py'} escaped_child", str(TESTS)],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["final"] == {"default": 1.0}
    assert result["subreaper"] is subreaper
    pid = result["pid"]
    try:
        if subreaper:
            wait_for(lambda: not alive(pid), 10, "the orphan to end")
        else:
            assert alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------ liveness
def test_process_alive_knows_a_process_by_pid_and_start_time() -> None:
    import psutil

    from spiketune.engine.runners import process_alive, process_start_time

    me = os.getpid()
    started = process_start_time(me)
    assert started is not None and abs(started - psutil.Process(me).create_time()) < 1e-6
    assert process_alive(me, started)
    assert process_alive(me, None)  # the pid alone
    assert not process_alive(me, started - 3600)  # another process that had this pid
    # a start time written by an older version: clock ticks since boot
    ticks = round((started - psutil.boot_time()) * os.sysconf("SC_CLK_TCK"))
    assert process_alive(me, ticks)
    for bad in (0, -1, "12", None, True, 1.5):
        assert not process_alive(bad, None)


def test_a_process_that_exited_is_not_alive() -> None:
    from spiketune.engine.runners import process_alive, process_start_time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(child.pid)
    wait_for(lambda: not alive(child.pid), DEADLINE, "the child to exit")
    assert not process_alive(child.pid, started)  # a zombie: exited, not yet collected
    child.wait()
    assert not process_alive(child.pid, started)
    assert process_start_time(child.pid) is None


def test_a_process_that_survives_sigkill_does_not_hold_the_trial_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stuck in the kernel outlives SIGKILL; the trial is reported ended anyway,
    naming it. (Here the signals are withheld to stand for such a process.)"""
    from spiketune.engine.runners import _subprocess

    code = tmp_path / "leaves.py"
    code.write_text(textwrap.dedent("""
        import subprocess, sys
        import spiketune.trial as st
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        (st.get_trial_dir() / "child.pid").write_text(str(child.pid))
    """))
    monkeypatch.setattr(_subprocess, "_UNKILLABLE_WAIT", 0.5)
    monkeypatch.setattr(_subprocess, "killpg", lambda pgid, sig: None)
    monkeypatch.setattr(_subprocess, "signal_outside_group", lambda *a, **k: [])
    runner = SubprocessRunner(f"python3 {code}", tmp_path, kill_grace=0.2)
    launch = _launch(tmp_path)
    runner.start(launch)
    try:
        ended = _ended(_until_ended(runner, {0})[0])
        child = int((launch.trial_dir / "child.pid").read_text())
        assert ended.error is not None and f"[{child}]" in ended.error
        assert "did not end" in ended.error
    finally:
        child = int((launch.trial_dir / "child.pid").read_text())
        if alive(child):
            os.kill(child, signal.SIGKILL)
        runner.close()

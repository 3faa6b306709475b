"""Trials for the runner tests, each usable in-process and as a process.

In-process, the runner calls ``TRIALS[name](params)``. As a process, the trial command is
``python3 <this file> NAME``: the same function runs with the parameters of ``parameter.json``,
and what it returns is reported as the final result. Standard library only, like a trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import spiketune.trial as st


def reporting(params: dict[str, Any]) -> dict[str, Any]:
    """Reports ``params["steps"]`` intermediate results 1, 2, ...; returns what it received."""
    for step in range(1, int(params.get("steps", 3)) + 1):
        st.report_intermediate_result({"default": float(step), "step": step})
    return {
        "default": 1.0,
        "params": st.get_next_parameter(),
        "trial_id": st.get_trial_id(),
        "experiment_id": st.get_experiment_id(),
        "sequence_id": st.get_sequence_id(),
        "trial_dir": str(st.get_trial_dir()),
    }


def two_finals(params: dict[str, Any]) -> None:
    """Only the first final result counts."""
    st.report_final_result({"default": 1.0, "which": "first"})
    st.report_final_result({"default": 2.0, "which": "second"})


def crash(params: dict[str, Any]) -> None:
    """Reports once, then raises."""
    st.report_intermediate_result(0.5)
    raise RuntimeError("boom in layer 3")


def endless(params: dict[str, Any]) -> None:
    """Reports every 20 ms for a minute, and notes each step in ``steps.log``; writes
    ``finished`` if it ever gets there."""
    d = Path(str(st.get_trial_dir()))
    deadline = time.monotonic() + 60
    step = 0
    while time.monotonic() < deadline:
        step += 1
        with open(d / "steps.log", "a") as f:
            f.write(f"{step}\n")
        st.report_intermediate_result(float(step))
        time.sleep(0.02)
    (d / "finished").write_text("yes")


def checkpoint_on_sigterm(params: dict[str, Any]) -> None:
    """On SIGTERM: writes a line, takes 1 s to save a checkpoint, writes a second line."""
    log = Path(str(st.get_trial_dir())) / "sigterm.log"

    def on_term(_signum: int, _frame: Any) -> None:
        with open(log, "a") as f:
            f.write("saving\n")
        time.sleep(1.0)
        with open(log, "a") as f:
            f.write("saved\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    (Path(str(st.get_trial_dir())) / "ready").write_text("yes")
    st.report_intermediate_result(-1.0)
    time.sleep(60)


def segfault(params: dict[str, Any]) -> None:
    """Dies of SIGSEGV."""
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_code(params: dict[str, Any]) -> None:
    """Exits with ``params["code"]``."""
    sys.exit(int(params["code"]))


def escaped_child(params: dict[str, Any]) -> float:
    """Starts a process that leaves the trial's session and outlives the trial, records its pid
    in ``escaped.pid``, waits ``params["wait"]`` seconds and ends.

    With ``params["double_fork"]`` the process is orphaned at once (its parent exits), so it
    is never seen below the trial.
    """
    d = Path(str(st.get_trial_dir()))
    sleeper = "import time; time.sleep(60)"
    if params.get("double_fork"):
        code = (
            "import subprocess, sys\n"
            f"p = subprocess.Popen([sys.executable, '-c', {sleeper!r}], start_new_session=True,\n"
            "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(p.pid)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        pid = int(out.stdout)
    else:
        pid = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True).pid
    (d / "escaped.pid").write_text(str(pid))
    time.sleep(float(params.get("wait", 0.0)))
    return 1.0


TRIALS: dict[str, Callable[[dict[str, Any]], Any]] = {
    f.__name__: f
    for f in (reporting, two_finals, crash, endless, checkpoint_on_sigterm, segfault, exit_code,
              escaped_child)
}


if __name__ == "__main__":
    result = TRIALS[sys.argv[1]](st.get_next_parameter())
    if result is not None:
        st.report_final_result(result)

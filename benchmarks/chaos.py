"""Chaos: ``kill -9`` schedulers and workers at random moments, then check that nothing is lost.

    .venv/bin/python benchmarks/chaos.py [--trials 200] [--kills 30] [--seed 0]
                                         [--storage sqlite|postgresql|both]
                                         [--workers 3] [--postgres URL] [--keep DIR]

The workload is an experiment of ``--trials`` short trial processes (``max_trial_duration``
1.5 s, ``max_retries`` 2, concurrency 2 per scheduler). Each trial's kind is drawn from its
sequence id: most sleep 0.2-1 s and report a result; some crash before reporting (exit 3);
some report and then exit 4; some run past the time limit; some catch SIGTERM and write a
checkpoint in 0.3 s (begin/end lines), half of those after running past the limit.

* ``sqlite``: one ``spiketune run``; ``--kills`` times, at a random moment 0.3-3 s after
  the last (re)start, the scheduler gets SIGKILL and ``spiketune resume`` starts at once.
* ``postgresql``: ``--workers`` ``spiketune worker`` processes on one PostgreSQL study; each
  fault, 0.2-2 s after the last, kills one of them (chosen at random) and starts a new
  worker. Without ``--postgres`` a throwaway server is started as the tests do
  (``tests/_postgres.py``), when possible.

At the end it checks, and prints (target: every count zero):

* ``missing slots`` / ``extra slots``: the trial slots (``sequence_id``) are exactly
  ``0 .. trials - 1``; ``slots without one final record``: each slot has one record that no
  retry replaced (retries of lost trials are fine, and counted);
* ``duplicate numbers`` and ``unfinished`` (RUNNING or WAITING) trials;
* ``lost results``: trials whose ``metrics.jsonl`` holds a final result and that are not
  COMPLETE with exactly those values, unless they are known to have failed (``exit code`` or
  ``killed by signal``, seen by a live scheduler); ``unfounded results``: COMPLETE trials
  without a final report in their ``metrics.jsonl``;
* ``cut checkpoints``: trials that caught SIGTERM and did not finish writing their checkpoint;
* ``leftover processes``: processes of the experiment (schedulers, workers, trials and
  anything they started) alive once the last scheduler has exited.

:func:`run_sqlite` and :func:`run_workers` are what the test suite calls, with small sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

TRIAL = """\
import os, random, signal, sys, time
import spiketune.trial as st

params = st.get_next_parameter()
seq = st.get_sequence_id()
trial_dir = st.get_trial_dir()
rng = random.Random(f"{os.environ['CHAOS_SEED']}:{seq}")
draw = rng.random()
kind = ("ok" if draw < 0.55 else "crash" if draw < 0.65 else "fails-after-result"
        if draw < 0.70 else "overrun" if draw < 0.80 else "checkpoint")
run = rng.uniform(0.2, 1.0)
if kind == "overrun" or (kind == "checkpoint" and rng.random() < 0.5):
    run = 5.0  # past max_trial_duration

def checkpoint(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once, whoever sends it again
    with open(trial_dir / "checkpoint.txt", "a") as f:
        f.write("begin\\n")
    time.sleep(0.3)
    with open(trial_dir / "checkpoint.txt", "a") as f:
        f.write("end\\n")
    sys.exit(0)

if kind == "checkpoint":
    signal.signal(signal.SIGTERM, checkpoint)
time.sleep(run / 2)
st.report_intermediate_result(params["x"] / 2)
time.sleep(run / 2)
if kind == "crash":
    sys.exit(3)
st.report_final_result({"default": params["x"], "seq": seq, "token": os.urandom(4).hex()})
if kind == "fails-after-result":
    sys.exit(4)
"""

_KNOWN_FAILURES = ("exit code", "killed by signal")


@dataclass
class Report:
    """What one chaos run found; :attr:`ok` when every count of a failure is zero."""

    storage: str
    trials: int
    kills: int = 0
    restarts: int = 0
    seconds: float = 0.0
    records: int = 0
    retries: int = 0
    recovered: int = 0  # COMPLETE from metrics.jsonl, after their scheduler died
    outcomes: dict[str, int] = field(default_factory=dict)
    missing_slots: list[int] = field(default_factory=list)
    extra_slots: list[Any] = field(default_factory=list)
    slots_without_one_final: list[int] = field(default_factory=list)
    duplicate_numbers: int = 0
    unfinished: list[int] = field(default_factory=list)
    lost_results: list[str] = field(default_factory=list)
    unfounded_results: list[str] = field(default_factory=list)
    cut_checkpoints: list[int] = field(default_factory=list)
    checkpoints: int = 0
    leftover_processes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, int]:
        """Every property checked, with the number of times it did not hold."""
        return {
            "missing slots": len(self.missing_slots),
            "extra slots": len(self.extra_slots),
            "slots without one final record": len(self.slots_without_one_final),
            "duplicate numbers": self.duplicate_numbers,
            "unfinished trials": len(self.unfinished),
            "lost results": len(self.lost_results),
            "unfounded results": len(self.unfounded_results),
            "cut checkpoints": len(self.cut_checkpoints),
            "leftover processes": len(self.leftover_processes),
        }

    @property
    def ok(self) -> bool:
        return not any(self.failures.values())

    def text(self) -> str:
        outcomes = ", ".join(f"{n} {k.lower()}" for k, n in sorted(self.outcomes.items()))
        lines = [
            f"{self.storage}: {self.trials} trial slots, {self.kills} kill -9, "
            f"{self.restarts} (re)starts, {self.seconds:.0f} s",
            f"  {self.records} records ({outcomes}), {self.retries} retries of lost trials, "
            f"{self.checkpoints} checkpoints written on SIGTERM",
            f"  {self.recovered} trials recorded COMPLETE from their metrics.jsonl after their "
            "scheduler died",
        ]
        for name, count in self.failures.items():
            lines.append(f"  {name:32s} {count}")
        details = (self.missing_slots, self.extra_slots, self.slots_without_one_final,
                   self.unfinished, self.lost_results, self.unfounded_results,
                   self.cut_checkpoints, self.leftover_processes)
        for items in details:
            lines += [f"    {item}" for item in items[:5]]
        return "\n".join(lines)


# ------------------------------------------------------------------------------ set-up
def _write_experiment(work: Path, trials: int, storage: str | None) -> Path:
    """The trial script and the experiment's config under ``work``; the config's path."""
    code = work / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "trial.py").write_text(TRIAL, encoding="utf-8")
    cfg = work / "chaos.toml"
    cfg.write_text(textwrap.dedent(f"""\
        name = "chaos"
        trial_command = "python3 trial.py"
        trial_code_directory = "{code}"
        experiment_dir = "{work / 'experiments'}"
        max_trials = {trials}
        max_trial_duration = "1.5s"
        concurrency = 2
        tuner = "Random"
        max_retries = 2
        heartbeat_interval = "0.5s"
        grace_period = "10s"
        {'' if storage is None else f'storage = "{storage}"'}
        [search_space]
        x = {{_type = "uniform", _value = [0, 1]}}
    """), encoding="utf-8")
    return cfg


def _spiketune(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``spiketune`` command in a session of its own (so that SIGKILL hits it alone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "spiketune.cli", *args, "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``proc``; True once it has exited."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _experiment_dir(work: Path) -> Path | None:
    found = sorted((work / "experiments").glob("*/experiment.json"))
    return found[0].parent if found else None


def _until(cond: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    """Wait for a scheduler to end by itself; raise with its stderr if it fails."""
    if not _wait(proc, seconds):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"{what} did not finish within {seconds:g} s")
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}: {err[-2000:]}")


# ------------------------------------------------------------------------------ runs
def run_sqlite(trials: int, kills: int, *, seed: int = 0, work: Path,
               timeout: float = 1800.0) -> Report:
    """One scheduler on SQLite, killed ``kills`` times and resumed each time."""
    rng = random.Random(seed)
    cfg = _write_experiment(work, trials, None)
    env = dict(os.environ, CHAOS_SEED=str(seed))
    report = Report("sqlite, one scheduler", trials)
    started = time.monotonic()
    deadline = started + timeout
    proc = _spiketune(["run", str(cfg)], env)
    report.restarts = 1
    procs = [proc]
    _until(lambda: (d := _experiment_dir(work)) is not None and (d / "trials" / "0").is_dir(),
           60, "the first trial")
    directory = _experiment_dir(work)
    assert directory is not None
    while report.kills < kills:
        if _wait(proc, rng.uniform(0.3, 3.0)):
            break  # the budget is spent: the last kills have nothing left to hit
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        report.kills += 1
        proc = _spiketune(["resume", str(directory)], env)
        report.restarts += 1
        procs.append(proc)
        if time.monotonic() > deadline:
            break
    _finish(proc, max(60.0, deadline - time.monotonic()), "the last session")
    report.seconds = time.monotonic() - started
    url = f"sqlite:///{directory / 'study.db'}"
    check(report, url, directory.name, [directory], procs, work)
    return report


def run_workers(url: str, trials: int, kills: int, *, workers: int = 3, seed: int = 0,
                work: Path, env: dict[str, str] | None = None,
                timeout: float = 1800.0) -> Report:
    """``workers`` workers on the database ``url`` (its password in ``env``); each fault
    kills one of them and starts a new one."""
    rng = random.Random(seed)
    cfg = _write_experiment(work, trials, None)
    env = dict(os.environ, **(env or {}), CHAOS_SEED=str(seed))
    report = Report(f"PostgreSQL, {workers} workers", trials)
    started = time.monotonic()
    deadline = started + timeout
    args = ["worker", str(cfg), "--storage", url]
    live = [_spiketune(args, env) for _ in range(workers)]
    procs = list(live)
    report.restarts = workers
    _until(lambda: (d := _experiment_dir(work)) is not None and any((d / "trials").glob("*")),
           60, "the first trial")
    directory = _experiment_dir(work)
    assert directory is not None
    while report.kills < kills and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 2.0))  # more often: the workers' trials run 3 times as fast
        live = [p for p in live if p.poll() is None]
        if not live:
            break  # every worker has finished: the budget is spent
        victim = rng.choice(live)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        report.kills += 1
        live.remove(victim)
        fresh = _spiketune(args, env)
        live.append(fresh)
        procs.append(fresh)
        report.restarts += 1
    for proc in live:
        _finish(proc, max(60.0, deadline - time.monotonic()), "a worker")
    report.seconds = time.monotonic() - started
    check(report, url, directory.name, [directory], procs, work, env)
    return report


# ------------------------------------------------------------------------------ checks
def check(report: Report, url: str, study_name: str, directories: Iterable[Path],
          procs: Iterable[subprocess.Popen[bytes]], work: Path,
          env: dict[str, str] | None = None) -> None:
    """Fill ``report`` from the study (read with plain Optuna) and the trial directories."""
    import optuna

    from spiketune.engine.storage import resolve_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        study = optuna.load_study(study_name=study_name, storage=resolve_url(url))
        trials = study.get_trials(deepcopy=False)
    finally:
        os.environ.clear()
        os.environ.update(old)
    report.records = len(trials)
    outcomes: dict[str, int] = defaultdict(int)
    for t in trials:
        outcomes[str(t.user_attrs.get("outcome", t.state.name))] += 1
    report.outcomes = dict(outcomes)
    _check_slots(report, trials)
    for t in trials:
        _check_result(report, t)
    for directory in directories:
        for ckpt in sorted((directory / "trials").glob("*/checkpoint.txt")):
            lines = ckpt.read_text().split()
            report.checkpoints += "end" in lines
            if "begin" in lines and "end" not in lines:
                report.cut_checkpoints.append(int(ckpt.parent.name))
    report.leftover_processes = leftovers(work, procs)


def _check_slots(report: Report, trials: list[Any]) -> None:
    numbers = [t.number for t in trials]
    report.duplicate_numbers = len(numbers) - len(set(numbers))
    report.unfinished = [t.number for t in trials if not t.state.is_finished()]
    slots: dict[Any, list[Any]] = defaultdict(list)
    for t in trials:
        slots[t.user_attrs.get("sequence_id")].append(t)
    report.missing_slots = [s for s in range(report.trials) if s not in slots]
    report.extra_slots = [s for s in slots if s not in range(report.trials)]
    # A record is replaced when a retry of it exists: same first trial, next attempt.
    retried = {(t.user_attrs["retry_of"], int(t.user_attrs["attempt"]) - 1)
               for t in trials if "retry_of" in t.user_attrs}
    report.retries = len(retried)
    for slot, records in slots.items():
        final = [t for t in records
                 if (t.user_attrs.get("retry_of", t.number), int(t.user_attrs.get("attempt", 0)))
                 not in retried]
        if len(final) != 1:
            report.slots_without_one_final.append(slot)


def _check_result(report: Report, trial: Any) -> None:
    import optuna

    trial_dir = trial.user_attrs.get("trial_dir")
    final = None if trial_dir is None else _final_report(Path(trial_dir) / "metrics.jsonl")
    complete = trial.state == optuna.trial.TrialState.COMPLETE
    metrics = trial.user_attrs.get("metrics")
    reason = str(trial.user_attrs.get("reason") or "")
    kept = complete and metrics == final and trial.value == (final or {}).get("default")
    if final is not None and not kept and not reason.startswith(_KNOWN_FAILURES):
        report.lost_results.append(
            f"trial {trial.number}: {trial.state.name} {reason[:100]!r}, reported {final}")
    report.recovered += complete and reason.startswith("result read from metrics.jsonl")
    if complete and final is None:
        report.unfounded_results.append(f"trial {trial.number}: {metrics} without a report")


def _final_report(path: Path) -> dict[str, Any] | None:
    """The first final report of a ``metrics.jsonl``, read without spiketune's parser."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "final":
            value = obj.get("value")
            return value if isinstance(value, dict) else {"default": value}
    return None


def leftovers(work: Path, procs: Iterable[subprocess.Popen[bytes]]) -> list[str]:
    """Processes of the run still alive: the schedulers and workers started, and every
    process whose environment names a trial directory under ``work``."""
    import psutil

    found = [f"scheduler pid {p.pid}" for p in procs if p.poll() is None]
    prefix = str(work)
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            trial_dir = proc.environ().get("SPIKETUNE_TRIAL_DIR", "")
            if trial_dir.startswith(prefix):
                found.append(f"pid {proc.pid} of {trial_dir}: {' '.join(proc.cmdline())}")
        except psutil.Error:
            continue
    return found


# ------------------------------------------------------------------------------ main
def _postgres(args: argparse.Namespace) -> tuple[str, dict[str, str], Any] | None:
    """(URL without password, environment with it, server to stop or None), or None."""
    from spiketune.engine.storage import PASSWORD_ENV, strip_password, url_password

    if args.postgres:
        return (strip_password(args.postgres),
                {PASSWORD_ENV: url_password(args.postgres) or ""}, None)
    sys.path.insert(0, str(REPO / "tests"))
    import _postgres

    try:
        server = _postgres.start()
    except _postgres.Unavailable as e:
        print(f"PostgreSQL skipped: {e}")
        return None
    url = server.new_database()
    return strip_password(url), {PASSWORD_ENV: server.password}, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: start a throwaway server)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    reports = []
    with tempfile.TemporaryDirectory(prefix="spiketune-chaos-") as tmp:
        base = args.keep or Path(tmp)
        if args.storage in ("sqlite", "both"):
            reports.append(run_sqlite(args.trials, args.kills, seed=args.seed,
                                      work=base / "sqlite"))
            print(reports[-1].text(), flush=True)
        if args.storage in ("postgresql", "both"):
            found = _postgres(args)
            if found is not None:
                url, env, server = found
                try:
                    reports.append(run_workers(url, args.trials, args.kills,
                                               workers=args.workers, seed=args.seed,
                                               work=base / "postgresql", env=env))
                finally:
                    if server is not None:
                        server.stop()
                print(reports[-1].text(), flush=True)
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

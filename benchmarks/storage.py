"""Storage cost of one trial: spiketune's one-transaction writes against Optuna's public calls.

    .venv/bin/python benchmarks/storage.py [--trials 200] [--repeat 3] [--no-postgresql]

Per trial, both paths do what the scheduler does for an in-process trial: claim a slot, start
the trial (two float parameters, two attributes, its directory), renew its heartbeat once, and
record its end (COMPLETE, one value, 3 intermediate values, 4 attributes):

* ``public``: Optuna's public calls, as a storage layer built on them would make them:
  ``create_new_trial`` with a template trial (one transaction), ``get_trial_number_from_id``,
  ``set_trial_user_attr`` for the trial's directory, and at the end ``get_trial`` (is it still
  running?), one ``set_trial_intermediate_value`` per step, one ``set_trial_user_attr`` per
  attribute and ``set_trial_state_values``; the claim and heartbeat renewal as spiketune
  does them (the heartbeat's first insert and last delete left out, which favours this path);
* ``spiketune``: :class:`~spiketune.engine.storage.StudyStore` (one transaction to start, one
  to end).

Printed: milliseconds per trial, CPU time of this process and wall time, median of the
repeats, on SQLite and (unless ``--no-postgresql``) on a throwaway PostgreSQL server on
127.0.0.1 started as the tests do (the server's own CPU time is not counted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from spiketune.engine.storage import StudyStore, sqlite_url

REPO = Path(__file__).resolve().parents[1]
DIST = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
PARAMS = {"x": 0.5, "y": 0.2}
END = {"metrics": {"default": 0.3}, "intermediate": [{"default": 0.1}] * 3,
       "outcome": "COMPLETE", "reason": None}
STEPS = {1: 0.1, 2: 0.2, 3: 0.3}


def spiketune_trial(store: StudyStore, seq: int) -> None:
    store.claim(None)
    tid, _ = store.start_trial(PARAMS, DIST, {"parameters": PARAMS, "sequence_id": seq},
                               trial_dir=lambda n: Path("/t") / str(n))
    store.beat([tid])
    store.finish_trial(tid, TrialState.COMPLETE, 0.3, END, STEPS)


def public_trial(store: StudyStore, seq: int) -> None:
    rdb = store.storage
    store.claim(None)
    template = FrozenTrial(
        number=0, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params=PARAMS, distributions=DIST,
        user_attrs={"parameters": PARAMS, "sequence_id": seq}, system_attrs={},
        intermediate_values={}, trial_id=0,
    )
    tid = rdb.create_new_trial(store.study_id, template_trial=template)
    number = rdb.get_trial_number_from_id(tid)
    rdb.set_trial_user_attr(tid, "trial_dir", f"/t/{number}")
    store.beat([tid])
    if rdb.get_trial(tid).state != TrialState.RUNNING:
        return
    for step, v in STEPS.items():
        rdb.set_trial_intermediate_value(tid, step, v)
    for key, v in END.items():
        rdb.set_trial_user_attr(tid, key, v)
    rdb.set_trial_state_values(tid, TrialState.COMPLETE, [0.3])


def measure(url: Callable[[], str], trial: Callable[[StudyStore, int], None], n: int,
            repeat: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per trial, medians of ``repeat`` studies of ``n`` trials."""
    cpu, wall = [], []
    for _ in range(repeat):
        store = StudyStore.open(url(), "bench", create=True)
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        for i in range(n):
            trial(store, i)
        cpu.append((time.process_time() - t_cpu) / n * 1000)
        wall.append((time.perf_counter() - t_wall) / n * 1000)
        store.close()
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kinds: list[tuple[str, Callable[[], str]]] = []
    tmp = Path(tempfile.mkdtemp(prefix="spiketune-storage-bench-"))
    count = iter(range(1_000_000))
    kinds.append(("SQLite", lambda: sqlite_url(tmp / f"{next(count)}.db")))
    server = None
    if not args.no_postgresql:
        sys.path.insert(0, str(REPO / "tests"))
        import _postgres

        try:
            server = _postgres.start()
            kinds.append(("PostgreSQL", server.new_database))
        except _postgres.Unavailable as e:
            print(f"(no PostgreSQL: {e})")
    print(f"{args.trials} trials, median of {args.repeat}; ms per trial (CPU of this process, "
          "wall)")
    try:
        for name, url in kinds:
            for label, trial in (("public calls", public_trial), ("spiketune", spiketune_trial)):
                cpu, wall = measure(url, trial, args.trials, args.repeat)
                print(f"{name:<11} {label:<13} cpu {cpu:6.2f} ms   wall {wall:6.2f} ms")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

"""Throughput of 1, 2, 4 and 8 workers on one study, as speed-up over one worker: on
PostgreSQL, or on an Optuna journal file (the study without a database server).

    .venv/bin/python benchmarks/scale.py [--workers 1 2 4 8] [--trials-per-worker 10]
                                         [--sleep 1.0] [--storage postgresql | journal | URL]

Each worker is a ``spiketune worker`` process (concurrency 1) running trials that sleep
``--sleep`` seconds (a trial process each: interpreter start, ``import spiketune.trial``,
the sleep, a final report). Sleep trials need no cores, so ``N`` workers should finish ``N``
times as many trials per minute: the target is a speed-up of at least ``0.9 * N`` up to 8.

Measured per run of ``N`` workers, in one study of ``N * trials_per_worker`` trials:

* the first trial of every worker waits until all ``N`` workers have started one (so that
  the interpreters' start-up, which the machine's two cores serialise, is not counted);
* ``steady``: each worker's trials per minute from the start of its second trial to the start
  of its last (trial and scheduler overhead included), summed over the workers;
* ``wall``: every trial after the common start, divided by the time from that start to the
  end of the last trial (the stragglers included).

Speed-ups are against one worker measured in the same run. ``--storage postgresql`` (the
default) starts a throwaway PostgreSQL server on 127.0.0.1 (as the tests do) and removes it at
the end; ``--storage journal`` gives each run of ``N`` workers a journal file of its own in a
temporary directory (``journal:///tmp/.../study.log``); a URL is used as given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TRIAL = """\
import os, time
import spiketune.trial as st
p = st.get_next_parameter()
go = os.environ["SCALE_GO"]
if not os.path.exists(go):  # a worker's first trial: wait for every worker
    open(os.path.join(os.environ["SCALE_READY"], os.environ["SPIKETUNE_TRIAL_ID"]), "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
time.sleep(float(os.environ["SCALE_SLEEP"]))
st.report_final_result(p["x"])
"""


def run_workers(url: str, n: int, per_worker: int, sleep: float, work: Path) -> dict[str, float]:
    from spiketune.engine.results import load_results

    code = work / f"code{n}"
    code.mkdir()
    (code / "trial.py").write_text(TRIAL)
    ready = work / f"ready{n}"
    ready.mkdir()
    go = work / f"go{n}"
    cfg = work / f"scale{n}.toml"
    cfg.write_text(
        f'name = "scale-{n}-{os.getpid()}"\n'
        f'trial_command = "python3 trial.py"\n'
        f'trial_code_directory = "{code}"\n'
        f'experiment_dir = "{work / "experiments"}"\n'
        f"max_trials = {n * per_worker}\n"
        f'tuner = "Random"\n'
        f"[search_space]\n"
        f'x = {{_type = "uniform", _value = [0, 1]}}\n'
    )
    env = dict(os.environ, SCALE_GO=str(go), SCALE_READY=str(ready), SCALE_SLEEP=str(sleep))
    procs = [
        subprocess.Popen([sys.executable, "-m", "spiketune.cli", "worker", str(cfg), "--storage",
                          url, "-q"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            raise SystemExit(f"workers did not start: {procs[0].communicate()[1].decode()}")
        time.sleep(0.01)
    go.touch()
    t_go = time.time()
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"a worker failed: {err.decode()}")
    (directory,) = [d for d in (work / "experiments").iterdir()
                    if d.name.startswith(f"scale-{n}-")]
    records = load_results(directory, storage=url).records
    assert len(records) == n * per_worker and all(r.outcome.value == "COMPLETE" for r in records)
    by_worker: dict[int, list[float]] = {}
    for r in records:
        pid = json.loads((r.trial_dir / "process.json").read_text())["scheduler_pid"]
        by_worker.setdefault(pid, []).append(r.started.timestamp())
    steady = 0.0
    for starts in by_worker.values():
        starts.sort()
        if len(starts) >= 3:
            steady += (len(starts) - 2) / (starts[-1] - starts[1]) * 60
    last_end = max(r.finished.timestamp() for r in records)
    wall = len(records) / (last_end - t_go) * 60  # first trials sleep from the go, too
    return {"steady": steady, "wall": wall, "workers_seen": len(by_worker),
            "ideal": 60.0 / sleep * n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--trials-per-worker", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--storage", default="postgresql",
                        help="postgresql (a throwaway server, the default), journal (a journal "
                        "file per run) or a storage URL")
    args = parser.parse_args()

    server = None
    url = args.storage
    if url == "postgresql":
        sys.path.insert(0, str(REPO / "tests"))
        import _postgres

        server = _postgres.start()
        url = server.new_database()
        os.environ["SPIKETUNE_DB_PASSWORD"] = server.password
        url = url.replace(f":{server.password}@", "@")

    def url_of(n: int, tmp: Path) -> str:
        """The storage of the run of ``n`` workers: a journal file of its own, or ``url``."""
        if args.storage != "journal":
            return url
        from spiketune.engine.storage import journal_url

        (tmp / f"journal{n}").mkdir()
        return journal_url(tmp / f"journal{n}" / "study.log")

    print(f"storage: {args.storage if server is None else 'postgresql (throwaway)'}", flush=True)
    try:
        results = {}
        with tempfile.TemporaryDirectory(prefix="spiketune-scale-") as tmp:
            for n in args.workers:
                results[n] = run_workers(url_of(n, Path(tmp)), n, args.trials_per_worker,
                                         args.sleep, Path(tmp))
                r = results[n]
                print(f"{n} worker(s): steady {r['steady']:.1f} trials/min, wall "
                      f"{r['wall']:.1f} trials/min (ideal {r['ideal']:.0f})", flush=True)
        base = results[args.workers[0]]
        print()
        print(f"{'workers':>7} {'steady/min':>10} {'speed-up':>8} {'wall/min':>9} "
              f"{'speed-up':>8} {'target':>7}")
        for n, r in results.items():
            print(f"{n:>7} {r['steady']:>10.1f} {r['steady'] / base['steady']:>8.2f} "
                  f"{r['wall']:>9.1f} {r['wall'] / base['wall']:>8.2f} {0.9 * n:>7.1f}")
        ok = all(r["steady"] / base["steady"] >= 0.9 * n for n, r in results.items())
        print(f"\ntarget (steady speed-up >= 0.9 N): {'met' if ok else 'NOT met'}; "
              f"load average {statistics.mean(os.getloadavg()):.2f}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

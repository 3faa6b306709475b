"""What a trial process's exit costs, with and without the quick exit after its final result.

    .venv/bin/python benchmarks/trial_exit.py [--runs 5]

One trial of the spike-pattern template (one epoch of a 16-neuron network on 8 samples per
class; torch imported, as in every template trial) run by hand ``--runs`` times each way, the
two ways taking turns, in one run:

* ``quick exit``: as spiketune runs it: after ``report_final_result`` an ``atexit`` hook
  freezes the collector's objects (``spiketune.trial._runtime.quick_exit_after_result``);
* ``plain exit``: the same trial with that hook made a no-op, as before.

Printed: the median wall time and CPU time (user + system) of each, and their difference:
what every trial process and every retraining seed saved, seconds per process.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "spiketune" / "templates" / "spike_patterns"
PARAMS = {"epochs": 1, "n_rec": 16}
#: Runs main_hpo.py as ``python main_hpo.py`` would, with the hook replaced by a no-op.
PLAIN = ("import runpy, sys\n"
         "import spiketune.trial._runtime as runtime\n"
         "runtime.quick_exit_after_result = lambda: None\n"
         "sys.argv = ['main_hpo.py', *sys.argv[1:]]\n"
         "sys.path.insert(0, '.')\n"
         "runpy.run_path('main_hpo.py', run_name='__main__')\n")


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of ``command`` in the template."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(command, cwd=TEMPLATE, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise SystemExit(f"the trial failed: {run.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs of each way (default 5)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "params.json"
        params.write_text(json.dumps(PARAMS), encoding="utf-8")
        options = ["--params", str(params), "--subset", "8", "--threads", "1",
                   "--out", str(Path(tmp) / "out")]
        ways = {"quick exit": [sys.executable, "main_hpo.py", *options],
                "plain exit": [sys.executable, "-c", PLAIN, *options]}
        times: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        for _ in range(args.runs):
            for way, command in ways.items():
                times[way].append(timed(command))
    print(f"spike-pattern trial, 1 epoch, {args.runs} run(s) of each way (medians):")
    medians = {}
    for way, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        medians[way] = (wall, cpu)
        print(f"  {way}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    saved_wall = medians["plain exit"][0] - medians["quick exit"][0]
    saved_cpu = medians["plain exit"][1] - medians["quick exit"][1]
    print(f"saved per trial process: {saved_wall:.2f} s wall, {saved_cpu:.2f} s CPU "
          f"({medians['plain exit'][0] / medians['quick exit'][0]:.2f}x as fast)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine overhead per trial, against a plain ``subprocess.run`` of the same trial script.

    .venv/bin/python benchmarks/overhead.py [--trials 30]

The trial is the quadratic of DESIGN.md section 5 with 3 intermediate reports (``import nni``,
served by spiketune's shim). Measured in one run, on this machine:

* ``plain``: the trial script run ``N`` times one after another with ``subprocess.run``,
  parameters in the environment, nothing else: the trial's own cost (interpreter start,
  imports, work), ``t_plain`` seconds each;
* ``subprocess c=1`` and ``c=2``: ``Experiment(...).run()`` with ``N`` trials, ``c`` at a time;
  overhead per trial = ``wall * c / N - t_plain`` (what each trial slot costs beyond the trial),
  and the ratio ``(wall * c / N) / t_plain``;
* ``in-process``: the same quadratic as a Python callable, SQLite storage; overhead per trial
  = ``wall / N`` minus the callable's own time;
* time to first trial: from the call to ``run()`` (imports done), and from launching
  ``spiketune run CONFIG`` as a new process, to the first line of the first trial.

``wall`` covers everything ``run()`` does: creating the study, every trial, loading the results.
Targets: <= 0.15 s per trial in subprocess mode, <= 10 ms in-process, first trial <= 0.5 s.
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

TRIAL = """\
import time
T0 = time.time()
import nni

p = nni.get_next_parameter()
value = -(p["x"] - 1.0) ** 2 - (p["y"] + 2.0) ** 2
for step in (1, 2, 3):
    nni.report_intermediate_result(value - 1.0 / step)
nni.report_final_result({"default": value, "t0": T0})
"""

SPACE = {"x": {"_type": "uniform", "_value": [-5, 5]},
         "y": {"_type": "uniform", "_value": [-5, 5]}}


def plain_runs(code: Path, n: int) -> float:
    """Seconds per run of the trial script by plain ``subprocess.run``."""
    compat = Path(__file__).resolve().parents[1] / "spiketune" / "compat"
    env = dict(os.environ, PYTHONPATH=str(compat), SPIKETUNE_PARAMETERS='{"x": 0.5, "y": 1.5}')
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "trial.py"], cwd=code, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) / n


def subprocess_runs(code: Path, root: Path, n: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds of run(), seconds from run() to the first trial's first line)."""
    from spiketune import Experiment

    exp = Experiment(name=f"overhead-c{concurrency}", trial_command="python trial.py",
                     trial_code_directory=code, search_space=SPACE, max_trials=n,
                     concurrency=concurrency, tuner="TPE", seed=0, experiment_dir=root)
    t = time.time()
    results = exp.run()
    wall = time.time() - t
    first = min(r.metrics["t0"] for r in results.records)
    assert len(results.records) == n and all(r.outcome.value == "COMPLETE"
                                             for r in results.records)
    return wall, first - t


def in_process_runs(root: Path, n: int) -> tuple[float, float]:
    """(wall seconds of run(), seconds spent inside the trial callables)."""
    import spiketune.trial as st
    from spiketune import Experiment

    own = [0.0]

    def quadratic(p: dict) -> float:
        t = time.perf_counter()
        value = -(p["x"] - 1.0) ** 2 - (p["y"] + 2.0) ** 2
        for step in (1, 2, 3):
            st.report_intermediate_result(value - 1.0 / step)
        own[0] += time.perf_counter() - t
        return value

    exp = Experiment(name="overhead-inproc", trial=quadratic, search_space=SPACE,
                     max_trials=n, tuner="TPE", seed=0, experiment_dir=root)
    t = time.perf_counter()
    results = exp.run()
    wall = time.perf_counter() - t
    assert len(results.records) == n
    return wall, own[0]


def cli_first_trial(code: Path, root: Path) -> float:
    """Seconds from launching ``spiketune run CONFIG`` to the first trial's first line."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "cli.toml"
    cfg.write_text(
        f'name = "overhead-cli"\ntrial_command = "python trial.py"\n'
        f'trial_code_directory = "{code}"\nexperiment_dir = "{root / "cli"}"\nmax_trials = 1\n'
        f'tuner = "Random"\n[search_space]\nx = {{_type = "uniform", _value = [-5, 5]}}\n'
        f'y = {{_type = "uniform", _value = [-5, 5]}}\n'
    )
    t = time.time()
    subprocess.run([sys.executable, "-m", "spiketune.cli", "run", str(cfg), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (metrics,) = (root / "cli").glob("*/trials/0/metrics.jsonl")
    final = json.loads(metrics.read_text().splitlines()[-1])
    return final["value"]["t0"] - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the median is shown")
    args = parser.parse_args()
    n = args.trials
    import optuna  # noqa: F401 - imported before timing, as a running program has it

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}, {n} trials, median of {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="spiketune-bench-") as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "trial.py").write_text(TRIAL)
        root = Path(tmp) / "experiments"
        in_process_runs(root, 3)  # warm up: imports and first-time database set-up

        plain = statistics.median(plain_runs(code, n) for _ in range(args.repeat))
        rows = []
        firsts = []
        for c in (1, 2):
            runs = [subprocess_runs(code, root, n, c) for _ in range(args.repeat)]
            wall = statistics.median(w for w, _ in runs)
            firsts += [f for _, f in runs]
            per_slot = wall * c / n
            rows.append((f"subprocess c={c}", wall, per_slot - plain, per_slot / plain))
        inproc = [in_process_runs(root, n) for _ in range(args.repeat)]
        wall = statistics.median(w for w, _ in inproc)
        own = statistics.median(o for _, o in inproc)
        cli = statistics.median(cli_first_trial(code, Path(tmp) / f"cli{i}")
                                for i in range(args.repeat))

    print(f"\nplain subprocess.run of the trial: {plain * 1000:.1f} ms per trial")
    print(f"{'mode':<16} {'wall s':>8} {'overhead/trial':>15} {'ratio to plain':>15}")
    for name, w, over, ratio in rows:
        print(f"{name:<16} {w:8.2f} {over * 1000:12.1f} ms {ratio:15.2f}")
    print(f"{'in-process':<16} {wall:8.2f} {(wall - own) / n * 1000:12.2f} ms {'-':>15}")
    print(f"\nfirst trial running, from run():          {statistics.median(firsts):.3f} s")
    print(f"first trial running, from `spiketune run`: {cli:.3f} s (process start and imports)")


if __name__ == "__main__":
    main()

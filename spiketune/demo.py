"""``python -m spiketune.demo``: an NNI-style experiment end to end, in a few seconds.

It writes an NNI v2 ``config.yml``, a ``search_space.json`` and a trial script that does
``import nni`` into a temporary directory, runs the experiment (subprocess trials, TPE, the
Medianstop assessor) and prints the best parameters. The experiment stays in the experiments
root, so ``spiketune trials <id>`` shows it afterwards.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from pathlib import Path

from spiketune.config import load_config
from spiketune.experiment import Experiment
from spiketune.results import ExperimentResults, Outcome
from spiketune.scheduler import Progress

CONFIG = """\
experimentName: demo_quadratic
searchSpaceFile: search_space.json
trialCommand: python3 trial.py
trialCodeDirectory: .
trialConcurrency: 2
maxTrialNumber: {max_trials}
maxExperimentDuration: 2m
tuner:
  name: TPE
  classArgs: {{optimize_mode: maximize, seed: 0}}
assessor:
  name: Medianstop
  classArgs: {{optimize_mode: maximize, start_step: 2}}
trainingService:
  platform: local
"""

SEARCH_SPACE = {
    "x": {"_type": "uniform", "_value": [-5, 5]},
    "y": {"_type": "uniform", "_value": [-5, 5]},
}

TRIAL = """\
import time

import nni

params = nni.get_next_parameter()
x, y = params["x"], params["y"]
value = -(x - 1.0) ** 2 - (y + 2.0) ** 2   # best: 0 at x = 1, y = -2
for epoch in (1, 2, 3):
    time.sleep(0.05)                                       # an "epoch" of training
    nni.report_intermediate_result(value - 3.0 / epoch)   # validation, improving per epoch
nni.report_final_result({"default": value, "distance": abs(x - 1.0) + abs(y + 2.0)})
"""


def write_example(directory: Path, max_trials: int) -> Path:
    """Write the demo's NNI files into ``directory``; return the config path."""
    (directory / "search_space.json").write_text(json.dumps(SEARCH_SPACE, indent=2) + "\n")
    (directory / "trial.py").write_text(TRIAL)
    config = directory / "config.yml"
    config.write_text(CONFIG.format(max_trials=max_trials))
    return config


def _print_progress(p: Progress, seen: list[int]) -> None:
    if p.done == seen[0]:
        return
    seen[0] = p.done
    best = "-" if p.best_value is None else f"{p.best_value:.4f}"
    print(f"  {p.done:3d} done, {p.running} running, {p.early_stopped} early-stopped, "
          f"{p.failed} failed; best {best}", flush=True)


def run_demo(max_trials: int = 20, experiment_dir: Path | None = None) -> ExperimentResults:
    with tempfile.TemporaryDirectory(prefix="spiketune-demo-") as tmp:
        config = load_config(write_example(Path(tmp), max_trials))
        exp = (Experiment(config, experiment_dir=experiment_dir) if experiment_dir
               else Experiment(config))
        print(f"experiment {exp.id} ({max_trials} trials, 2 at a time) in {exp.directory}")
        seen = [0]
        results = exp.run(progress=lambda p: _print_progress(p, seen))
    best = results.best
    print(
        f"finished: {results.count(Outcome.COMPLETE)} complete, "
        f"{results.count(Outcome.EARLY_STOPPED)} early-stopped, "
        f"{results.count(Outcome.FAILED)} failed"
    )
    if best is None:
        print("no trial completed")
    else:
        params = ", ".join(f"{k} = {v:.4f}" for k, v in best.parameters.items())
        print(f"best trial {best.number}: value {best.value:.4f} with {params} "
              f"(optimum 0 at x = 1, y = -2)")
    print(textwrap.dedent(f"""\
        inspect it with:
          spiketune trials {results.id}
          spiketune export {results.id} --format csv"""))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spiketune.demo", description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="number of trials (default 20)")
    parser.add_argument("--experiment-dir", type=Path, default=None,
                        help="root for the experiment directory")
    args = parser.parse_args(argv)
    run_demo(args.trials, args.experiment_dir)


if __name__ == "__main__":
    main()

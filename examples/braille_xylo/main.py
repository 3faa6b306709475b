"""The launcher: the Xylo-constrained search of ``config.toml``, then the chosen network
retrained with three seeds and scored as exported for Rockpool, then the report with its
Pareto front (accuracy against synaptic operations, config ``tradeoffs``).

    python main.py --data braille_reduced_th1_pool.pt                 # the real search
    python main.py --data braille_reduced_th1_pool.pt --smoke         # the chain, in a minute

**The chosen trial** is picked on validation figures alone. The search's figure is one
training seed on one validation part of 105 samples, so the best of 150 trials is partly luck:
the :data:`FINALISTS` fitting trials with the highest ``rockpool_val_acc`` (complete, fitting
Xylo Audio 2 after training: every constraint <= 0; ties to fewer ``synops_per_sample``) are
each trained again on two other train/validation re-splits around the same test part, with
other seeds (:data:`FINALIST_RUNS`), and the one with the highest mean ``rockpool_val_acc``
over its three runs is chosen (ties to fewer synaptic operations, then the lower number).
``--finalists 0`` chooses the search's best trial directly. Its parameters
are retrained with ``--retrain-seeds`` (0 1 2) through
``spiketune.engine.retrain``; the mean ± std over the seeds of ``rockpool_test_acc`` (the
8-bit network exported ``--for rockpool``, run as Rockpool runs it, on the fixed test part)
is the figure to quote, with the split digest. The test part decides nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from spiketune import (
    Experiment,
    ExperimentResults,
    Outcome,
    load_config,
    load_results,
)
from spiketune.engine import Retrained, TrialRecord, retrain
from spiketune.launcher import (
    config_changes,
    format_percent,
    print_finish,
    print_start,
    progress_printer,
    with_options,
)
from spiketune.report import build_report

HERE = Path(__file__).absolute().parent
CONFIG = HERE / "config.toml"

#: ``--smoke``: the whole chain quickly (2 trials of 1 epoch on 10 samples per class, 1 seed).
#: After one epoch most drawn networks still run away and break the chip's rules, so the first
#: trial is the trial's own defaults (``start_with``, :func:`trial_defaults`), which fit.
SMOKE: dict[str, Any] = {"trials": 2, "epochs_cap": 1, "subset": 10, "duration": "10m",
                         "retrain_seeds": [0], "finalists": 2}
RETRAIN_SEEDS = [0, 1, 2]
#: How many of the search's best trials are scored again, and on which (re-split, seed) runs
#: (re-split 0 with seed 0 is the search's own run).
FINALISTS = 6
FINALIST_RUNS = ((1, 1), (2, 2))
#: The validation figure the chosen trial is picked by, and the test figure quoted.
SELECT_BY = "rockpool_val_acc"
QUOTE = "rockpool_test_acc"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, help="trials to run (config.toml: max_trials)")
    p.add_argument("--duration", help='time budget, e.g. "10m", "8h" (config: max_duration)')
    p.add_argument("--concurrency", type=int, help="trials at once (config: concurrency)")
    p.add_argument("--epochs-cap", type=int, help="train each trial at most this many epochs")
    p.add_argument("--subset", type=int, metavar="N", help="use N samples per class")
    p.add_argument("--data", help="threshold-1 pool file, its directory, or the archive's "
                   "threshold-1 event file (else $SPIKETUNE_BRAILLE_TH1_DATA, else spiketune's "
                   "data cache)")
    p.add_argument("--seed", type=int, help="tuner seed (config: seed)")
    p.add_argument("--name", help="experiment name (config: name)")
    p.add_argument("--experiment-dir", type=Path,
                   help="root of experiment directories (default $SPIKETUNE_EXPERIMENTS or "
                        "~/spiketune-experiments)")
    p.add_argument("--smoke", action="store_true",
                   help="2 trials (the defaults first), 1 epoch, 10 samples per class, "
                        "1 retraining seed")
    p.add_argument("--retrain-seeds", type=int, nargs="*", metavar="SEED",
                   help=f"retrain the chosen trial with these seeds (default "
                        f"{' '.join(map(str, RETRAIN_SEEDS))}; none: skip)")
    p.add_argument("--experiment", type=Path, metavar="DIR",
                   help="no search: choose, retrain and report from this finished experiment "
                        "(its directory)")
    p.add_argument("--finalists", type=int, default=None, metavar="K",
                   help=f"score the K best trials again on {len(FINALIST_RUNS)} other "
                        f"re-splits before choosing (default {FINALISTS}; 0: choose the "
                        "search's best)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def trial_options(args: argparse.Namespace) -> list[str]:
    """The options every trial and every retraining seed gets (recorded with the experiment)."""
    return with_options([], {"--epochs-cap": args.epochs_cap, "--subset": args.subset,
                             "--data": args.data}, paths=("--data",))


def experiment(args: argparse.Namespace) -> Experiment:
    """``config.toml`` with the command line's changes."""
    config = load_config(CONFIG)
    changes: dict[str, Any] = config_changes(args)
    if trial_options(args):
        changes["trial_command"] = shlex.join(
            [*shlex.split(config.require_trial_command()), *trial_options(args)])
    if args.smoke:
        changes["start_with"] = [{key: value for key, value in trial_defaults().items()
                                  if key in config.search_space}]
    return Experiment(config, **changes)


def trial_defaults() -> dict[str, Any]:
    """``main_hpo.DEFAULT_PARAMS``: what a trial uses for a parameter the search leaves out."""
    spec = importlib.util.spec_from_file_location("braille_xylo_main_hpo", HERE / "main_hpo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return dict(module.DEFAULT_PARAMS)


def choose(results: ExperimentResults) -> TrialRecord | None:
    """The chosen trial without finalists: on the Pareto front (with the trade-off metrics),
    fitting the chip, best :data:`SELECT_BY`, then fewest synaptic operations, then lowest
    number."""
    front = [r for r in results.pareto_front(tradeoffs=True)
             if r.feasible is not False and r.metrics]
    if not front:
        return None
    return min(front, key=lambda r: (-float(r.metrics[SELECT_BY]),  # type: ignore[index]
                                     float(r.metrics["synops_per_sample"]),  # type: ignore[index]
                                     r.number))


def finalists(results: ExperimentResults, k: int) -> list[TrialRecord]:
    """The ``k`` complete trials that fit the chip with the highest :data:`SELECT_BY` (ties to
    fewer synaptic operations, then the lower number)."""
    fitting = [r for r in results.records if r.outcome is Outcome.COMPLETE
               and r.feasible is not False and r.metrics and SELECT_BY in r.metrics]
    return sorted(fitting, key=_rank)[:k]


def _rank(r: TrialRecord) -> tuple[float, float, int]:
    m = r.metrics or {}
    return (-float(m[SELECT_BY]), float(m.get("synops_per_sample", 0.0)), r.number)


def score_finalists(results: ExperimentResults, trials: list[TrialRecord],
                    args: argparse.Namespace, at_once: int) -> list[dict[str, Any]]:
    """Train each finalist once per :data:`FINALIST_RUNS` (``main_hpo.py --fold F --seed S``
    into ``<experiment>/finalists/trial<N>/fold<F>/``, ``at_once`` at a time) and return, per
    finalist, its :data:`SELECT_BY` of every run (the search's first) and their mean, also
    written to ``<experiment>/finalists/finalists.json``. A run without a result counts 0."""
    assert results.directory is not None
    root = Path(results.directory) / "finalists"
    root.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[int, Path, list[str]]] = []
    for r in trials:
        folder = root / f"trial{r.number}"
        folder.mkdir(parents=True, exist_ok=True)
        params = folder / "parameters.json"
        params.write_text(json.dumps(r.parameters, indent=2, sort_keys=True), encoding="utf-8")
        for fold, seed in FINALIST_RUNS:
            out = folder / f"fold{fold}"
            out.mkdir(exist_ok=True)
            (out / "result.json").unlink(missing_ok=True)  # never read a stale result
            jobs.append((r.number, out, [sys.executable, "main_hpo.py", *trial_options(args),
                                         "--params", str(params), "--fold", str(fold),
                                         "--seed", str(seed), "--out", str(out)]))

    def run_one(job: tuple[int, Path, list[str]]) -> None:
        with (job[1] / "train.log").open("wb") as log:
            subprocess.run(job[2], cwd=HERE, stdout=log, stderr=subprocess.STDOUT, check=False)

    with ThreadPoolExecutor(max(1, at_once)) as pool:
        list(pool.map(run_one, jobs))
    scored = []
    for r in trials:
        values = [float((r.metrics or {})[SELECT_BY])]
        for fold, _ in FINALIST_RUNS:
            result = root / f"trial{r.number}" / f"fold{fold}" / "result.json"
            try:
                values.append(float(json.loads(result.read_text(encoding="utf-8"))[SELECT_BY]))
            except (OSError, ValueError, KeyError):
                values.append(0.0)
        scored.append({"trial": r.number, "runs": values, "mean": statistics.fmean(values),
                       "synops_per_sample": float((r.metrics or {})["synops_per_sample"])})
    (root / "finalists.json").write_text(json.dumps(scored, indent=2), encoding="utf-8")
    return scored


def retrain_chosen(results: ExperimentResults, chosen: TrialRecord, seeds: list[int],
                   args: argparse.Namespace) -> Retrained:
    """Train ``chosen``'s parameters once per seed into ``<experiment>/chosen/seed<k>/``
    (``main_hpo.py`` run by hand, with the search's trial options) and record
    :data:`QUOTE` per seed in ``<experiment>/retrained.json``."""
    command = [sys.executable, "main_hpo.py", *trial_options(args)]
    return retrain(results, command, seeds=seeds, cwd=HERE, trial=chosen, metric=QUOTE)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the search, retrain the chosen trial, build the report; print and return the
    outcome (``trial``, ``mean``, ``std``, ``runs``, ``split_digest``, ``pareto_front``)."""
    args = parse_args(argv)
    if args.experiment is not None:
        results = load_results(args.experiment)
        concurrency = int(results.config.get("concurrency", 1) or 1)
        print(f"experiment {results.id} in {results.directory}: {len(results.records)} "
              "trials, no new search", flush=True)
    else:
        exp = experiment(args)
        concurrency = exp.config.concurrency
        print_start(exp)
        results = exp.run(progress=None if args.quiet else progress_printer())
        print_finish(results)  # failed: refused by the design check included
    outcome: dict[str, Any] = {"experiment": str(results.directory), "trial": None}
    for r in results.pareto_front(tradeoffs=True):
        m = r.metrics or {}
        print(f"  Pareto front: trial {r.number}: rockpool val {format_percent(m.get(SELECT_BY))}, "
              f"8-bit val {format_percent(m.get('quant_val_acc'))}, "
              f"{m.get('synops_per_sample', float('nan')):.0f} synops/sample")
    chosen = choose(results)
    k = FINALISTS if args.finalists is None else args.finalists
    if k > 0 and results.directory is not None:
        trials = finalists(results, k)
        print(f"scoring the {len(trials)} best trials again on re-splits and seeds "
              f"{', '.join(f'{f}/{s}' for f, s in FINALIST_RUNS)}", flush=True)
        scored = score_finalists(results, trials, args, concurrency)
        for row in scored:
            print(f"  finalist trial {row['trial']}: {SELECT_BY} "
                  f"{', '.join(format_percent(v) for v in row['runs'])}, "
                  f"mean {format_percent(row['mean'])}")
        if scored:
            best = min(scored, key=lambda row: (-row["mean"], row["synops_per_sample"],
                                                row["trial"]))
            chosen = next(r for r in trials if r.number == best["trial"])
            outcome["finalists"] = scored
    seeds = RETRAIN_SEEDS if args.retrain_seeds is None else args.retrain_seeds
    if chosen is None:
        print("no complete trial fits Xylo Audio 2: nothing to retrain")
    elif seeds:
        retrained = retrain_chosen(results, chosen, seeds, args)
        values = [run.metrics[QUOTE] for run in retrained.runs if QUOTE in run.metrics]
        quant = [run.metrics["quant_test_acc"] for run in retrained.runs
                 if "quant_test_acc" in run.metrics]
        outcome |= {"trial": chosen.number, "runs": values, "split_digest":
                    retrained.split_digest, "mean": retrained.mean, "std": retrained.std,
                    "quant_mean": statistics.fmean(quant) if quant else None}
        if values:
            spread = (f"± {format_percent(retrained.std or 0.0)} (mean ± std; "
                      if len(values) > 1 else "(one seed: no spread to give; ")
            print(f"chosen trial {chosen.number} (best {SELECT_BY}), "
                  f"retrained with seeds {', '.join(str(r.seed) for r in retrained.runs)}: "
                  f"8-bit test accuracy exported --for rockpool {format_percent(retrained.mean)} "
                  f"{spread}8-bit in spiketune {format_percent(outcome['quant_mean'])}), "
                  f"split {retrained.split_digest}")
    files = build_report(results.directory or results.id)
    outcome["pareto_front"] = str(files.pareto) if files.pareto is not None else None
    print(f"report: {files.index}\nPareto front figure: {outcome['pareto_front']}")
    return outcome


if __name__ == "__main__":
    run(sys.argv[1:])

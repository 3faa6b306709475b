"""Trials per hour of a whole search: one process per trial against population mode.

Runs the Braille e-prop example's search (its ``config.toml`` and ``search_space.json`` as they
are now, printed first) on the threshold-1 pool, with the same tuner (TPE, seeded), assessor
(Medianstop), epoch cap, re-splits and wall-clock budget in every mode:

- ``process c1 t2``: one trial at a time, 2 CPU threads (the machine's cores);
- ``process c2 t1``: two trials at a time, 1 thread each;
- ``population K c2 t1``: K trials trained together in one process (``population = K``,
  ``population_group`` as the template's ``--population`` sets it), two such processes of
  one thread each; and the largest K as one process of two threads. A population takes new
  trials as its members end (the template's ``--refills``); ``--refills 1 0`` runs each
  population mode with each value (``... r1``, ``... r0``: refills off).
- ``population auto``: the template's ``--population auto``: its probe chooses K, threads and
  processes; ``population auto shapes`` adds ``--shape-sizes``: then a K for each shape of
  the space (``population_sizes``). The probe's seconds count in these modes' trials per
  hour (a user waits for them too).

For each mode and tuner seed it prints the trials finished (complete + stopped by the
assessor), trials per hour, the best validation accuracy, and the seconds until a trial
first reached the target accuracy (the median final validation accuracy of the process-mode
runs, or ``--target``), and the network shapes its tuner drew most (a population's members
share one, so a dear draw costs K trials' time). Modes run one after another, each alone on
the machine, so the figures are comparable only within one run of this script (state the
machine with them).

``--template spike_patterns`` runs the same comparison on the spike-pattern template's search
(its generated data, no ``--data``; its population modes have neither refills nor sizes by
shape, so ``auto shapes`` and ``r<R>`` modes are left out): smaller networks of one input
channel, where a step's work is smaller still. ``--template braille_l2mu`` runs the L²MU
template's search (its default model, the L²MU, on the same pool): no population batches an
L²MU, so a population mode there saves only the start of a process per trial (``--members 1
2`` with the template's refills: K trials at a time per process, trial after trial).

Run: ``.venv/bin/python benchmarks/population_search.py`` (``--minutes 10``, ``--seeds 0 1 2``,
``--members 4 8 16``, ``--refills 1 0``, ``--epochs-cap 20``, ``--folds 1``, ``--data POOL``,
``--template``, ``--json FILE``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spiketune import Experiment, Outcome, load_config

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "spiketune" / "templates"
#: The templates whose search this benchmark runs; the first is the default.
TEMPLATE_NAMES = ("braille_eprop", "spike_patterns", "braille_l2mu")
#: The templates whose search reads the threshold-1 pool (``--data``).
POOL_TEMPLATES = ("braille_eprop", "braille_l2mu")
POOL = REPO.parent / "shared" / "data" / "braille_th1" / "braille_reduced_th1_pool.pt"


def launcher(template: str) -> Any:
    """The template's ``main.py``, imported from beside its trial modules (which it imports
    by their plain names: one template per process)."""
    sys.path.insert(0, str(TEMPLATES / template))
    return importlib.import_module("main")


def modes(members: list[int], refills: list[int] | None = None) -> list[dict[str, Any]]:
    """Process mode at both thread settings; population mode at each K with one process per
    core (what ``--population auto``'s probe chose here), and the largest K in one process of
    two threads. Population modes run with the template's refills (``--refills``) unless
    ``refills`` are given: then once per value, named ``... r<R>``."""
    out: list[dict[str, Any]] = [
        {"name": "process c1 t2", "concurrency": 1, "threads": 2, "population": None},
        {"name": "process c2 t1", "concurrency": 2, "threads": 1, "population": None},
    ]
    k = max(members)
    shapes = [(m, 2, 1) for m in members] + [(k, 1, 2)]
    for r in refills or [None]:
        suffix = "" if r is None else f" r{r}"
        out += [{"name": f"population {m} c{c} t{t}{suffix}", "concurrency": c, "threads": t,
                 "population": m, "refills": r} for m, c, t in shapes]
    out += [{"name": "population auto", "concurrency": None, "threads": None,
             "population": "auto"},
            {"name": "population auto shapes", "concurrency": None, "threads": None,
             "population": "auto", "shape_sizes": True}]
    return out


def template_modes(template: str, members: list[int], refills: list[int] | None = None
                   ) -> list[dict[str, Any]]:
    """:func:`modes` that ``template``'s launcher can set up: the spike-pattern template has
    neither refills nor sizes by shape; the L²MU template has refills (its members train
    alone in their process, so K 1 with refills is a process that takes trial after trial)
    and no probe (``auto``)."""
    every = modes(members, refills)
    if template == "braille_eprop":
        return every
    if template == "braille_l2mu":
        return [m for m in every if m["population"] != "auto"]
    return [m for m in every if not m.get("shape_sizes") and m.get("refills") is None]


def run_mode(mode: dict[str, Any], seed: int, args: argparse.Namespace, root: Path,
             main_py: Any) -> dict[str, Any]:
    """One search of ``args.minutes`` in ``mode``, set up by the template's own launcher
    ``main_py`` (``main.experiment``: its config, search space, ``--population`` grouping);
    its figures."""
    argv = ["--name", f"bench-{mode['name'].replace(' ', '-')}-s{seed}", "--seed", str(seed),
            "--experiment-dir", str(root), "--gpus", "none",
            "--folds", str(args.folds), "--epochs-cap", str(args.epochs_cap),
            "--duration", f"{args.minutes * 60:g}s", "--trials", "100000"]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    if mode["concurrency"] is not None:
        argv += ["--concurrency", str(mode["concurrency"])]
    if mode["population"] is not None:
        argv += ["--population", str(mode["population"])]
    if mode.get("shape_sizes"):
        argv += ["--shape-sizes"]
    if mode.get("refills") is not None:
        argv += ["--refills", str(mode["refills"])]
    launcher_args = main_py.parse_args(argv)
    probe_started = time.time()
    exp = main_py.experiment(launcher_args)  # --population auto: the probe runs here
    probe_seconds = time.time() - probe_started
    os.environ["SPIKETUNE_CONCURRENCY"] = str(exp.config.concurrency)
    os.environ["SPIKETUNE_TRIAL_THREADS"] = str(mode["threads"] or launcher_args.trial_threads)
    if args.fix:  # the same search with some keys fixed (say one network shape)
        exp = Experiment(exp.config, search_space=fixed_space(exp.config.search_space, args.fix))
    started = time.time()
    results = exp.run()
    finished = [r for r in results.records
                if r.outcome in (Outcome.COMPLETE, Outcome.EARLY_STOPPED)]
    complete = [r for r in results.records if r.outcome == Outcome.COMPLETE]
    values = [r.value for r in complete if r.value is not None]
    return {
        "mode": mode["name"], "seed": seed, "seconds": results.elapsed_seconds,
        "finished": len(finished), "complete": len(complete),
        "failed": results.count(Outcome.FAILED), "stopped": results.count(Outcome.STOPPED),
        # complete, their training ended by a deadline (the budget's end, in these runs):
        # fewer epochs than they would have trained
        "shortened": sum(1 for r in complete
                         if (r.metrics or {}).get("stop_reason") == "time_limit"),
        # ended by the budget: a population mode has K per process in flight at the end
        "started": len(results.records),
        "probe_seconds": probe_seconds,
        "trials_per_hour": len(finished) / (results.elapsed_seconds + probe_seconds) * 3600.0,
        "population_sizes": [r.model_dump() for r in exp.config.population_sizes or []],
        # trials started per network shape: what the tuner's draws cost this run
        "shapes": shape_counts(r.parameters for r in results.records),
        "best_val": max(values) if values else None,
        "median_val": statistics.median(values) if values else None,
        # when each complete trial reached its result, in seconds from the start
        "reached": sorted((r.finished.timestamp() - started, r.value) for r in complete
                          if r.finished is not None and r.value is not None),
    }


def shape_of(parameters: dict[str, Any]) -> str:
    """The network shape a trial drew, as a population groups its members: neurons, rule,
    batch size and bin size (ms), e.g. ``"256 bptt b16 20ms"``; for an L²MU or LMU the
    hidden neurons, then order x memory_size (``"120 l2mu/7x32 b16 5ms"``)."""
    model = parameters.get("model")
    where = model if isinstance(model, dict) else parameters
    rule = where.get("rule")
    rule = rule.get("_name") if isinstance(rule, dict) else rule
    size = where.get("n_rec", where.get("hidden_size", "?"))
    if isinstance(model, dict) and model.get("_name") != "rsnn":  # an L²MU or LMU
        rule = f"{model.get('_name')}/{model.get('order', '?')}x{model.get('memory_size', '?')}"
    bins = parameters.get("bin_size")
    bins = "?" if bins is None else f"{bins * 1000:g}ms"
    return f"{size} {rule or '?'} b{parameters.get('batch_size', '?')} {bins}"


def shape_counts(parameters: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many trials drew each shape, the most frequent first."""
    counts = Counter(shape_of(p) for p in parameters)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def fixed_space(space: dict[str, Any], fix: list[str]) -> dict[str, Any]:
    """``space`` with each ``KEY=JSON`` of ``fix`` as a one-value choice (``rule={"_name":
    "bptt"}`` for a nested choice); an unknown key is an error that names it."""
    out = dict(space)
    for item in fix:
        key, sep, value = item.partition("=")
        if not sep or key not in space:
            raise SystemExit(f"--fix {item!r}: give KEY=JSON with KEY one of {sorted(space)}")
        out[key] = {"_type": "choice", "_value": [json.loads(value)]}
    return out


def first_reaching(run: dict[str, Any], target: float) -> float | None:
    return next((t for t, v in run["reached"] if v >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--refills", type=int, nargs="+", default=None,
                        help="run each population mode with each of these --refills, named "
                             "'... r<R>' (default: the template's)")
    parser.add_argument("--epochs-cap", type=int, default=20)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None,
                        help="the threshold-1 pool (braille_eprop, braille_l2mu; default: "
                             "../shared/data)")
    parser.add_argument("--template", choices=TEMPLATE_NAMES, default=TEMPLATE_NAMES[0],
                        help="whose search to run (default: the Braille e-prop example)")
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy to reach (default: the median final "
                             "value of the process-mode runs)")
    parser.add_argument("--modes", nargs="+", default=None,
                        help="names of the modes to run (default: all)")
    parser.add_argument("--fix", nargs="+", default=[], metavar="KEY=JSON",
                        help='fix these keys of the search space, e.g. n_rec=256 '
                             'rule=\'{"_name": "bptt"}\' (one network shape: compares the '
                             'modes without the shapes their searches happen to draw)')
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    template = TEMPLATES / args.template
    if args.template in POOL_TEMPLATES:
        args.data = (args.data or POOL).resolve()
        if not args.data.exists():
            sys.exit(f"no threshold-1 pool at {args.data} (give --data)")
        encoding = f"threshold-1 pool {args.data} (bins as searched)"
    else:
        if args.data is not None:
            sys.exit(f"--data: the {args.template} template generates its data")
        encoding = "the generator's spike patterns (bins as searched)"
    main_py = launcher(args.template)
    config = load_config(template / "config.toml")
    with tempfile.TemporaryDirectory(prefix="spiketune-bench-") as tmp:
        # the space as the launcher sets it up (the L²MU template narrows its model choice)
        given = ["--experiment-dir", tmp, "--gpus", "none"]
        space = main_py.experiment(main_py.parse_args(given)).config.search_space
    print(f"search space ({template / 'search_space.json'}, as the launcher sets it up):\n"
          f"{json.dumps(space, sort_keys=True)}")
    if args.fix:
        fixed_space(config.search_space, args.fix)  # checked before any run
        print(f"fixed: {' '.join(args.fix)}")
    print(f"encoding: {encoding}; tuner {config.tuner} "
          f"(seeds {args.seeds}), assessor {config.assessor} {config.assessor_args}; "
          f"epochs cap {args.epochs_cap}, folds {args.folds}, {args.minutes:g} min per run; "
          f"{os.cpu_count()} CPUs", flush=True)
    runs = []
    chosen = [m for m in template_modes(args.template, args.members, args.refills)
              if args.modes is None or m["name"] in args.modes]
    with tempfile.TemporaryDirectory(prefix="spiketune-bench-") as tmp:
        for seed in args.seeds:
            for mode in chosen:
                run = run_mode(mode, seed, args, Path(tmp), main_py)
                runs.append(run)
                print(f"  {run['mode']:>20} seed {seed}: {run['finished']} trials "
                      f"({run['complete']} complete, {run['shortened']} of them shortened "
                      f"by the budget's end; {run['stopped']} more cut by it), "
                      f"{run['trials_per_hour']:.0f}/h, best val {run['best_val']}", flush=True)
                top = ", ".join(f"{shape} x{n}" for shape, n in list(run["shapes"].items())[:3])
                print(f"  {'':>20} most drawn shapes: {top}", flush=True)
    process_values = [v for r in runs if r["mode"].startswith("process")
                      for _, v in r["reached"]]
    target = args.target if args.target is not None else (
        statistics.median(process_values) if process_values else 1.0)
    print(f"\ntarget validation accuracy: {target:.3f}")
    print(f"{'mode':>20} | trials/h (mean over seeds) | best val (mean) | s to target "
          "(each seed)")
    table = {}
    for mode in chosen:
        mine = [r for r in runs if r["mode"] == mode["name"]]
        rate = statistics.fmean(r["trials_per_hour"] for r in mine)
        bests = [r["best_val"] for r in mine if r["best_val"] is not None]
        best = statistics.fmean(bests) if bests else float("nan")
        reach = [first_reaching(r, target) for r in mine]
        table[mode["name"]] = {"trials_per_hour": rate, "best_val": best, "to_target": reach}
        shown = ", ".join("-" if t is None else f"{t:.0f}" for t in reach)
        print(f"{mode['name']:>20} | {rate:26.0f} | {best:15.3f} | {shown}")
    best_process = max((v for k, v in table.items() if k.startswith("process")),
                       key=lambda v: v["trials_per_hour"], default=None)
    if best_process is not None:
        for name, v in table.items():
            if name.startswith("population"):
                print(f"{name}: {v['trials_per_hour'] / best_process['trials_per_hour']:.2f}x "
                      "the trials per hour of the best process mode")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, "table": table, "target": target},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()

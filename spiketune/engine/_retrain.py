"""The chosen configuration retrained with several seeds: the honest figure of a search.

A search chooses its configuration on validation accuracy, so the test accuracy of its best
trial is one draw of that trial's luck (and the best test accuracy among trials is chosen by
looking at the test set). :func:`retrain` trains the chosen configuration again, once per seed,
with the trial's own code run by hand, and records the seeds' test accuracies in
``retrained.json`` (:class:`~spiketune.engine.Retrained`): their mean ± std is the figure to
quote. :func:`chosen_trial` says which trial is "chosen", the same one whose model the
experiment kept, so that the kept and the retrained model are one configuration.

The trial code follows one small protocol (every template's ``main_hpo.py`` does): run as
``COMMAND --params FILE --seed K --out DIR --threads N`` it trains with the parameters in the
JSON ``FILE`` and the seed ``K``, keeps its model in ``DIR/best_model.pt`` and writes its final
metrics (numbers, ``"test"`` among them, and optionally ``"split_digest"``) to
``DIR/result.json``.

A retraining measures the chosen configuration only on the search's own split: on another one
(other data, another ``--subset``) its test part is other samples, some of which the search may
have validated on. So each seed's split digest is recorded and checked against the chosen
trial's; a seed on another split makes :func:`retrain` raise once ``retrained.json`` records it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from spiketune.engine.results import (
    RETRAINED_FILE,
    ExperimentResults,
    Retrained,
    RetrainedRun,
    TrialRecord,
    load_best_model,
    save_retrained,
)
from spiketune.errors import ConfigError, Problem, SpiketuneError, TrialError

__all__ = ["CHOSEN_DIR", "chosen_trial", "retrain"]

#: The directory, inside the experiment directory, that holds the chosen configuration
#: (``parameters.json``) and one sub-directory per seed (``seed<k>/``).
CHOSEN_DIR = "chosen"

#: Environment variables a trial launched by spiketune carries and a run by hand must not:
#: with them the trial code would report to the (finished) experiment's trial.
_TRIAL_ENV_PREFIXES = ("NNI_", "SPIKETUNE_TRIAL")


def chosen_trial(results: ExperimentResults) -> TrialRecord | None:
    """The trial a search chose: the one whose model the experiment kept (the best validation
    accuracy, ties going to the model its trial ranked better, e.g. fewer spikes), or the best
    trial by the objective when no model was kept (or the kept one is not among the records).

    Optuna's best trial takes the first of tied values, so without this a retrained
    configuration and the kept model could differ on a tie.
    """
    kept = load_best_model(results.directory) if results.directory is not None else None
    if kept is not None and kept.trial_id is not None:
        for record in results.records:
            if str(record.number) == str(kept.trial_id):
                return record
    return results.best


def retrain(
    results: ExperimentResults,
    command: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    cwd: str | Path | None = None,
    trial: TrialRecord | None = None,
    concurrency: int | None = None,
    metric: str = "test",
    echo: Callable[[str], None] | None = print,
) -> Retrained:
    """Retrain the chosen configuration once per seed, score each run, write
    ``<experiment>/retrained.json`` and return it.

    ``command`` is the trial code as a run by hand (``[sys.executable, "main_hpo.py",
    "--folds", "1"]``, say, with any options the search's trials had); each seed runs it with
    ``--params <experiment>/chosen/parameters.json --seed K --out <experiment>/chosen/seedK
    --threads N`` appended, in ``cwd``, its output in ``seedK/train.log``. ``trial`` defaults
    to :func:`chosen_trial`. At most ``concurrency`` seeds run at once (default: the
    experiment's concurrency, or every seed where a short last round would leave CPU cores
    idle: :func:`seeds_at_once`), each with an equal share of this process's CPU cores.

    A seed whose run leaves no readable ``result.json`` is reported through ``echo`` and left
    out of the summary; the others are kept, so one crash does not lose the rest. Stopping
    this call (Ctrl-C) stops the runs it started.

    The split: each run records the ``split_digest`` of its ``result.json``; the file's
    ``split_digest`` is the chosen trial's (its metrics', else its own ``result.json``'s,
    see :func:`trial_split_digest`), else the first seed's. A seed that ran on another split
    (other data, another ``--subset``) did not measure the search's choice on the search's
    test part: ``retrained.json`` is written with every seed's split (the report marks the
    runs, :attr:`~spiketune.engine.Retrained.off_split`), then a
    :class:`~spiketune.errors.TrialError` names the splits.
    """
    problems = []
    if not command or not all(isinstance(part, str) for part in command):
        problems.append(Problem("command", command, "a non-empty list of strings"))
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds) \
            or len(set(seeds)) != len(seeds):
        problems.append(Problem("seeds", seeds, "one or more distinct integers"))
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        problems.append(Problem("concurrency", concurrency, "a positive integer"))
    if problems:
        raise ConfigError(problems)
    directory = results.directory
    if directory is None:
        raise SpiketuneError(f"experiment {results.id!r} has no directory to retrain into")
    chosen = trial if trial is not None else chosen_trial(results)
    if chosen is None:
        raise SpiketuneError(f"experiment {results.id!r} has no trial with a result to retrain")

    out_dir = Path(directory) / CHOSEN_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    params_file = out_dir / "parameters.json"
    params_file.write_text(json.dumps(chosen.parameters, indent=2, sort_keys=True) + "\n",
                           encoding="utf-8")
    # trials without GPUs (gpus none) ran on the CPU: so do their seeds, on any machine
    cpu_only = "gpus" in results.config and results.config["gpus"] is None
    if concurrency is not None:
        at_once = min(len(seeds), concurrency)
    else:
        at_once = seeds_at_once(
            len(seeds), max(1, int(results.config.get("concurrency", 1) or 1)),
            on_cpu=cpu_only or not _gpus_visible())
    threads = max(1, _cores() // at_once)
    base = [*command, "--params", str(params_file), "--threads", str(threads)]
    say = echo or (lambda _: None)
    say(f"retraining the chosen configuration (trial {chosen.number}) with seeds "
        f"{', '.join(map(str, seeds))}" + (f" ({at_once} at a time)" if at_once > 1 else ""))
    _run_seeds(base, seeds, out_dir, at_once, cwd, cpu_only=cpu_only)

    runs = []
    for seed in seeds:
        result_file = out_dir / f"seed{seed}" / "result.json"
        result = _read_result(result_file)
        if result is None:
            say(f"  seed {seed}: no result (see {result_file.parent / 'train.log'})")
            continue
        metrics = {k: float(v) for k, v in result.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        runs.append(RetrainedRun(seed, metrics, f"{CHOSEN_DIR}/seed{seed}/best_model.pt",
                                 split_digest=_digest(result)))
        say(f"  seed {seed}: validation {_pct(metrics.get('default'))}, "
            f"{metric} {_pct(metrics.get(metric))}")
    trial_digest = trial_split_digest(chosen)
    digest = trial_digest or next((r.split_digest for r in runs if r.split_digest), None)
    retrained = Retrained(
        parameters=dict(chosen.parameters), runs=tuple(runs), metric=metric,
        split_digest=digest, trial=chosen.number,
        command=f"{shlex.join(base)} --seed {{seed}} --out {CHOSEN_DIR}/seed{{seed}}",
    )
    save_retrained(directory, retrained)
    if retrained.off_split:
        against = f"trial {chosen.number}" if trial_digest else f"seed {runs[0].seed}"
        others = ", ".join(f"seed {r.seed} on {r.split_digest}" for r in retrained.off_split)
        raise TrialError(
            f"the retraining ran on another data split than {against} (split {digest}): "
            f"{others}; its test accuracy is not the chosen configuration's on the search's "
            f"test part (other data, or another --subset?). {directory / RETRAINED_FILE} "
            "records each seed's split")
    if retrained.mean is not None and len(retrained.values) == 1:  # one seed has no spread
        say(f"chosen configuration, {metric} of its one seed: {100 * retrained.mean:.2f}% "
            f"(split {retrained.split_digest})")
    elif retrained.mean is not None:
        say(f"chosen configuration, {metric} over {len(retrained.values)} seeds: "
            f"{100 * retrained.mean:.2f}% ± {100 * (retrained.std or 0):.2f}% "
            f"(mean ± sample std; split {retrained.split_digest})")
    return retrained


def seeds_at_once(n_seeds: int, concurrency: int, *, on_cpu: bool) -> int:
    """How many of ``n_seeds`` retraining runs start at once, given the experiment's
    ``concurrency``.

    Why: the seeds run in rounds of ``concurrency``. When the last round is short (3 seeds at
    concurrency 2), its seeds train while cores that the first round used sit idle: on the
    CPU that round takes as long as a full one. Started together instead, the runs share the
    cores (3 runs of one thread on 2 cores: about 1.5 rounds' time, not 2; each still has
    one thread, so its figures are the same). So on the CPU, seeds that would need two
    rounds, the second short, all start at once; on GPUs (one per run) the rounds stay.
    """
    at_once = min(n_seeds, concurrency)
    if on_cpu and at_once < n_seeds < 2 * at_once:
        return n_seeds
    return at_once


def _gpus_visible() -> bool:
    """Whether this machine gives its processes a GPU (as the experiment finds them)."""
    from spiketune.engine.experiment import _gpus_found

    return bool(_gpus_found()[0])


def _run_seeds(base: list[str], seeds: list[int], out_dir: Path, at_once: int,
               cwd: str | Path | None, *, cpu_only: bool = False) -> None:
    """Run ``base --seed K --out DIR`` for every seed, ``at_once`` at a time (``cpu_only``:
    with no GPU visible, as the search's trials had none); stop them all if this process is
    interrupted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TRIAL_ENV_PREFIXES)}
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    pending = list(seeds)
    running: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    try:
        while pending or running:
            while pending and len(running) < at_once:
                seed = pending.pop(0)
                out = out_dir / f"seed{seed}"
                out.mkdir(exist_ok=True)
                (out / "result.json").unlink(missing_ok=True)  # never read a stale result
                log = (out / "train.log").open("wb")
                proc = subprocess.Popen([*base, "--seed", str(seed), "--out", str(out)],
                                        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running.append((proc, log))
            still = []
            for proc, log in running:
                if proc.poll() is None:
                    still.append((proc, log))
                else:
                    log.close()
            if len(still) == len(running):
                time.sleep(0.05)
            running = still
    finally:
        for proc, log in running:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def trial_split_digest(record: TrialRecord) -> str | None:
    """The data split a trial ran on: its reported metrics' ``split_digest``, else that of the
    ``result.json`` in its trial directory (trials of templates that reported it only there),
    else None."""
    found = _digest(record.metrics or {})
    if found is None and record.trial_dir is not None:
        found = _digest(_read_result(Path(record.trial_dir) / "result.json") or {})
    return found


def _digest(result: dict[str, Any]) -> str | None:
    """A result's ``split_digest`` when it is a non-empty text, else None."""
    value = result.get("split_digest")
    return value if isinstance(value, str) and value else None


def _cores() -> int:
    """The CPU cores this process may use (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"

"""What a template's trial script (``main_hpo.py``) shares with the others: its command-line
options, its start (parameters, seeds, threads, device) and its end (the model saved beside
its result and offered as the experiment's best).

::

    parser = argparse.ArgumentParser()
    parser.add_argument("--data")                     # the template's own options first
    add_trial_options(parser)                         # --epochs-cap ... --seed
    args = parser.parse_args()
    params, device = start_trial({**DEFAULTS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)
    ...                                               # load, build, train, test
    keep_trial_model(out_dir, net, train_config=..., history=..., metrics=final, ...)

In population mode the script hands its members to :func:`train_members` with two functions
of its own: how a member's networks are built, and what it does with them once trained.

torch is imported by the functions that need it, not with this module.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune.trial import _protocol as protocol

if TYPE_CHECKING:
    import torch

    from spiketune.data import Dataset
    from spiketune.snn import EpochMetrics, History, Model, TrainConfig
    from spiketune.trial._artifacts import Predictions
    from spiketune.trial._population import Member

#: Where a trial run by hand saves its model, unless ``--out`` says otherwise.
MANUAL_OUT = "manual_trial"


def add_trial_options(
    parser: argparse.ArgumentParser,
    *,
    subset_help: str = "keep N samples per class before splitting (smoke runs)",
) -> argparse.ArgumentParser:
    """Add the options every template's trial script takes to ``parser``, in this order:
    ``--epochs-cap`` (an epoch budget that caps the parameters'), ``--time-cap`` (seconds
    within which the trial ends with a result, see :func:`trial_deadline`), ``--subset N``
    (fewer samples, ``subset_help`` says which), ``--threads`` (CPU threads; default this trial's
    share, see :func:`trial_threads`), ``--out`` (where a trial run by hand saves its model),
    ``--params`` (a JSON file of parameters, run by hand), ``--folds`` (how many re-splits
    the trial is judged on, default 1) and ``--seed`` (the training seed, over the
    parameters'). Returns ``parser``."""
    parser.add_argument("--epochs-cap", type=_at_least(1), default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--time-cap", type=_seconds, default=None, metavar="SECONDS",
                        help="end the training in time for the trial to report its best epoch "
                             "within SECONDS of its start (default: the experiment's "
                             "max_trial_duration, which would kill the trial without a result)")
    parser.add_argument("--subset", type=_at_least(1), default=None, metavar="N",
                        help=subset_help)
    parser.add_argument("--threads", type=_at_least(1), default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default=MANUAL_OUT, type=_output_directory,
                        help="where to save the model when run by hand (a trial uses its own "
                             "directory)")
    parser.add_argument("--params", default=None,
                        help="JSON file of parameters, when run by hand")
    parser.add_argument("--folds", type=_at_least(1), default=1,
                        help="train on this many stratified re-splits and report the mean "
                             "validation accuracy (default 1: the split itself)")
    parser.add_argument("--seed", type=_at_least(0), default=None,
                        help="training seed (weights, shuffling, augmentation); overrides "
                             "the parameters' seed")
    return parser


def start_trial(
    params: Mapping[str, Any], *, seed: int | None = None, threads: int | None = None
) -> tuple[dict[str, Any], torch.device]:
    """Set a trial up before it loads anything: its parameters (``params`` with ``seed`` as
    their ``"seed"`` when given: a retraining seed), every generator seeded with the
    parameters' seed (default 0, see :func:`seed_everything`), torch's CPU threads set to
    ``threads`` or this trial's share (:func:`trial_threads`). Returns the parameters and
    the device to train on (:func:`trial_device`)."""
    import torch

    from spiketune.trial._runtime import seed_everything, trial_device, trial_threads

    chosen = dict(params)
    if seed is not None:
        chosen["seed"] = seed
    seed_everything(int(chosen.get("seed", 0)))
    torch.set_num_threads(trial_threads(threads))
    return chosen, trial_device()


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (a usage error, before any work, else)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    """``--time-cap``: a number of seconds >= 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _output_directory(text: str) -> str:
    """``--out``: a directory to save into (``~`` expanded), checked before the training
    rather than after it: a file there, or a file where one of its parents should be, would
    only be found when the model is saved."""
    path = Path(text).expanduser()
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                what = "is a file" if place == path else f"lies inside the file {place}"
                raise argparse.ArgumentTypeError(f"{text} {what}; give a directory to save "
                                                 "into")
            break
    return str(path)


def trial_output_dir(out: str | os.PathLike[str] = MANUAL_OUT) -> Path:
    """Where the trial saves its model: the calling thread's own trial directory (an
    in-process trial, a population member inside ``with member:``), else the directory
    NNI's stand-in gives a launched trial (``$NNI_OUTPUT_DIR``), else ``out`` (``--out``,
    run by hand). Why the thread's first: trials sharing a process share its environment,
    and one directory for all would let each overwrite the others' models."""
    bound = protocol.bound_trial_dir()
    if bound is not None:
        return bound
    return Path(os.environ.get("NNI_OUTPUT_DIR") or out).expanduser()


def keep_trial_model(
    out_dir: str | os.PathLike[str],
    net: Model,
    *,
    train_config: TrainConfig,
    history: History,
    metrics: Mapping[str, Any],
    parameters: Mapping[str, Any],
    split_digest: str,
    predictions: Predictions,
    score: Sequence[float] | float,
    extra: Mapping[str, Any] | None = None,
    result: Mapping[str, Any] | None = None,
) -> Path:
    """Save the trial's model and result in ``out_dir`` and offer it as the experiment's best.

    ``out_dir/best_model.pt``: the checkpoint (``net`` with its training configuration,
    ``history`` and ``extra``, see :func:`spiketune.snn.save_checkpoint`);
    ``out_dir/result.json``: ``metrics`` with the ``split_digest``, the ``parameters`` and
    ``result``'s keys. The checkpoint is then offered (:func:`offer_best_model`) with
    ``score`` (larger is better), ``metrics`` with the history's stop reason and the split
    digest as its information, and the test ``predictions``: the experiment keeps it if no
    trial has offered a better one. Returns the checkpoint's path.
    """
    from spiketune.snn import save_checkpoint
    from spiketune.trial._artifacts import offer_best_model

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(directory / "best_model.pt", net, train_config=train_config,
                                 history=history, extra=dict(extra or {}))
    (directory / "result.json").write_text(
        json.dumps({**metrics, "split_digest": split_digest, "parameters": parameters,
                    **(result or {})}, indent=2, sort_keys=True, default=str),
        encoding="utf-8")
    offer_best_model(
        score,
        {"best_model.pt": checkpoint},
        {**metrics, "stop_reason": history.stop_reason, "split_digest": split_digest},
        predictions,
        parameters=parameters,
    )
    return checkpoint


#: What a trial reports after each epoch, as means over its folds (``val_acc`` as
#: ``"default"``, the objective), and the spike figure added for a spiking model.
EPOCH_KEYS = ("train_acc", "train_loss", "val_acc", "val_loss")


def epoch_report(
    epoch: int, latest: Sequence[Any], *, spiking: bool = True, trial_id: str | None = None
) -> dict[str, float]:
    """What a trial reports after an epoch, from each fold's latest metrics ``latest``
    (:class:`spiketune.snn.EpochMetrics`): ``{"default": mean validation accuracy, "train_acc",
    "train_loss", "val_loss"}`` and, when ``spiking``, ``"spikes_per_sample"``, each the mean
    over the folds. The same figures are printed as one line, ``epoch 3: train acc 0.812 loss
    0.534, val acc 0.771 loss 0.640, 5321 spikes/sample``, after ``trial <trial_id> `` when
    given (a population's members share one log)."""
    import statistics

    keys = EPOCH_KEYS + (("spikes_per_sample",) if spiking else ())
    mean = {key: statistics.fmean(getattr(m, key) for m in latest) for key in keys}
    who = f"trial {trial_id} " if trial_id is not None else ""
    spikes = f", {mean['spikes_per_sample']:.0f} spikes/sample" if spiking else ""
    print(f"{who}epoch {epoch}: train acc {mean['train_acc']:.3f} loss "
          f"{mean['train_loss']:.3f}, val acc {mean['val_acc']:.3f} loss "
          f"{mean['val_loss']:.3f}{spikes}", flush=True)
    return {"default": mean.pop("val_acc"), **mean}


@dataclass(frozen=True)
class PreparedMember:
    """What a population member's trial needs to train (see :func:`train_members`): its
    networks and configurations ``built`` and their ``(train, val)`` datasets ``folds``, one
    of each per fold; ``data_key``, equal for members that read the same data (they may then
    share a batch); ``context``, the script's own (parameters, data...) for its ``finish``."""

    built: Sequence[tuple[Model, TrainConfig]]
    folds: Sequence[tuple[Dataset, Dataset]]
    data_key: Hashable
    context: Any = None


def train_members(
    prepare: Callable[[Member], PreparedMember],
    finish: Callable[[Member, PreparedMember, list[History]], dict[str, Any]],
    *,
    refills: int = 0,
    linger: float = 2.0,
    time_cap: float | None = None,
) -> list[dict[str, Any]]:
    """A trial script's population mode: train this process's members
    (:func:`spiketune.trial.population`) as batched populations and report each as its own
    trial; returns the final results of those that finished.

    ``prepare(member)`` builds a member's networks (:class:`PreparedMember`); a
    ``SpiketuneError`` it raises (a parameter out of range, data that cannot be made) fails
    that member alone, with the error's type and message. Every epoch
    reports each member's :func:`epoch_report` to it, unless the engine stopped it (pruned,
    timed out, stopping), which ends its training alone. As soon as all of a member's folds
    are over (each network holding its best weights), ``finish(member, prepared,
    histories)`` runs with the member's channel bound (``offer_best_model``, ``nni.report_*``
    go to it) and returns its final result; ``TrainingDiverged`` there fails that member.

    With ``refills`` R, each place of the population may take R new trials after its first,
    as members end (:func:`spiketune.trial.joining`; they train exactly as alone); when no
    member trains any more, the process waits up to ``linger`` seconds for some (cheaper than
    starting a new process) and then ends. Offers not taken go to another process.

    Each member's training ends in time for its result, as :func:`spiketune.snn.train_folds`'s
    does: no epoch starts that would end past its :func:`spiketune.trial.trial_deadline`
    (``time_cap`` seconds, else the experiment's ``max_trial_duration``, counted from the
    process's start, or from when it joined), judged by the longest epoch the member has
    trained; it then finishes with its best epoch, its histories saying ``"time_limit"``.
    """
    from spiketune.errors import SpiketuneError
    from spiketune.snn import TrainingDiverged, is_spiking, train_population
    from spiketune.snn._folds import TIME_LIMIT, out_of_time
    from spiketune.trial._population import joining, population, stop_joining
    from spiketune.trial._runtime import trial_deadline

    members = population()
    ready: list[tuple[Member, PreparedMember]] = []
    # Per member, as ready: its deadline, when its last epoch ended, its longest epoch (s).
    clocks: list[list[Any]] = []

    def take(member: Member, began: float | None = None) -> bool:
        """Prepare ``member``; its clock started with the process, else at ``began``."""
        try:
            prepared = prepare(member)
        except SpiketuneError as e:
            member.fail(f"{type(e).__name__}: {e}")
            return False
        ready.append((member, prepared))
        clocks.append([trial_deadline(began, time_cap), time.perf_counter(), 0.0])
        return True

    for member in members:
        take(member)
    print(f"population of {len(members)} trial(s) ({', '.join(m.trial_id for m in members)})"
          f", {len(ready)} ready", flush=True)
    stopped: set[int] = set()
    finals: list[dict[str, Any]] = []
    taken, limit = len(members), (1 + refills) * len(members)

    def on_epoch(i: int, epoch: int, latest: list[EpochMetrics]) -> bool | str:
        member = ready[i][0]
        if member.should_stop():  # pruned, timed out, or the experiment is stopping
            stopped.add(i)
            return True
        spiking = is_spiking(ready[i][1].built[0][0])  # an LMU has no spike figures
        member.report_intermediate_result(epoch_report(
            epoch, latest, spiking=spiking, trial_id=member.trial_id))
        clock, now = clocks[i], time.perf_counter()
        clock[1:] = [now, max(clock[2], now - clock[1])]
        # Its last epoch, if another would end past its deadline: it finishes with its best.
        return TIME_LIMIT if out_of_time(clock[0], clock[2]) else False

    def join(idle: bool) -> list[tuple[Any, Any, Hashable]]:
        nonlocal taken
        new: list[tuple[Any, Any, Hashable]] = []
        waited = 0.0
        while taken < limit:
            for member in joining():
                taken += 1
                if take(member, time.perf_counter()):
                    prepared = ready[-1][1]
                    print(f"trial {member.trial_id} joined the population", flush=True)
                    new.append((prepared.built, prepared.folds, prepared.data_key))
            if new or not idle or waited >= linger:
                break
            time.sleep(0.1)
            waited += 0.1
        if taken >= limit:
            stop_joining()
        return new

    def on_done(i: int, histories: list[History]) -> None:
        member, prepared = ready[i]
        if i in stopped or member.should_stop():
            return
        with member:  # offer_best_model and nni.report_final_result go to this member
            try:
                finals.append(finish(member, prepared, histories))
            except TrainingDiverged as e:
                member.fail(str(e))

    try:
        train_population([p.built for _, p in ready], [p.folds for _, p in ready],
                         [p.data_key for _, p in ready], on_epoch, join=join,
                         on_done=on_done)
    finally:
        stop_joining()  # an offer not taken by now goes to another process
    return finals

"""One trial's networks trained on several folds at once, and what the trial makes of them;
several trials' networks trained as batched populations (:func:`train_population`).

A trial judged on k re-splits of its data (``--folds k``) trains k networks, one per fold,
advancing all of them one epoch at a time (:func:`train_folds`), so that it can report the
mean over the folds after every epoch and a pruner can judge it as it goes. After training,
the first fold's network (now holding its best validation weights) is the trial's model:
:func:`fold_result` tests it (:func:`predict_classes`) and gathers the final result, which
is judged by the mean of each fold's best validation accuracy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from spiketune.data._base import Dataset
from spiketune.errors import SpiketuneError
from spiketune.snn._config import TrainConfig
from spiketune.snn._model import Model
from spiketune.snn._population import PopulationTrainer, batchable, population_key
from spiketune.snn._trainer import EpochMetrics, History, Trainer

#: The spike figures of an epoch a trial reports for a spiking model (per sample, and Hz).
_SPIKE_KEYS = ("spikes_per_sample", "rate_hz", "synops_per_sample")


class TrainingDiverged(SpiketuneError):
    """No epoch of a fold ended with finite figures: the trial has no model to keep."""


#: The stop reason of a training ended by its deadline (:func:`train_folds`).
TIME_LIMIT = "time_limit"
#: An epoch is assumed to take up to this many times the longest one so far.
EPOCH_SPREAD = 1.1


def out_of_time(deadline: float | None, epoch_seconds: float) -> bool:
    """Whether another epoch of about ``epoch_seconds`` would end past ``deadline`` (a
    :func:`time.perf_counter` instant; None: never)."""
    return deadline is not None and time.perf_counter() + EPOCH_SPREAD * epoch_seconds > deadline


def train_folds(
    built: Sequence[tuple[Model, TrainConfig]],
    folds: Sequence[tuple[Dataset, Dataset]],
    on_epoch: Callable[[int, list[EpochMetrics]], None] | None = None,
    *,
    deadline: float | None = None,
) -> tuple[list[Trainer], list[History]]:
    """Train one network per fold, all advancing one epoch at a time (lock-step).

    ``built[i]`` (a network and its training configuration) trains on ``folds[i]`` (its
    ``(train, val)`` datasets). After every epoch ``on_epoch(epoch, latest)`` gets each
    fold's latest metrics (a fold that has stopped early keeps its last ones), so that the
    trial can report their mean and a pruner can judge it at every epoch; ``epoch`` counts
    from 1. Each network ends with its best validation weights. Returns the trainers and
    their histories, in the order of ``built``.

    ``deadline`` (a :func:`time.perf_counter` instant, see
    :func:`spiketune.trial.trial_deadline`): no epoch starts that would end after it, judged
    by the longest epoch so far (its reports included); the training then ends as an early
    stop, its histories saying ``"time_limit"``. The first epoch always runs.
    """
    trainers = [Trainer(net, config) for net, config in built]
    runs = [t.epochs(train_set.tensor_dataset(), val_set.tensor_dataset())
            for t, (train_set, val_set) in zip(trainers, folds, strict=True)]
    histories: list[History | None] = [None] * len(runs)
    latest: list[EpochMetrics | None] = [None] * len(runs)
    epoch, longest = 0, 0.0
    began = 0.0
    while any(h is None for h in histories):
        now = time.perf_counter()
        if epoch:  # the last round's time, its reports included
            longest = max(longest, now - began)
        if epoch and out_of_time(deadline, longest):
            for i, run in enumerate(runs):
                if histories[i] is None:
                    run.close()  # the network takes its best weights so far
                    histories[i] = trainers[i].history
                    histories[i].stop_reason = TIME_LIMIT
            break
        began = now
        advanced = False
        for i, run in enumerate(runs):
            if histories[i] is not None:
                continue
            try:
                latest[i] = next(run)
                advanced = True
            except StopIteration as done:
                histories[i] = done.value
        if advanced:
            epoch += 1
            shown = [m for m in latest if m is not None]
            if on_epoch is not None and shown:
                on_epoch(epoch, shown)
    return trainers, [h for h in histories if h is not None]


def predict_classes(net: Model, dataset: Dataset, batch_size: int = 128) -> torch.Tensor:
    """The class ``net`` predicts for each sample of ``dataset`` (int64, on the CPU): the
    argmax of its readout summed over its decision window (``loss_steps``, else every step),
    the decision it was trained for. Batches of ``batch_size`` samples bound the memory."""
    out = []
    loss = net.readout_loss()
    net.eval()
    with torch.no_grad():
        for lo in range(0, len(dataset), batch_size):
            readout = net.simulate(dataset.inputs[lo : lo + batch_size]).readout
            out.append(loss.scores(readout).argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def fold_best(histories: Sequence[History]) -> EpochMetrics:
    """The first fold's best epoch (the trial's model), after checking that every fold has
    one: a fold none of whose epochs ended with a validation accuracy (its training diverged
    at once) is a :class:`TrainingDiverged` naming each fold's stop reason."""
    bests = [h.best for h in histories]
    if not bests or any(b is None or b.val_acc is None for b in bests):
        reasons = ", ".join(h.stop_reason for h in histories)
        raise TrainingDiverged(f"training diverged before the first epoch ended ({reasons})")
    best = bests[0]
    assert best is not None  # checked above; for type checkers
    return best


def fold_result(
    histories: Sequence[History],
    net: Model,
    test: Dataset,
    *,
    started: float,
    split_digest: str,
    spiking: bool = True,
) -> tuple[dict[str, Any], torch.Tensor]:
    """A trial's final result from its folds' histories, and its test predictions.

    ``net`` is the first fold's network, the trial's model, holding the weights of its best
    validation epoch (as :func:`train_folds` leaves it); it is tested once on ``test`` (the
    other folds' networks only inform the objective). ``started`` is the trial's start
    (a :func:`time.perf_counter` reading). The result: ``{"default": mean over the folds of
    each one's best validation accuracy, "test": the first network's test accuracy,
    "train", "epoch": of its best epoch, "spikes_per_sample", "rate_hz",
    "synops_per_sample": of that epoch (only when ``spiking``), "epochs_run": of the first
    fold, "seconds": the trial's wall time, "split_digest": ``split_digest``, "val_fold<i>":
    each fold's best validation accuracy (only with more than one fold)}``; the predictions:
    :func:`predict_classes` of ``test``. A fold without a best epoch is a
    :class:`TrainingDiverged`, raised before testing (see :func:`fold_best`).

    ``split_digest`` names the data split (``SplitParts.split_digest``) and is required: the
    trial's recorded metrics carry it, so that :func:`spiketune.engine.retrain` and the report
    can check that a retraining of the trial ran on the same split.
    """
    best = fold_best(histories)
    predicted = predict_classes(net, test)
    test_acc = int((predicted == test.labels).sum()) / len(test)
    val_folds = [float(h.best.val_acc) for h in histories
                 if h.best is not None and h.best.val_acc is not None]
    final: dict[str, Any] = {
        "default": statistics.fmean(val_folds),
        "test": test_acc,
        "train": best.train_acc,
        "epoch": best.epoch,
    }
    if spiking:
        final.update({key: getattr(best, key) for key in _SPIKE_KEYS})
    final["epochs_run"] = len(histories[0].epochs)
    final["seconds"] = time.perf_counter() - started
    final["split_digest"] = split_digest
    if len(histories) > 1:
        final.update({f"val_fold{i}": v for i, v in enumerate(val_folds)})
    return final, predicted


class _Alone:
    """A member that no population can take (see :func:`spiketune.snn.batchable`: an L²MU,
    an LMU, a CubaLIF network...), trained by its own :class:`Trainer` behind the part of
    :class:`PopulationTrainer`'s interface that :func:`train_population` uses: one member,
    index 0. Why: population mode is then open to every model of ``spiketune.snn``; such a
    member gains no batching, only the process it shares (no start per trial)."""

    def __init__(self, member: tuple[Model, TrainConfig]) -> None:
        self.trainer = Trainer(*member)
        self._run: Generator[EpochMetrics, None, History] | None = None
        self._active = True

    @property
    def active(self) -> list[int]:
        return [0] if self._active else []

    @property
    def histories(self) -> list[History]:
        return [] if self.trainer.history is None else [self.trainer.history]

    def stop(self, member: int, reason: str = "stopped") -> None:
        """End the run now (between epochs): the network takes its best weights so far."""
        if not self._active:
            return
        self._active = False
        if self._run is not None:
            self._run.close()
        if self.trainer.history is None:  # stopped before its first epoch
            self.trainer.history = History(monitor=self.trainer.config.monitor)
        self.trainer.history.stop_reason = reason

    def epochs(
        self, train: Any, val: Any = None
    ) -> Generator[dict[int, EpochMetrics], None, list[History]]:
        run = self._run = self.trainer.epochs(train, val)
        try:
            while self._active:
                try:
                    metrics = next(run)
                except StopIteration:
                    break
                yield {0: metrics}
        finally:
            run.close()  # nothing if it ended; else the best weights so far ("closed")
            self._active = False
        return self.histories


@dataclass(eq=False)
class _Run:
    """One fold of one population: the trainer, its epochs, and which members it trains."""

    key: Hashable  # what its members share (population key, data key)
    fold: int
    trainer: PopulationTrainer | _Alone
    epochs: Generator[dict[int, EpochMetrics], None, list[History]]
    members: list[int] = field(default_factory=list)  # member of each trainer index
    over: bool = False


#: One trial's networks and training configurations, one per fold.
Built = Sequence[tuple[Model, TrainConfig]]
#: One trial's ``(train, val)`` datasets, one per fold.
Folds = Sequence[tuple[Dataset, Dataset]]


def train_population(
    built: Sequence[Built],
    folds: Sequence[Folds],
    data_keys: Sequence[Hashable],
    on_epoch: Callable[[int, int, list[EpochMetrics]], bool | str | None] | None = None,
    *,
    join: Callable[[bool], Sequence[tuple[Built, Folds, Hashable]]] | None = None,
    on_done: Callable[[int, list[History]], None] | None = None,
) -> list[list[History]]:
    """Train several trials' networks as batched populations (population mode).

    ``built[m][f]`` is member ``m``'s network and configuration for fold ``f``, trained on
    ``folds[m][f]``; members with equal ``data_keys[m]`` read the same data. Members that
    can share a computation (same sizes, rule, batch size, data: see
    :func:`spiketune.snn.population_key`) form one :class:`PopulationTrainer` per fold, and
    all of them advance one epoch at a time, as :func:`spiketune.snn.train_folds` does for one
    trial. A member that no population can take (not :func:`spiketune.snn.batchable`: an
    L²MU, an LMU, a CubaLIF network) trains alone with its own :class:`Trainer`, in step with
    the others, exactly as :func:`spiketune.snn.train_folds` would train it.
    ``on_epoch(member, epoch, latest)`` gets each of a member's folds' latest metrics after
    every epoch it trained; True stops that member (all its folds), the others go on, and a
    text does the same with that text as its histories' stop reason.
    ``join(idle)``, asked after every epoch, gives new members ``(built, folds, data_key)``:
    each joins a running population it can share (:meth:`PopulationTrainer.add`; it trains as
    if alone) or starts one, and is numbered after those before it; ``idle`` says that no
    member is training any more (this is the last call unless it gives some). ``on_done(member,
    histories)`` is called as soon as all of a member's folds are over (its networks then hold
    their best weights), so its result need not wait for the others.
    Returns each member's Histories, one per fold; each network ends with its best weights.
    """
    built, folds, data_keys = list(built), list(folds), list(data_keys)
    runs: list[_Run] = []
    histories: list[list[History | None]] = []
    latest: list[list[EpochMetrics | None]] = []
    epochs: list[int] = []
    done: list[bool] = []

    def place(m: int) -> None:
        net, cfg = built[m][0]
        alone = not batchable(net)
        # A member no population can take gets a run of its own (a key nobody else has).
        key = ("alone", m) if alone else (population_key(net.config, cfg), data_keys[m])
        histories.append([None] * len(built[m]))
        latest.append([None] * len(built[m]))
        epochs.append(0)
        done.append(False)
        for f, member in enumerate(built[m]):
            run = next((r for r in runs if not r.over and r.key == key and r.fold == f), None)
            if run is None:
                trainer = _Alone(member) if alone else PopulationTrainer([member])
                train_set, val_set = folds[m][f]
                run = _Run(key, f, trainer, trainer.epochs(train_set.tensor_dataset(),
                                                           val_set.tensor_dataset()))
                runs.append(run)
            else:
                assert isinstance(run.trainer, PopulationTrainer)
                run.trainer.add(member)
            run.members.append(m)

    for m in range(len(built)):
        place(m)
    while True:
        advanced: set[int] = set()
        for run in runs:
            if run.over:
                continue
            try:
                report = next(run.epochs)
            except StopIteration:
                run.over = True
                continue
            for local, metrics in report.items():
                m = run.members[local]
                latest[m][run.fold] = metrics
                advanced.add(m)
        for m in sorted(advanced):
            epochs[m] += 1
            shown = [x for x in latest[m] if x is not None]
            stop = on_epoch(m, epochs[m], shown) if on_epoch is not None else None
            if stop:
                reason = stop if isinstance(stop, str) else "stopped by the engine"
                for run in runs:
                    if m in run.members and run.members.index(m) in run.trainer.active:
                        run.trainer.stop(run.members.index(m), reason)
        for m in range(len(built)):  # members whose every fold has left its population
            if done[m]:
                continue
            places = [(run, run.members.index(m)) for run in runs if m in run.members]
            if all(run.over or local not in run.trainer.active for run, local in places):
                done[m] = True
                for run, local in places:
                    histories[m][run.fold] = run.trainer.histories[local]
                if on_done is not None:
                    on_done(m, [h for h in histories[m] if h is not None])
        idle = all(done)  # no member is training: the last chance to take one
        for new_built, new_folds, new_key in (join(idle) if join is not None else ()):
            built.append(new_built)
            folds.append(new_folds)
            data_keys.append(new_key)
            place(len(built) - 1)
        if all(run.over for run in runs):
            break
    return [[h for h in hs if h is not None] for hs in histories]

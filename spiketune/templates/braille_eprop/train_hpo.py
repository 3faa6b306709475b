"""The network and its training: a recurrent LIF/ALIF layer and a leaky readout, trained by
e-prop (or BPTT) with ``spiketune.snn``, validated every epoch, stopped early on a plateau.

A trial's parameters name fields of :class:`spiketune.snn.SNNConfig` and
:class:`spiketune.snn.TrainConfig` directly (``tau_mem``, ``lr``...); nested choices arrive as
``{"_name": option, sub-parameters...}`` and are flattened (``{"neuron": {"_name": "alif",
"tau_adapt": 0.5}}`` becomes ``neuron="alif", tau_adapt=0.5``). What the search leaves out
takes the values in :data:`FIXED`. A misspelt or out-of-range parameter fails the trial at
once with a ``ConfigError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from spiketune.data import Dataset
from spiketune.snn import (
    EpochMetrics,
    History,
    PopulationTrainer,
    RecurrentSNN,
    TrainConfig,
    model_and_config_from_params,
    population_key,
)

#: Values the search does not choose. ``ce_summed`` (cross-entropy of the readout summed over
#: the sample, or over its last ``loss_window`` seconds) trains markedly better on these sparse
#: events than the per-step cross-entropy. The weights validated and kept are a moving average
#: (``ema_decay``, about the last 200 optimiser steps) under a cosine-annealed learning rate:
#: on 140 validation samples the raw weights' accuracy jumps by several points from epoch to
#: epoch, which made the "best epoch" partly luck. ``patience`` ends a run after that many
#: epochs without a better validation accuracy.
FIXED: dict[str, Any] = {
    "loss": "ce_summed",
    "ema_decay": 0.995,
    "lr_schedule": "cosine",
    "patience": 15,
    "monitor": "val_acc",
}

#: Parameters that describe the data (see ``setup_hpo.DATA_DEFAULTS``), not the network.
DATA_KEYS = frozenset({"threshold", "channels", "bin_size", "letters", "clip"})


#: The network (weights drawn from ``seed``, default 0) and its training configuration:
#: ``build(params, info, device=..., epochs_cap=None)``. Sizes come from the data (``n_in``,
#: ``n_out``) and the time step is the bin size (``dt = info.dt`` seconds); ``epochs_cap``
#: lowers the epoch budget (smoke runs, demos).
build = partial(model_and_config_from_params, fixed=FIXED, data_keys=DATA_KEYS,
                default_model="rsnn")


Built = Sequence[tuple[RecurrentSNN, TrainConfig]]
Folds = Sequence[tuple[Dataset, Dataset]]


@dataclass(eq=False)
class _Run:
    """One fold of one population: the trainer, its epochs, and which members it trains."""

    key: Hashable  # what its members share (population key, data key)
    fold: int
    trainer: PopulationTrainer
    epochs: Generator[dict[int, EpochMetrics], None, list[History]]
    members: list[int] = field(default_factory=list)  # member of each trainer index
    over: bool = False


def train_population(
    built: Sequence[Built],
    folds: Sequence[Folds],
    data_keys: Sequence[Hashable],
    on_epoch: Callable[[int, int, list[EpochMetrics]], bool | None] | None = None,
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
    trial.
    ``on_epoch(member, epoch, latest)`` gets each of a member's folds' latest metrics after
    every epoch it trained; True stops that member (all its folds), the others go on.
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
        key = (population_key(net.config, cfg), data_keys[m])
        histories.append([None] * len(built[m]))
        latest.append([None] * len(built[m]))
        epochs.append(0)
        done.append(False)
        for f, member in enumerate(built[m]):
            run = next((r for r in runs if not r.over and r.key == key and r.fold == f), None)
            if run is None:
                trainer = PopulationTrainer([member])
                train_set, val_set = folds[m][f]
                run = _Run(key, f, trainer, trainer.epochs(train_set.tensor_dataset(),
                                                           val_set.tensor_dataset()))
                runs.append(run)
            else:
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
            if on_epoch is not None and on_epoch(m, epochs[m], shown):
                for run in runs:
                    if m in run.members and run.members.index(m) in run.trainer.active:
                        run.trainer.stop(run.members.index(m), "stopped by the engine")
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

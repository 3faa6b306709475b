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

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

from spiketune.data import Dataset
from spiketune.snn import (
    EpochMetrics,
    History,
    PopulationTrainer,
    RecurrentSNN,
    TrainConfig,
    group_members,
    model_and_config_from_params,
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


def train_population(
    built: Sequence[Sequence[tuple[RecurrentSNN, TrainConfig]]],
    folds: Sequence[Sequence[tuple[Dataset, Dataset]]],
    data_keys: Sequence[Hashable],
    on_epoch: Callable[[int, int, list[EpochMetrics]], bool | None] | None = None,
) -> list[list[History]]:
    """Train several trials' networks as batched populations (population mode).

    ``built[m][f]`` is member ``m``'s network and configuration for fold ``f``, trained on
    ``folds[m][f]``; members with equal ``data_keys[m]`` read the same data. Members that
    can share a computation (same sizes, rule, batch size, data: see
    :func:`spiketune.snn.group_members`) form one :class:`PopulationTrainer` per fold, and all
    of them advance one epoch at a time, as :func:`spiketune.snn.train_folds` does for one
    trial.
    ``on_epoch(member, epoch, latest)`` gets each of a member's folds' latest metrics after
    every epoch it trained; True stops that member (all its folds), the others go on.
    Returns each member's Histories, one per fold; each network ends with its best weights.
    """
    configs = [(net.config, cfg) for net, cfg in (b[0] for b in built)]
    groups = group_members(configs, data_keys=list(data_keys))
    runs: list[tuple[list[int], int, PopulationTrainer, Any]] = []
    for group in groups:
        for f in range(len(built[group[0]])):
            trainer = PopulationTrainer([built[m][f] for m in group])
            train_set, val_set = folds[group[0]][f]
            gen = trainer.epochs(train_set.tensor_dataset(), val_set.tensor_dataset())
            runs.append((group, f, trainer, gen))
    latest: list[list[EpochMetrics | None]] = [[None] * len(b) for b in built]
    epochs = [0] * len(built)
    histories: list[list[History | None]] = [[None] * len(b) for b in built]
    active = list(runs)
    while active:
        advanced: set[int] = set()
        for run in list(active):
            group, f, trainer, gen = run
            try:
                report = next(gen)
            except StopIteration as done:
                for local, m in enumerate(group):
                    histories[m][f] = done.value[local]
                active.remove(run)
                continue
            for local, metrics in report.items():
                latest[group[local]][f] = metrics
                advanced.add(group[local])
        for m in sorted(advanced):
            epochs[m] += 1
            shown = [x for x in latest[m] if x is not None]
            if on_epoch is not None and on_epoch(m, epochs[m], shown):
                for group, _, trainer, _ in runs:
                    if m in group and group.index(m) in trainer.active:
                        trainer.stop(group.index(m), "stopped by the engine")
    return [[h for h in hs if h is not None] for hs in histories]

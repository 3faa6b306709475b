"""The network and its training: a recurrent LIF/ALIF layer and a leaky readout, trained by
e-prop (or BPTT) with ``spiketune.snn``, validated every epoch, stopped early on a plateau.
The layer reads one input channel (the pattern's spike train, binned) and the readout has one
unit per class (20).

A trial's parameters name fields of :class:`spiketune.snn.SNNConfig` and
:class:`spiketune.snn.TrainConfig` directly (``tau_mem``, ``lr``...); nested choices arrive as
``{"_name": option, sub-parameters...}`` and are flattened (``{"neuron": {"_name": "alif",
"tau_adapt": 0.5}}`` becomes ``neuron="alif", tau_adapt=0.5``). What the search leaves out
takes the values in :data:`FIXED`. A misspelt or out-of-range parameter fails the trial at
once with a ``ConfigError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from spiketune.data import Dataset, DatasetInfo
from spiketune.snn import (
    EpochMetrics,
    History,
    RecurrentSNN,
    TrainConfig,
    Trainer,
    configs_from_params,
    predict,
)
from spiketune.trial import flat_parameters

#: Values the search does not choose. ``ce_summed`` (cross-entropy of the readout summed over
#: the sample, or over its last ``loss_window`` seconds) lets evidence count whenever it comes:
#: some classes say everything in their first 60 ms (phasic bursting, the integrator's one
#: spike), others only after 0.6 s (rebound spike, rebound burst). The weights validated and
#: kept are a moving average (``ema_decay``, about the last 200 optimiser steps) under a
#: cosine-annealed learning rate: the raw weights' validation accuracy jumps from epoch to
#: epoch, which would make the "best epoch" partly luck. ``patience`` ends a run after that
#: many epochs without a better validation accuracy.
FIXED: dict[str, Any] = {
    "loss": "ce_summed",
    "ema_decay": 0.995,
    "lr_schedule": "cosine",
    "patience": 15,
    "monitor": "val_acc",
}

#: Parameters that describe the data (see ``setup_hpo.DATA_DEFAULTS``), not the network.
DATA_KEYS = frozenset({"bin_size", "clip", "bias_input"})


def build(
    params: Mapping[str, Any],
    info: DatasetInfo,
    *,
    device: torch.device,
    epochs_cap: int | None = None,
) -> tuple[RecurrentSNN, TrainConfig]:
    """The network (weights drawn from ``seed``, default 0) and its training configuration.

    Sizes come from the data (``n_in``, ``n_out``) and the time step is the bin size
    (``dt = info.dt`` seconds). ``epochs_cap`` lowers the epoch budget (smoke runs, demos).
    """
    flat = flat_parameters(params)
    chosen = {k: v for k, v in flat.items() if k not in DATA_KEYS}
    defaults = {**FIXED, "n_in": info.n_inputs, "n_out": info.n_classes, "dt": info.dt}
    snn_config, train_config = configs_from_params(chosen, defaults)
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params(
            {**train_config.model_dump(), "epochs": epochs_cap}
        )
    net = RecurrentSNN(snn_config, seed=train_config.seed, device=device)
    return net, train_config


def train(
    net: RecurrentSNN,
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
) -> tuple[Trainer, History]:
    """Train until the epoch budget or a validation plateau; ``net`` ends with the weights of
    its best validation epoch. ``on_epoch`` is called after each epoch (True stops)."""
    trainer = Trainer(net, config, callback=on_epoch)
    history = trainer.fit(
        (train_set.inputs, train_set.labels), (val_set.inputs, val_set.labels)
    )
    return trainer, history


def train_folds(
    built: Sequence[tuple[RecurrentSNN, TrainConfig]],
    folds: Sequence[tuple[Dataset, Dataset]],
    on_epoch: Callable[[int, list[EpochMetrics]], None] | None = None,
) -> tuple[list[Trainer], list[History]]:
    """Train one network per fold, all advancing one epoch at a time (lock-step).

    After every epoch ``on_epoch(epoch, latest)`` gets each fold's latest metrics (a fold that
    has stopped early keeps its last ones), so that the trial can report their mean and a
    pruner can judge it at every epoch. Each network ends with its best validation weights.
    """
    trainers = [Trainer(net, config) for net, config in built]
    runs = [t.epochs(train_set.tensor_dataset(), val_set.tensor_dataset())
            for t, (train_set, val_set) in zip(trainers, folds, strict=True)]
    histories: list[History | None] = [None] * len(runs)
    latest: list[EpochMetrics | None] = [None] * len(runs)
    epoch = 0
    while any(h is None for h in histories):
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


def predict_classes(net: RecurrentSNN, dataset: Dataset, batch_size: int = 128) -> torch.Tensor:
    """The class ``net`` predicts for each sample (argmax of the summed readout), on the CPU."""
    out = []
    with torch.no_grad():
        for lo in range(0, len(dataset), batch_size):
            readout = net.simulate(dataset.inputs[lo : lo + batch_size]).readout
            out.append(predict(readout, net.config.loss_steps).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

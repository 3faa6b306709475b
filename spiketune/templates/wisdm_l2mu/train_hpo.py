"""The network and its training: an L²MU (spiking Legendre Memory Unit), or one of its two
baselines, the non-spiking LMU and a recurrent SNN, trained on the WISDM windows by
``spiketune.snn.Trainer``, validated every epoch, stopped early on a plateau.

A trial's parameters name the model (``model``: ``l2mu``, ``lmu`` or ``rsnn``, a nested
choice whose sub-parameters are the model's own) and the training (fields of
:class:`spiketune.snn.TrainConfig`: ``lr``, ``batch_size``...). Nested choices arrive as
``{"_name": option, sub-parameters...}`` and are flattened (``{"model": {"_name": "l2mu",
"order": 8}}`` becomes ``model="l2mu", order=8``). The model's parameters:

- ``l2mu``: ``order``, ``theta`` (seconds), ``memory_size``, ``hidden_size``, the initial decay
  per step and threshold of each population, ``beta_u``, ``beta_m``, ``beta_h``, ``beta_out``,
  ``threshold_u``, ``threshold_m``, ``threshold_h`` (and ``threshold_out`` with
  ``readout="spiking"``), ``readout`` (``leaky`` or ``spiking``), ``readout_bias``,
  ``detach_reset``: the arguments of :class:`spiketune.snn.L2MU`;
- ``lmu``: ``order``, ``theta``, ``memory_size``, ``hidden_size``, ``readout_bias``
  (:class:`spiketune.snn.LMU`);
- ``rsnn``: any field of :class:`spiketune.snn.SNNConfig` (``n_rec``, ``tau_mem``, ``rule``...).

``loss_window`` (seconds, the stretch at the end of the sample the loss and the decision
read; absent or null: the whole sample) applies to all three. What the search leaves out
takes the values in :data:`FIXED`. A misspelt or out-of-range parameter fails the trial at
once with one ``ConfigError`` naming each problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from spiketune import ConfigError, Problem
from spiketune.data import Dataset, DatasetInfo
from spiketune.snn import (
    LMU,
    EpochMetrics,
    History,
    Model,
    TrainConfig,
    Trainer,
    model_from_params,
)
from spiketune.trial import flat_parameters

#: The models a trial can train, by the name the search space gives them.
MODELS = ("l2mu", "lmu", "rsnn")
#: Values the search does not choose. ``ce_summed``: the cross-entropy of the readout summed
#: over the window (or its last ``loss_window`` seconds), the decision the network is judged
#: by. The weights validated and kept are a moving average (``ema_decay``, about the last 200
#: optimiser steps) under a cosine-annealed learning rate, which damps the epoch-to-epoch
#: jumps of the validation accuracy. ``patience`` ends a run after that many epochs without a
#: better validation accuracy.
FIXED: dict[str, Any] = {
    "loss": "ce_summed",
    "ema_decay": 0.995,
    "lr_schedule": "cosine",
    "patience": 10,
    "monitor": "val_acc",
}

#: Parameters that describe the data (see ``setup_hpo.DATA_DEFAULTS``), not the network.
DATA_KEYS = frozenset({"input", "event_threshold", "clip"})


def build(
    params: Mapping[str, Any],
    info: DatasetInfo,
    *,
    device: torch.device,
    epochs_cap: int | None = None,
) -> tuple[Model, TrainConfig]:
    """The network (weights drawn from ``seed``, default 0) and its training configuration.

    Sizes come from the data (``n_in``, ``n_out``) and the time step is the bin size
    (``dt = info.dt`` seconds). ``epochs_cap`` lowers the epoch budget (smoke runs, demos).
    """
    flat = flat_parameters(params)
    model = flat.pop("model", "l2mu")
    settings = {**FIXED, **{k: v for k, v in flat.items() if k not in DATA_KEYS}}
    train_keys = set(TrainConfig.model_fields)
    problems: list[Problem] = []
    train_config = None
    try:
        train_config = TrainConfig.from_params(
            {k: v for k, v in settings.items() if k in train_keys})
    except ConfigError as err:
        problems += err.problems
    rest = {k: v for k, v in settings.items() if k not in train_keys}
    seed = train_config.seed if train_config is not None else 0
    net: Model | None = None
    try:
        net = model_from_params(model, rest, n_in=info.n_inputs, n_out=info.n_classes,
                                dt=info.dt, n_steps=info.n_steps, seed=seed, device=device)
    except ConfigError as err:
        problems += err.problems
    if problems or net is None or train_config is None:
        raise ConfigError(problems)
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params(
            {**train_config.model_dump(), "epochs": epochs_cap})
    return net, train_config


def is_spiking(net: Model) -> bool:
    """Whether the model spikes (and so has spike figures): the L²MU and the RSNN."""
    return not isinstance(net, LMU)


def train_folds(
    built: Sequence[tuple[Model, TrainConfig]],
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


def predict_classes(net: Model, dataset: Dataset, batch_size: int = 128) -> torch.Tensor:
    """The class ``net`` predicts for each sample (argmax of its readout summed over the
    decision window), on the CPU."""
    out = []
    loss = net.readout_loss()
    net.eval()
    with torch.no_grad():
        for lo in range(0, len(dataset), batch_size):
            readout = net.simulate(dataset.inputs[lo : lo + batch_size]).readout
            out.append(loss.scores(readout).argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

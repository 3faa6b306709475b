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

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

from spiketune import ConfigError, Problem
from spiketune.data import Dataset, split_parts
from spiketune.snn import (
    Model,
    TrainConfig,
    TrainingDiverged,
    model_and_config_from_params,
    train_folds,
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

#: Parameters that describe the data (see ``setup_hpo.DATA_DEFAULTS``) or what the network
#: learns before the task (``pretrain_epochs``), not the network.
DATA_KEYS = frozenset({"threshold", "channels", "bin_size", "letters", "clip", "pretrain_epochs"})
#: Share of the other letters' samples (per letter, split seed 0) that validates pretraining.
PRETRAIN_VAL = 0.1


#: The network (weights drawn from ``seed``, default 0) and its training configuration:
#: ``build(params, info, device=..., epochs_cap=None)``. Sizes come from the data (``n_in``,
#: ``n_out``) and the time step is the bin size (``dt = info.dt`` seconds); ``epochs_cap``
#: lowers the epoch budget (smoke runs, demos).
build = partial(model_and_config_from_params, fixed=FIXED, data_keys=DATA_KEYS,
                default_model="rsnn")


def pretrain_epochs(params: Mapping[str, Any]) -> int:
    """The trial's ``pretrain_epochs`` (0 when absent): epochs on the archive's other letters
    before the task; a ConfigError unless a whole number of at least 0."""
    value = params.get("pretrain_epochs", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value != int(value) or value < 0:
        raise ConfigError(Problem("pretrain_epochs", value, "a whole number of epochs >= 0"))
    return int(value)


def pretrain(
    params: Mapping[str, Any], other: Dataset, *, device: Any = None,
    epochs_cap: int | None = None, deadline: float | None = None,
) -> tuple[Model, float, int]:
    """A network of the trial's parameters trained on ``other`` (the archive's letters the task
    leaves out) for ``pretrain_epochs`` epochs (at most ``epochs_cap``), with the task's
    training settings. It keeps the weights that did best on a 10 % validation part of those
    letters, so the task's own validation and test parts choose nothing here. Returns the
    network, that validation accuracy and its epoch; the task's networks take its input and
    recurrent weights (``spiketune.snn.transfer_weights``) and learn their readout afresh.
    ``deadline`` (a ``perf_counter`` instant) ends it early, with its best epoch, as
    ``spiketune.snn.train_folds`` ends a trial's training."""
    epochs = pretrain_epochs(params)
    if epochs_cap is not None:
        epochs = min(epochs, epochs_cap)
    parts = split_parts(other, ratios=(1.0 - PRETRAIN_VAL, PRETRAIN_VAL, 0.0))
    net, config = build(params, other.info, device=device)
    # No early stop: a short pretraining runs its epochs, its cosine schedule over them.
    config = TrainConfig.from_params({**config.model_dump(), "epochs": epochs, "patience": None})
    trainers, histories = train_folds([(net, config)], [(parts.train, parts.val)],
                                      deadline=deadline)
    trainer, history = trainers[0], histories[0]
    best = history.best
    if best is None:
        raise TrainingDiverged(f"pretraining on the other letters diverged ({history.stop_reason})")
    return trainer.eval_net, float(best.val_acc or 0.0), best.epoch

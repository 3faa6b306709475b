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

from functools import partial
from typing import Any

from spiketune.snn import model_and_config_from_params

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

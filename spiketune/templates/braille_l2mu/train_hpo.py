"""The network and its training: an L²MU (spiking Legendre Memory Unit), or one of its two
baselines, the non-spiking LMU and a recurrent SNN, trained by ``spiketune.snn.Trainer``,
validated every epoch, stopped early on a plateau.

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

from functools import partial
from typing import Any

from spiketune.snn import model_and_config_from_params

#: The models a trial can train, by the name the search space gives them.
MODELS = ("l2mu", "lmu", "rsnn")
#: Values the search does not choose. ``ce_summed`` (cross-entropy of the readout summed over
#: the sample, or its last ``loss_window`` seconds) trains these sparse events better than the
#: per-step cross-entropy. The weights validated and kept are a moving average (``ema_decay``,
#: about the last 200 optimiser steps) under a cosine-annealed learning rate, which makes the
#: best-validation epoch far less a matter of luck on small validation sets. ``patience`` ends
#: a run after that many epochs without a better validation accuracy.
FIXED: dict[str, Any] = {
    "loss": "ce_summed",
    "ema_decay": 0.995,
    "lr_schedule": "cosine",
    "patience": 15,
    "monitor": "val_acc",
}

#: Parameters that describe the data (see ``setup_hpo.DATA_DEFAULTS``), not the network.
DATA_KEYS = frozenset({"task", "bin_size", "clip"})


#: The network (weights drawn from ``seed``, default 0) and its training configuration:
#: ``build(params, info, device=..., epochs_cap=None)``. Sizes come from the data (``n_in``,
#: ``n_out``), the time step is the bin size (``dt = info.dt`` seconds), ``model`` defaults to
#: the L²MU; ``epochs_cap`` lowers the epoch budget (smoke runs, demos).
build = partial(model_and_config_from_params, fixed=FIXED, data_keys=DATA_KEYS,
                default_model="l2mu")

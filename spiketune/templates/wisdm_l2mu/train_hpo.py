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
    L2MU,
    LMU,
    EpochMetrics,
    History,
    Model,
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    Trainer,
)

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
_POPULATIONS = ("u", "m", "h", "out")
#: The parameters of the Legendre models beyond the loss (constructor arguments, and the
#: L²MU's per-population constants spelt flat).
LEGENDRE_KEYS: dict[str, frozenset[str]] = {
    "lmu": frozenset({"order", "theta", "memory_size", "hidden_size", "readout_bias"}),
    "l2mu": frozenset({
        "order", "theta", "memory_size", "hidden_size", "readout_bias", "readout",
        "detach_reset", *(f"beta_{p}" for p in _POPULATIONS),
        *(f"threshold_{p}" for p in _POPULATIONS),
    }),
}
_INTEGERS = ("order", "memory_size", "hidden_size")


def flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested choices ``{"_name": option, ...}`` as ``key=option`` plus their sub-parameters."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and "_name" in value:
            flat[key] = value["_name"]
            flat.update(flatten({k: v for k, v in value.items() if k != "_name"}))
        else:
            flat[key] = value
    return flat


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
    flat = flatten(params)
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
        if model not in MODELS:
            raise ConfigError(Problem("model", model, "one of " + ", ".join(MODELS)))
        if model == "rsnn":
            fixed = {"n_in": info.n_inputs, "n_out": info.n_classes, "dt": info.dt}
            net = RecurrentSNN(SNNConfig.from_params({**fixed, **rest}), seed=seed,
                               device=device)
        else:
            net = _legendre(model, rest, info, seed, device)
    except ConfigError as err:
        problems += err.problems
    if problems or net is None or train_config is None:
        raise ConfigError(problems)
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params(
            {**train_config.model_dump(), "epochs": epochs_cap})
    return net, train_config


def _legendre(
    model: str, settings: Mapping[str, Any], info: DatasetInfo, seed: int, device: torch.device
) -> Model:
    """The LMU or L²MU of ``settings``: every key a constructor argument (the per-population
    constants gathered into ``beta`` and ``threshold``), ``loss_window`` turned into steps."""
    known = LEGENDRE_KEYS[model] | {"loss", "loss_window"}
    problems = [Problem(k, v, f"unknown parameter of the {model}; known: "
                        + ", ".join(sorted(known)))
                for k, v in settings.items() if k not in known]
    kwargs: dict[str, Any] = {k: v for k, v in settings.items()
                              if k in known and k != "loss_window"}
    for key in _INTEGERS:  # quniform and the like give integral floats
        value = kwargs.get(key)
        if isinstance(value, float) and value.is_integer():
            kwargs[key] = int(value)
    for name in ("beta", "threshold"):
        given = {p: kwargs.pop(f"{name}_{p}") for p in _POPULATIONS if f"{name}_{p}" in kwargs}
        if given:
            kwargs[name] = given
    window = settings.get("loss_window")
    if window is not None:
        steps = round(float(window) / info.dt) if isinstance(window, int | float) else 0
        if 1 <= steps <= info.n_steps:
            kwargs["loss_steps"] = steps
        else:
            problems.append(Problem("loss_window", window, f"seconds, from one step "
                                    f"({info.dt:g} s) to the whole sample "
                                    f"({info.n_steps * info.dt:g} s)"))
    for key in ("order", "theta"):
        if key not in kwargs:
            problems.append(Problem(key, None, f"required for the {model}"))
    cls = L2MU if model == "l2mu" else LMU
    net = None
    try:  # built even after a problem, so that its own problems are named too
        net = cls(info.n_inputs, info.n_classes, dt=info.dt, seed=seed, device=device,
                  **{"order": 1, "theta": 1.0, **kwargs})
    except ConfigError as err:
        problems += err.problems
    if problems or net is None:
        raise ConfigError(problems)
    return net


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

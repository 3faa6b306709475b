"""A model from one flat dict of a trial's hyperparameters, whichever model the search chose.

A search space that offers several models (``{"model": {"_type": "choice", "_value":
[{"_name": "l2mu", ...}, {"_name": "lmu", ...}, {"_name": "rsnn", ...}]}}``) hands a trial the
chosen model's name and its own parameters; :func:`model_from_params` builds it, and names
every parameter it cannot use in one :class:`~spiketune.errors.ConfigError`. The LMU and L²MU
take their constructors' arguments, with the L²MU's per-population constants spelt flat
(``beta_u``, ``threshold_h``...: what a search space can express) and ``loss_window`` in
seconds; the recurrent SNN takes the fields of :class:`~spiketune.snn.SNNConfig`.

:func:`model_and_config_from_params` takes a trial's whole parameter dict instead (nested
choices, training fields and data options together): it sets the data options aside, adds
the values the search does not choose, and returns the network with its
:class:`~spiketune.snn.TrainConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from spiketune.errors import ConfigError, Problem
from spiketune.snn._config import SNNConfig, TrainConfig, configs_from_params, seconds_value
from spiketune.snn._lmu import L2MU, LMU
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN

if TYPE_CHECKING:
    from spiketune.data._base import DatasetInfo

__all__ = ["MODEL_NAMES", "is_spiking", "model_and_config_from_params", "model_from_params"]

#: The models :func:`model_from_params` builds, by the name a search space gives them.
MODEL_NAMES = ("l2mu", "lmu", "rsnn")
_POPULATIONS = ("u", "m", "h", "out")
#: The parameters of the Legendre models: constructor arguments, and the L²MU's
#: per-population constants spelt flat; ``loss`` and ``loss_window`` for the readout's loss.
_LEGENDRE_KEYS: dict[str, frozenset[str]] = {
    "lmu": frozenset({"order", "theta", "memory_size", "hidden_size", "readout_bias"}),
    "l2mu": frozenset({
        "order", "theta", "memory_size", "hidden_size", "readout_bias", "readout",
        "detach_reset", *(f"beta_{p}" for p in _POPULATIONS),
        *(f"threshold_{p}" for p in _POPULATIONS),
    }),
}
_INTEGERS = ("order", "memory_size", "hidden_size")
_T = TypeVar("_T")


def model_from_params(
    model: str,
    params: Mapping[str, Any],
    *,
    n_in: int,
    n_out: int,
    dt: float,
    n_steps: int,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Model:
    """The ``model`` (``"l2mu"``, ``"lmu"`` or ``"rsnn"``) of the flat network ``params``.

    Sizes come from the data (``n_in`` inputs, ``n_out`` classes, ``n_steps`` steps of ``dt``
    seconds); the weights are drawn from ``seed``. ``params`` holds only the network's
    parameters (a trial's training parameters go to ``TrainConfig``). ``loss_window`` is in
    seconds, from one step to the whole sample. Integral floats (from ``quniform``) are taken
    as integers for ``order``, ``memory_size`` and ``hidden_size``.
    """
    if model not in MODEL_NAMES:
        raise ConfigError(Problem("model", model, "one of " + ", ".join(MODEL_NAMES)))
    if not isinstance(params, Mapping):
        raise ConfigError(Problem("params", type(params).__name__,
                                  "a mapping of parameter names to values"))
    if seconds_value(dt) is None:  # every window and time constant is read through it
        raise ConfigError(Problem("dt", dt, "seconds per step, a finite number > 0"))
    dt = float(dt)
    if model == "rsnn":
        problems = _rsnn_problems(params, n_in=n_in, n_out=n_out, dt=dt, n_steps=n_steps)
        config = _all_problems(problems, lambda: SNNConfig.from_params(
            {**params, "n_in": n_in, "n_out": n_out, "dt": dt}))
        return RecurrentSNN(config, seed=seed, device=device)
    known = _LEGENDRE_KEYS[model] | {"loss", "loss_window"}
    problems = [Problem(k, v, f"unknown parameter of the {model}; known: "
                        + ", ".join(sorted(known)))
                for k, v in params.items() if k not in known]
    kwargs: dict[str, Any] = {k: v for k, v in params.items()
                              if k in known and k != "loss_window"}
    for key in _INTEGERS:
        value = kwargs.get(key)
        if isinstance(value, float) and value.is_integer():
            kwargs[key] = int(value)
    for name in ("beta", "threshold"):
        given = {p: kwargs.pop(f"{name}_{p}") for p in _POPULATIONS if f"{name}_{p}" in kwargs}
        if given:
            kwargs[name] = given
    window = params.get("loss_window")
    if window is not None:
        seconds = seconds_value(window)
        steps = 0 if seconds is None else round(seconds / dt)
        if 1 <= steps <= n_steps:
            kwargs["loss_steps"] = steps
        else:
            problems.append(Problem("loss_window", window, f"seconds, from one step ({dt:g} s) "
                                    f"to the whole sample ({n_steps * dt:g} s)"))
    for key in ("order", "theta"):
        if key not in kwargs:
            problems.append(Problem(key, None, f"required for the {model}"))
    cls = L2MU if model == "l2mu" else LMU
    net = None
    try:  # built even after a problem, so that its own problems are named too
        net = cls(n_in, n_out, dt=dt, seed=seed, device=device,
                  **{"order": 1, "theta": 1.0, **kwargs})
    except ConfigError as err:
        problems += err.problems
    if problems or net is None:
        raise ConfigError(problems)
    return net


def model_and_config_from_params(
    params: Mapping[str, Any],
    info: DatasetInfo,
    *,
    fixed: Mapping[str, Any] | None = None,
    data_keys: Collection[str] = (),
    default_model: str = "rsnn",
    device: torch.device | str | None = None,
    epochs_cap: int | None = None,
) -> tuple[Model, TrainConfig]:
    """The network of a trial's parameters and its training configuration.

    ``params`` are a trial's parameters as the tuner gives them (nested choices are
    flattened, see :func:`spiketune.trial.flat_parameters`): ``model`` names the model
    (``default_model`` when absent), the keys in ``data_keys`` describe the data and are set
    aside, every other key is a field of :class:`TrainConfig` or a parameter of the model;
    ``fixed`` gives the values the search does not choose (``params`` win over it). Sizes
    come from the data (``info.n_inputs`` inputs, ``info.n_classes`` readout units,
    ``info.n_steps`` steps) and the time step is the bin size (``dt = info.dt`` seconds); the
    weights are drawn from the training ``seed`` (default 0). ``epochs_cap`` lowers the epoch
    budget (smoke runs, demos). Every problem (a misspelt or out-of-range parameter, of the
    model or of the training) is named in one :class:`~spiketune.errors.ConfigError`.
    """
    from spiketune.trial import flat_parameters

    flat = flat_parameters(params)
    model = flat.pop("model", default_model)
    settings = {**(fixed or {}), **{k: v for k, v in flat.items() if k not in data_keys}}
    if model == "rsnn":
        # One config pair from one flat dict: an unknown key is named with every known one.
        sizes = {"n_in": info.n_inputs, "n_out": info.n_classes, "dt": info.dt}
        problems = _rsnn_problems(settings, n_in=info.n_inputs, n_out=info.n_classes,
                                  dt=info.dt, n_steps=info.n_steps)
        snn_config, train_config = _all_problems(
            problems, lambda: configs_from_params({**settings, **sizes}))
        net: Model = RecurrentSNN(snn_config, seed=train_config.seed, device=device)
    else:
        net, train_config = _legendre(model, settings, info, device)
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params(
            {**train_config.model_dump(), "epochs": epochs_cap})
    return net, train_config


def _all_problems(problems: list[Problem], build: Callable[[], _T]) -> _T:
    """``build()``, with ``problems`` found before it and those it raises named together in
    one :class:`~spiketune.errors.ConfigError`."""
    try:
        built = build()
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    return built


def _rsnn_problems(
    params: Mapping[str, Any], *, n_in: int, n_out: int, dt: float, n_steps: int
) -> list[Problem]:
    """What a recurrent SNN's parameters may not say: its sizes and time step come from the
    data (a network at another ``dt`` would read every time constant wrong; the data's own
    values may be repeated), and its loss window (seconds) must lie within the sample, as
    for the Legendre models."""
    data = {"n_in": (n_in, "inputs"), "n_out": (n_out, "classes"), "dt": (dt, "s bins")}
    problems = [Problem(key, params[key], f"comes from the data ({value:g} {what}); remove it")
                for key, (value, what) in data.items()
                if key in params and params[key] != value]
    window = params.get("loss_window")
    seconds = seconds_value(window)
    if window is not None and (seconds is None or not 1 <= round(seconds / dt) <= n_steps):
        problems.append(Problem("loss_window", window, f"seconds, from one step ({dt:g} s) "
                                f"to the whole sample ({n_steps * dt:g} s)"))
    return problems


def _legendre(
    model: str, settings: Mapping[str, Any], info: DatasetInfo,
    device: torch.device | str | None,
) -> tuple[Model, TrainConfig]:
    """A model other than the RSNN (or an unknown name), with its training configuration:
    the problems of both reported together."""
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
    return net, train_config


def is_spiking(net: Model) -> bool:
    """Whether ``net`` spikes, and so has spike figures (spikes per sample, rates, synaptic
    operations) to report: every model but the non-spiking :class:`LMU`."""
    return not isinstance(net, LMU)

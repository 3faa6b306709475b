"""Checkpoints: weights plus every hyperparameter needed to rebuild the network.

A checkpoint is a plain dict of tensors, strings and numbers written with ``torch.save`` and
read with ``torch.load(weights_only=True)``, so loading one never runs code from the file::

    {"format": "spiketune.snn/1", "model": "RecurrentSNN", "config": {...}, "state_dict": {...},
     "dtype": "float32", "train_config": {...} | None, "history": [{...}, ...] | None,
     "extra": {...}}

``model`` names the class (``Model.name``: ``RecurrentSNN``, ``LMU``, ``L2MU``) and ``config``
is its ``to_config()`` (for a RecurrentSNN its SNNConfig); a checkpoint without ``model``
(written before there were other models) holds a RecurrentSNN. Loading into a network of
another class or architecture (sizes, neuron type, recurrence, readout bias, feedback; for
the LMU and L²MU sizes, order, readout) is refused with a CheckpointError that names each
difference.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spiketune._torch_load import finding, refused_global
from spiketune.errors import CheckpointError, ConfigError, Problem
from spiketune.snn._config import SNNConfig, TrainConfig
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._registry import MODELS
from spiketune.snn._trainer import History

FORMAT = "spiketune.snn/1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: the rebuilt network and what was saved with it.

    ``config``: the network's :class:`SNNConfig` for a RecurrentSNN, its ``to_config()`` dict
    for any other model; ``model``: the class's ``name``."""

    network: Model
    config: SNNConfig | dict[str, Any]
    train_config: TrainConfig | None = None
    history: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    model: str = RecurrentSNN.name


def save_checkpoint(
    path: str | os.PathLike[str], net: Model, *, train_config: TrainConfig | None = None,
    history: History | None = None, extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (class, weights, config) and optional training record to ``path``
    atomically.

    ``train_config`` is a :class:`TrainConfig` and ``history`` a :class:`History` (what a
    Trainer holds), or None. ``extra`` may hold tensors, strings, numbers, lists and dicts of
    them (what ``weights_only`` loading accepts)."""
    path = Path(path)
    if type(net) not in MODELS.values():
        known = ", ".join(MODELS)
        raise ConfigError(Problem("net", type(net).__name__, f"one of the models {known}"))
    problems = [
        Problem(name, type(value).__name__, f"a {kind.__name__} or None")
        for name, value, kind in (("train_config", train_config, TrainConfig),
                                  ("history", history, History))
        if value is not None and not isinstance(value, kind)
    ]
    if extra is not None and not isinstance(extra, dict):
        problems.append(Problem("extra", type(extra).__name__, "a dict or None"))
    else:
        problems += _extra_problems(extra or {}, "extra")
    if problems:  # saved, it would be a file load_checkpoint refuses: the weights lost to it
        raise ConfigError(problems)
    dtype = str(next(net.parameters()).dtype).removeprefix("torch.")
    if dtype not in _DTYPES:  # saved, it would be a file load_checkpoint refuses
        raise ConfigError(Problem("net", dtype, "a network in " + " or ".join(_DTYPES)
                                  + ": convert it first, e.g. net.float()"))
    if not path.parent.is_dir():
        raise CheckpointError(f"{path}: its directory {path.parent} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; give the name of the file to write")
    payload = {
        "format": FORMAT,
        "model": net.name,
        "config": net.to_config(),
        "dtype": dtype,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "train_config": None if train_config is None else train_config.model_dump(),
        "history": None if history is None else history.as_dicts(),
        "extra": dict(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except OSError as e:  # a full disk, no permission: no half-written file left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot be written ({e.strerror or e})") from None
    return path


#: exact types: NumPy's float64 is a float, and pickles as a NumPy scalar all the same
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _extra_problems(value: Any, where: str) -> list[Problem]:
    """The values of ``extra`` that loading with ``weights_only`` would refuse (NumPy
    numbers and arrays, paths, objects), each named by its place."""
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return []
    if type(value) is dict:
        out: list[Problem] = []
        for key, item in value.items():
            if type(key) not in (str, int):
                out.append(Problem(where, key, "keys must be strings or integers"))
            else:
                out += _extra_problems(item, f"{where}.{key}")
        return out
    if type(value) in (list, tuple):
        return [p for i, item in enumerate(value) for p in _extra_problems(item, f"{where}[{i}]")]
    return [Problem(where, f"<{type(value).__module__}.{type(value).__qualname__}>",
                    "tensors, strings, numbers, lists and dicts of them (what loading with "
                    "weights_only accepts): convert it, e.g. float(x), x.tolist() or str(path)")]


def load_checkpoint(
    path: str | os.PathLike[str], *, device: torch.device | str | None = None,
    expect: SNNConfig | Model | None = None,
) -> Checkpoint:
    """Rebuild the network saved in ``path`` (whichever registered model it holds); with
    ``expect`` (a model, or the SNNConfig of a RecurrentSNN), refuse another class or
    architecture."""
    data = _read(path)
    cls = _model_class(path, data)
    dtype = _DTYPES.get(str(data.get("dtype", "float32")))
    try:  # building the network validates its config
        net = cls.from_config(data["config"], device=device, dtype=dtype or torch.float32)
        train = data.get("train_config")
        train_config = None if train is None else TrainConfig.model_validate(train)
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{path}: the saved hyperparameters are invalid: {err}") from None
    if expect is not None:
        _check_architecture(path, net, expect)
    if dtype is None:
        raise CheckpointError(f"{path}: unsupported dtype {data.get('dtype')!r}")
    _load_state(path, net, data["state_dict"])
    config = net.config if isinstance(net, RecurrentSNN) else net.to_config()
    return Checkpoint(
        network=net, config=config, train_config=train_config, history=data.get("history"),
        extra=data.get("extra") or {}, model=cls.name,
    )


def load_weights(net: Model, path: str | os.PathLike[str]) -> Model:
    """Load the weights in ``path`` into ``net``, which must be of the same class and
    architecture.

    Hyperparameters that do not shape the weights (time constants, rule) are ``net``'s own."""
    data = _read(path)
    cls = _model_class(path, data)
    try:
        saved = cls.from_config(data["config"])
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{path}: the saved hyperparameters are invalid: {err}") from None
    _check_architecture(path, saved, net)
    _load_state(path, net, data["state_dict"])
    return net


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except pickle.UnpicklingError as err:  # what the weights-only unpickler refused
        raise CheckpointError(f"{path}: {_refusal(err)}") from None
    except Exception as err:  # a truncated or foreign file fails in many other ways
        raise CheckpointError(f"{path}: not a readable checkpoint ({finding(err)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: not a spiketune SNN checkpoint (format {found!r})")
    if not isinstance(data.get("config"), dict) or not isinstance(data.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint lacks its config or its state_dict")
    return data


def _refusal(err: pickle.UnpicklingError) -> str:
    """Why the weights-only unpickler refused the file; never torch's advice to load it unsafely."""
    asked = refused_global(err)
    if asked is None:
        return f"not a readable checkpoint ({finding(err)})"
    return (
        f"refused: it asks to build {asked}, and a checkpoint holds only tensors, "
        "numbers, strings, lists and dicts; this file was not written by save_checkpoint, and "
        "it is not loaded because loading it could run code it holds"
    )


def _model_class(path: Any, data: dict[str, Any]) -> type[Model]:
    """The class a checkpoint holds (RecurrentSNN when it names none)."""
    name = data.get("model", RecurrentSNN.name)
    cls = MODELS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(
            f"{path}: holds a model {name!r}; the known models are " + ", ".join(MODELS)
        )
    return cls


def _check_architecture(path: Any, saved: Model, wanted: Model | SNNConfig) -> None:
    """Refuse a checkpoint of another class, or of another architecture (each difference
    named); ``wanted`` may be the SNNConfig of a RecurrentSNN."""
    cls = RecurrentSNN if isinstance(wanted, SNNConfig) else type(wanted)
    if type(saved) is not cls:
        raise CheckpointError(
            f"{path}: checkpoint model {saved.name!r}, network model {cls.__name__!r}: the "
            "weights of one do not fit the other"
        )
    a, b = saved.architecture(), wanted.architecture()
    diffs = [f"{k}: checkpoint has {a[k]!r}, network has {b[k]!r}" for k in a if a[k] != b[k]]
    if diffs:
        raise CheckpointError(
            f"{path}: checkpoint is of a different architecture:\n  - " + "\n  - ".join(diffs)
        )


def _load_state(path: Any, net: Model, state: dict[str, Any]) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the network: {err}") from None

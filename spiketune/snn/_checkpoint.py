"""Checkpoints: weights plus every hyperparameter needed to rebuild the network.

A checkpoint is a plain dict of tensors, strings and numbers written with ``torch.save`` and
read with ``torch.load(weights_only=True)``, so loading one never runs code from the file::

    {"format": "spiketune.snn/1", "config": {...SNNConfig...}, "state_dict": {...},
     "dtype": "float32", "train_config": {...} | None, "history": [{...}, ...] | None,
     "extra": {...}}

Loading into a network of another architecture (sizes, neuron type, recurrence, readout bias,
feedback) is refused with a CheckpointError that names each difference.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from spiketune._torch_load import finding, refused_global
from spiketune.errors import CheckpointError, ConfigError
from spiketune.snn._config import SNNConfig, TrainConfig
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._trainer import History

FORMAT = "spiketune.snn/1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: the rebuilt network and what was saved with it."""

    network: RecurrentSNN
    config: SNNConfig
    train_config: TrainConfig | None = None
    history: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str], net: RecurrentSNN, *, train_config: TrainConfig | None = None,
    history: History | None = None, extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (weights, config) and optional training record to ``path`` atomically.

    ``extra`` may hold tensors, strings, numbers, lists and dicts of them (what
    ``weights_only`` loading accepts)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "config": net.config.model_dump(),
        "dtype": str(net.w_in.dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "train_config": None if train_config is None else train_config.model_dump(),
        "history": None if history is None else history.as_dicts(),
        "extra": dict(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], *, device: torch.device | str | None = None,
    expect: SNNConfig | RecurrentSNN | None = None,
) -> Checkpoint:
    """Rebuild the network saved in ``path``; with ``expect``, refuse another architecture."""
    data = _read(path)
    try:
        config = SNNConfig.model_validate(data["config"])
        train = data.get("train_config")
        train_config = None if train is None else TrainConfig.model_validate(train)
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{path}: the saved hyperparameters are invalid: {err}") from None
    if expect is not None:
        wanted = expect.config if isinstance(expect, RecurrentSNN) else expect
        _check_architecture(path, config, wanted)
    dtype = _DTYPES.get(str(data.get("dtype", "float32")))
    if dtype is None:
        raise CheckpointError(f"{path}: unsupported dtype {data.get('dtype')!r}")
    net = RecurrentSNN(config, seed=0, device=device, dtype=dtype)
    _load_state(path, net, data["state_dict"])
    return Checkpoint(
        network=net, config=config, train_config=train_config, history=data.get("history"),
        extra=data.get("extra") or {},
    )


def load_weights(net: RecurrentSNN, path: str | os.PathLike[str]) -> RecurrentSNN:
    """Load the weights in ``path`` into ``net``, which must have the same architecture.

    Hyperparameters that do not shape the weights (time constants, rule) are ``net``'s own."""
    data = _read(path)
    try:
        saved = SNNConfig.model_validate(data["config"])
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{path}: the saved hyperparameters are invalid: {err}") from None
    _check_architecture(path, saved, net.config)
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


def _check_architecture(path: Any, saved: SNNConfig, wanted: SNNConfig) -> None:
    a, b = saved.architecture(), wanted.architecture()
    diffs = [f"{k}: checkpoint has {a[k]!r}, network has {b[k]!r}" for k in a if a[k] != b[k]]
    if diffs:
        raise CheckpointError(
            f"{path}: checkpoint is of a different architecture:\n  - " + "\n  - ".join(diffs)
        )


def _load_state(path: Any, net: RecurrentSNN, state: dict[str, Any]) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the network: {err}") from None

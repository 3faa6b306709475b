"""What Optuna should store as a trial's ``params``, written out independently of spiketune's
search space: the received values themselves, lists as JSON text, nested choices as their
``_name`` plus ``<name>/<_name>/<key>`` entries."""

from __future__ import annotations

import json
from typing import Any


def shown(received: dict[str, Any]) -> dict[str, Any]:
    """The Optuna params of a trial that received ``received``."""
    out: dict[str, Any] = {}

    def add(name: str, value: Any) -> None:
        if isinstance(value, dict):
            out[name] = value["_name"]
            for k, sub in value.items():
                if k != "_name":
                    add(f"{name}/{value['_name']}/{k}", sub)
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value

    for name, value in received.items():
        add(name, value)
    return out


def typed(d: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """``d`` with each value's type beside it, so that ``1``, ``1.0`` and ``True`` differ."""
    return {k: (type(v), v) for k, v in d.items()}

"""Value helpers shared by the engine, the reports, the dashboard and the command line: the one
finite check, the one converter to strict JSON, the one way to flatten nested parameters.

Standard library only: the command line imports it before anything heavy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["flatten", "is_finite", "nonfinite_to_none"]


def is_finite(x: Any) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite (an int beyond
    a float's range is not finite either: nothing that compares floats could use it)."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def nonfinite_to_none(obj: Any) -> Any:
    """``obj`` with every NaN and infinite float, also inside dicts and lists, replaced by
    ``None``: what strict JSON can hold."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nonfinite_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nonfinite_to_none(v) for v in obj]
    return obj


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A trial's parameters with nested choices as dotted names
    (``{"neuron": {"_name": "alif", "beta": 1}}`` gives ``neuron._name`` and ``neuron.beta``).

    The names users see: CSV columns (``param.<name>``), the command line's tables, the
    report's axes and tables. (Optuna's own parameter names are another matter:
    :mod:`spiketune.engine.space` writes nested choices as ``<name>/<_name>/<key>``.)
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out

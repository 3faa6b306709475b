"""``nni.utils.merge_parameter`` with NNI's semantics."""

from __future__ import annotations

from typing import Any

__all__ = ["merge_parameter"]


class OverrideTypeError(ValueError, TypeError):
    """An override of another type than the value it replaces: NNI 2 raises ``ValueError``
    there and NNI 1 ``TypeError``; a script that catches either still catches it."""


def merge_parameter(base_params: Any, override_params: dict[str, Any] | None) -> Any:
    """Overwrite entries of ``base_params`` (a dict or an ``argparse.Namespace``) in place.

    As in NNI: ``None`` changes nothing; every key of ``override_params`` must already exist
    in ``base_params`` (``ValueError`` otherwise); an override must have the type of the value
    it replaces, except that an int may replace a float (it becomes a float) and anything may
    replace ``None`` (``ValueError`` otherwise, as NNI 2 raises; it is a ``TypeError`` too,
    as NNI 1 raised). Returns ``base_params`` for convenience.
    """
    if override_params is None:
        return base_params
    is_dict = isinstance(base_params, dict)
    for key, value in override_params.items():
        present = key in base_params if is_dict else hasattr(base_params, key)
        if not present:
            raise ValueError(f"Key '{key}' not found in base parameters.")
        current = base_params[key] if is_dict else getattr(base_params, key)
        value = _compatible(key, current, value)
        if is_dict:
            base_params[key] = value
        else:
            setattr(base_params, key, value)
    return base_params


def _compatible(key: str, current: Any, value: Any) -> Any:
    if current is None or isinstance(value, type(current)):
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    raise OverrideTypeError(
        f"Expected '{key}' in override parameters to have type {type(current).__name__}, "
        f"but found {type(value).__name__}."
    )

"""Lazy re-exports and deprecated module paths, shared by every public package.

A trial process runs ``import spiketune.trial``, which imports ``spiketune`` first, so the
top-level packages must not import Optuna, pydantic or torch when they are imported: they name
their public objects in a table and import each on first use (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, importing ``table[name]`` on first use.

    The value is cached in the package's namespace, so the import runs once per name;
    ``dir(package)`` lists the package's ``__all__``.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # the public surface, as ``__all__`` pins it
        return sorted(getattr(sys.modules[package], "__all__", table))

    return __getattr__, __dir__


def moved(old: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """``__getattr__`` for a module path that moved: each name warns and forwards.

    ``table`` maps each name still served at ``old`` to the module that now owns it. The value
    is not cached, so every import site is told where to import from instead.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} has moved: import it from {module} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)

    return __getattr__

"""spiketune: application-oriented hyperparameter optimisation of spiking neural networks.

The public API a user reads first. Implementations live in the subpackages and private
modules; this file only re-exports.

Every name is imported on first use (PEP 562 ``__getattr__``): a trial
process runs ``import spiketune.trial``, which imports this package first, and must not pay
for Optuna, pydantic or torch. Add new re-exports to ``_LAZY``, not as imports here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "CheckpointError",
            "ConfigError",
            "DataError",
            "ExportError",
            "HardwareError",
            "Problem",
            "SearchSpaceError",
            "SpiketuneError",
            "StorageError",
            "TrialError",
        ],
        "spiketune.errors",
    ),
    "Experiment": "spiketune.experiment",
    "ExperimentConfig": "spiketune.config",
    "ExperimentResults": "spiketune.results",
    "Outcome": "spiketune.results",
    "SearchSpace": "spiketune.space",
    "TrialRecord": "spiketune.results",
    "export_results": "spiketune.results",
    "load_config": "spiketune.config",
    "load_results": "spiketune.results",
    "Predictions": "spiketune.artifacts",
    "offer_best_model": "spiketune.artifacts",
    "load_best_model": "spiketune.artifacts",
    "build_report": "spiketune.report",
}

if TYPE_CHECKING:
    from spiketune.artifacts import Predictions, load_best_model, offer_best_model
    from spiketune.config import ExperimentConfig, load_config
    from spiketune.errors import (
        CheckpointError,
        ConfigError,
        DataError,
        ExportError,
        HardwareError,
        Problem,
        SearchSpaceError,
        SpiketuneError,
        StorageError,
        TrialError,
    )
    from spiketune.experiment import Experiment
    from spiketune.report import build_report
    from spiketune.results import (
        ExperimentResults,
        Outcome,
        TrialRecord,
        export_results,
        load_results,
    )
    from spiketune.space import SearchSpace


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spiketune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResults",
    "ExportError",
    "HardwareError",
    "Outcome",
    "Predictions",
    "Problem",
    "SearchSpace",
    "SearchSpaceError",
    "SpiketuneError",
    "StorageError",
    "TrialError",
    "TrialRecord",
    "__version__",
    "build_report",
    "export_results",
    "load_best_model",
    "load_config",
    "load_results",
    "offer_best_model",
]

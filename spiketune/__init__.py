"""spiketune: application-oriented hyperparameter optimisation of spiking neural networks.

The public API a user reads first. Implementations live in the subpackages and private
modules; this file only re-exports.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
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
    "__version__",
]

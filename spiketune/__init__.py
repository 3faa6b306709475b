"""spiketune: application-oriented hyperparameter optimisation of spiking neural networks.

The public API a user reads first. Implementations live in the subpackages and private
modules; this file only re-exports. The public packages, each with its ``__all__``:

- ``spiketune``: experiments, their configuration, results and errors (this file);
- ``spiketune.trial``: what a trial script calls (parameters in, results out, best model);
- ``spiketune.engine``: the engine's names for code that wants the engine alone;
- ``spiketune.snn``: the SNN core (networks, e-prop and BPTT, trainer, checkpoints);
- ``spiketune.data``: datasets as spike tensors, splits, the download cache;
- ``spiketune.hardware``: chip targets, design checks, quantisation;
- ``spiketune.nir``: NIR export, reading and simulation;
- ``spiketune.report``: figures and the HTML report;
- ``spiketune.compat.nni``: the stand-in for ``import nni`` in trial scripts.

Modules whose names start with ``_`` are not part of the API.

Every name is imported on first use (PEP 562 ``__getattr__``): a trial
process runs ``import spiketune.trial``, which imports this package first, and must not pay
for Optuna, pydantic or torch. Add new re-exports to ``_LAZY``, not as imports here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

__version__ = "0.2.0"

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
    # the engine's public names, served by spiketune.engine (its table names their modules)
    **dict.fromkeys(
        [
            "Experiment",
            "ExperimentConfig",
            "ExperimentResults",
            "Outcome",
            "Progress",
            "SearchSpace",
            "TrialRecord",
            "export_results",
            "load_best_model",
            "load_config",
            "load_results",
        ],
        "spiketune.engine",
    ),
    "Predictions": "spiketune.trial",
    "offer_best_model": "spiketune.trial",
    "build_report": "spiketune.report",
}

if TYPE_CHECKING:
    from spiketune.engine import (
        Experiment,
        ExperimentConfig,
        ExperimentResults,
        Outcome,
        Progress,
        SearchSpace,
        TrialRecord,
        export_results,
        load_best_model,
        load_config,
        load_results,
    )
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
    from spiketune.report import build_report
    from spiketune.trial import Predictions, offer_best_model


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

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
    "Progress",
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

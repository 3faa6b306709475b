"""The experiment engine: configuration, search spaces, tuners and assessors, the scheduler,
trial runners, storage and results.

Users import the engine's public names from :mod:`spiketune`; this package re-exports them
for code that wants the engine alone, plus :func:`find_experiment` and the chosen configuration
retrained with several seeds (:func:`retrain`, :func:`chosen_trial`, :class:`Retrained`,
:func:`save_retrained`, :func:`load_retrained`). Modules are imported on first use, so that
importing one of them does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "Experiment": "spiketune.engine.experiment",
    "ExperimentConfig": "spiketune.engine.config",
    "ExperimentResults": "spiketune.engine.results",
    "Outcome": "spiketune.engine.outcome",
    "Progress": "spiketune.engine.scheduler",
    "Retrained": "spiketune.engine.results",
    "chosen_trial": "spiketune.engine._retrain",
    "retrain": "spiketune.engine._retrain",
    "RetrainedRun": "spiketune.engine.results",
    "SearchSpace": "spiketune.engine.space",
    "TrialRecord": "spiketune.engine.results",
    "export_results": "spiketune.engine.results",
    "find_experiment": "spiketune.engine.storage",
    "load_best_model": "spiketune.engine.results",
    "load_config": "spiketune.engine.config",
    "load_predictions": "spiketune.engine.results",
    "load_results": "spiketune.engine.results",
    "load_retrained": "spiketune.engine.results",
    "save_retrained": "spiketune.engine.results",
}

if TYPE_CHECKING:
    from spiketune.engine._retrain import chosen_trial, retrain
    from spiketune.engine.config import ExperimentConfig, load_config
    from spiketune.engine.experiment import Experiment
    from spiketune.engine.outcome import Outcome
    from spiketune.engine.results import (
        ExperimentResults,
        Retrained,
        RetrainedRun,
        TrialRecord,
        export_results,
        load_best_model,
        load_predictions,
        load_results,
        load_retrained,
        save_retrained,
    )
    from spiketune.engine.scheduler import Progress
    from spiketune.engine.space import SearchSpace
    from spiketune.engine.storage import find_experiment

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "Experiment",
    "ExperimentConfig",
    "ExperimentResults",
    "Outcome",
    "Progress",
    "Retrained",
    "RetrainedRun",
    "SearchSpace",
    "TrialRecord",
    "chosen_trial",
    "export_results",
    "find_experiment",
    "load_best_model",
    "load_config",
    "load_predictions",
    "load_results",
    "load_retrained",
    "retrain",
    "save_retrained",
]

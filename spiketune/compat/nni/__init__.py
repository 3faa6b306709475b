"""A stand-in for NNI's trial API, so that NNI trial scripts run unchanged under spiketune.

Only on the ``PYTHONPATH`` of trial processes that spiketune launches (and importable by hand
as ``spiketune.compat.nni``); every call forwards to :mod:`spiketune.trial`. Importing it
costs milliseconds, where ``import nni`` costs about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from spiketune import trial as _trial
except ImportError:  # a trial interpreter without spiketune installed: use the copy beside us
    sys.path.append(str(Path(__file__).resolve().parents[3]))
    from spiketune import trial as _trial

from . import utils

__version__ = "3.0"  # the NNI API this shim follows

__all__ = [
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_id",
    "report_final_result",
    "report_intermediate_result",
    "utils",
]


def get_next_parameter() -> dict[str, Any]:
    """The hyperparameters chosen for this trial."""
    return _trial.get_next_parameter()


get_next_parameters = get_next_parameter


def get_current_parameter(tag: str | None = None) -> Any:
    """The current hyperparameters, or the one named ``tag``."""
    return _trial.get_current_parameter(tag)


def report_intermediate_result(metric: Any) -> None:
    """Report an intermediate result: a number or a dict with a ``'default'`` key."""
    _trial.report_intermediate_result(metric)


def report_final_result(metric: Any) -> None:
    """Report the final result: a number or a dict with a ``'default'`` key."""
    _trial.report_final_result(metric)


def get_experiment_id() -> str:
    return _trial.get_experiment_id()


def get_trial_id() -> str:
    """The trial's number in the experiment, as text (``"manual"`` when run by hand)."""
    return _trial.get_trial_id()


def get_sequence_id() -> int:
    return _trial.get_sequence_id()

"""A stand-in for NNI's trial API, so that NNI trial scripts run unchanged under spiketune.

Only on the ``PYTHONPATH`` of trial processes that spiketune launches (and importable by hand
as ``spiketune.compat.nni``); every call forwards to :mod:`spiketune.trial`. Importing it
costs milliseconds, where ``import nni`` costs about a second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any, TypeVar

try:
    from spiketune import trial as _trial
except ImportError:  # a trial interpreter without spiketune installed: use the copy beside us
    sys.path.append(str(Path(__file__).resolve().parents[3]))
    from spiketune import trial as _trial

from . import utils

__version__ = "3.0"  # the NNI API this shim follows

__all__ = [
    "dump",
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_id",
    "load",
    "report_final_result",
    "report_intermediate_result",
    "trace",
    "utils",
]

_T = TypeVar("_T")


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


def trace(obj: _T, *_: Any, **__: Any) -> _T:
    """NNI records a class's or function's arguments for its search spaces of models; trials
    use it as ``@nni.trace`` or ``nni.trace(torch.optim.Adam)(...)``. Nothing here needs
    those records, so it gives the object back unchanged and the script runs as under NNI."""
    return obj


def dump(obj: Any, fp: IO[str] | None = None, **kwargs: Any) -> str | None:
    """``obj`` as JSON text (into ``fp`` when given), as NNI's ``dump`` writes plain data.
    Objects that only NNI's own serialiser knows (traced instances) are refused, saying so."""
    kwargs = {k: v for k, v in kwargs.items()
              if k not in ("use_trace", "pickle_size_limit", "allow_nan")}
    try:
        if fp is not None:
            json.dump(obj, fp, **kwargs)
            return None
        return json.dumps(obj, **kwargs)
    except TypeError as e:
        raise TypeError(f"nni.dump (spiketune's stand-in) writes plain JSON data: {e}; NNI's "
                        "traced objects need NNI itself") from None


def load(string: str | None = None, *, fp: IO[str] | None = None, **kwargs: Any) -> Any:
    """The data of JSON text ``string`` (or of the file ``fp``), as :func:`dump` wrote it."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("ignore_comments", "preserve_order")}
    if (string is None) == (fp is None):
        raise TypeError("nni.load: give either string or fp")
    return json.load(fp, **kwargs) if fp is not None else json.loads(string or "", **kwargs)


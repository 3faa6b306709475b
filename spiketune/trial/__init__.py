"""The trial side: what a trial script calls to get its parameters and report its results.

::

    import spiketune.trial as st

    params = st.get_next_parameter()          # the dict the tuner chose for this trial
    for epoch in range(3):
        st.report_intermediate_result(acc)     # a number, or {"default": number, ...}
    st.report_final_result({"default": acc, "train_acc": tacc})

The same script runs in three settings, decided once when first needed:

* **launched by spiketune** (``SPIKETUNE_TRIAL_DIR`` is set): parameters come from
  ``parameter.json`` in the trial directory and each report is appended as one JSON line to
  ``metrics.jsonl`` there (``{"type": "intermediate"|"final", "value": ...}``). The engine reads
  that file; the trial never opens the experiment's database.
* **in-process** (a Python callable given as ``Experiment(trial=...)``): the runner binds a
  channel to the calling thread and reports go straight to the scheduler.
* **by hand**, outside any experiment: parameters come from ``--params FILE`` on the command
  line, else from the ``SPIKETUNE_PARAMETERS`` environment variable (inline JSON) or
  ``SPIKETUNE_PARAMETER_FILE`` (a path), else ``{}``; reports are printed to stdout.

This module imports only the standard library, so that a trial process starts in a few
milliseconds (no Optuna, numpy or torch behind ``import spiketune.trial``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from spiketune.trial._artifacts import (
    BestModel,
    Predictions,
    experiment_dir_of_trial,
    load_best_model,
    load_predictions,
    offer_best_model,
)
from spiketune.trial._protocol import (
    ENV_EXPERIMENT_DIR,
    ENV_EXPERIMENT_ID,
    ENV_PARAMETER_FILE,
    ENV_PARAMETERS,
    ENV_SEQUENCE_ID,
    ENV_TRIAL_DIR,
    ENV_TRIAL_ID,
    METRICS_FILE,
    PARAMETER_FILE,
)

__all__ = [
    "ENV_EXPERIMENT_DIR",
    "ENV_EXPERIMENT_ID",
    "ENV_PARAMETERS",
    "ENV_PARAMETER_FILE",
    "ENV_SEQUENCE_ID",
    "ENV_TRIAL_DIR",
    "ENV_TRIAL_ID",
    "METRICS_FILE",
    "PARAMETER_FILE",
    "BestModel",
    "Predictions",
    "TrialStopped",
    "experiment_dir_of_trial",
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_dir",
    "get_trial_id",
    "load_best_model",
    "load_predictions",
    "normalize_metric",
    "offer_best_model",
    "report_final_result",
    "report_intermediate_result",
]


class TrialStopped(BaseException):
    """Raised inside an in-process trial when the engine ends it (assessor, timeout, stop).

    A ``BaseException`` so that a trial's own ``except Exception`` does not swallow it.
    """


class _Channel(Protocol):
    """Where reports go and parameters come from; one per running trial."""

    parameters: dict[str, Any]
    trial_id: str
    experiment_id: str
    sequence_id: int
    trial_dir: Path | None

    def report(self, kind: str, value: dict[str, Any]) -> None: ...


def normalize_metric(value: Any) -> dict[str, Any]:
    """A reported metric as a dict with a ``"default"`` number; every extra key kept.

    A plain number ``x`` becomes ``{"default": x}``. Numbers of other libraries (numpy scalars,
    0-d tensors) become Python floats so the result is JSON-able. Raises ``TypeError`` for
    anything else, ``ValueError`` for a dict without ``"default"``.
    """
    if isinstance(value, Mapping):
        if "default" not in value:
            raise ValueError(
                "a metric dict needs a 'default' key holding the objective; "
                f"got keys {sorted(value)}"
            )
        out = {str(k): _jsonable(v) for k, v in value.items()}
        out["default"] = _number(value["default"], "metric['default']")
        return out
    return {"default": _number(value, "metric")}


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return value
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return _jsonable(value.tolist())
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"metric values must be JSON-able numbers, strings or lists; got {value!r}")


class _FileChannel:
    """A trial launched by the engine: ``parameter.json`` in, ``metrics.jsonl`` out."""

    def __init__(self, trial_dir: Path) -> None:
        self.trial_dir = trial_dir
        self.trial_id = os.environ.get(ENV_TRIAL_ID, "")
        self.experiment_id = os.environ.get(ENV_EXPERIMENT_ID, "")
        self.sequence_id = int(os.environ.get(ENV_SEQUENCE_ID, "0") or 0)
        with open(trial_dir / PARAMETER_FILE, encoding="utf-8") as f:
            self.parameters = json.load(f)

    def report(self, kind: str, value: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, "value": value}) + "\n"
        # One write() of one line on an O_APPEND file: the engine never sees half a record.
        fd = os.open(self.trial_dir / METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


class _ManualChannel:
    """A trial script run by hand: parameters from the command line or environment; reports
    printed."""

    def __init__(self) -> None:
        self.trial_dir = None
        self.trial_id = "manual"
        self.experiment_id = "manual"
        self.sequence_id = 0
        self.parameters = _manual_parameters(sys.argv[1:], os.environ)
        self._count = 0

    def report(self, kind: str, value: dict[str, Any]) -> None:
        if kind == "intermediate":
            self._count += 1
            label = f"intermediate result {self._count}"
        else:
            label = "final result"
        shown = value["default"] if len(value) == 1 else value
        print(f"[spiketune] {label}: {json.dumps(shown)}", flush=True)


def _manual_parameters(argv: list[str], environ: Mapping[str, str]) -> dict[str, Any]:
    path: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--params" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--params="):
            path = arg.split("=", 1)[1]
    if path is None and environ.get(ENV_PARAMETERS):
        params = json.loads(environ[ENV_PARAMETERS])
    else:
        path = path or environ.get(ENV_PARAMETER_FILE)
        if not path:
            return {}
        with open(path, encoding="utf-8") as f:
            params = json.load(f)
    if not isinstance(params, dict):
        raise ValueError(f"trial parameters must be a JSON object, got {type(params).__name__}")
    return params


_bound = threading.local()
_process_channel: _Channel | None = None
_lock = threading.Lock()


def _channel() -> _Channel:
    bound = getattr(_bound, "channel", None)
    if bound is not None:
        return bound
    global _process_channel
    with _lock:
        if _process_channel is None:
            trial_dir = os.environ.get(ENV_TRIAL_DIR)
            _process_channel = _FileChannel(Path(trial_dir)) if trial_dir else _ManualChannel()
        return _process_channel


def _bind(channel: _Channel | None) -> None:
    """Attach ``channel`` to the calling thread (in-process runner only); ``None`` detaches."""
    _bound.channel = channel


def _reset() -> None:
    """Forget the process-wide channel (tests that change the environment)."""
    global _process_channel
    with _lock:
        _process_channel = None


def get_next_parameter() -> dict[str, Any]:
    """The parameters chosen for this trial (a fresh copy of the JSON object)."""
    return json.loads(json.dumps(_channel().parameters))


get_next_parameters: Callable[[], dict[str, Any]] = get_next_parameter


def get_current_parameter(tag: str | None = None) -> Any:
    """The current parameters, or the one named ``tag``."""
    params = _channel().parameters
    return json.loads(json.dumps(params)) if tag is None else params[tag]


def report_intermediate_result(metric: Any) -> None:
    """Report one intermediate result (a number, or a dict whose ``"default"`` is the objective).

    Results are numbered 1, 2, ... in report order; an assessor compares trials step by step.
    In-process, this is where a trial the engine has stopped gets :class:`TrialStopped`.
    """
    _channel().report("intermediate", normalize_metric(metric))


def report_final_result(metric: Any) -> None:
    """Report the trial's result (a number, or a dict whose ``"default"`` is the objective).

    Every extra key of a dict (train accuracy, spike counts...) is kept and shown. Only the
    first final result of a trial counts.
    """
    # A non-finite value is still reported: the engine records the trial as FAILED with a reason.
    _channel().report("final", normalize_metric(metric))


def get_trial_id() -> str:
    """This trial's id inside its experiment (``"manual"`` when run by hand)."""
    return _channel().trial_id


def get_experiment_id() -> str:
    """The experiment's id (``"manual"`` when run by hand)."""
    return _channel().experiment_id


def get_sequence_id() -> int:
    """The order in which this trial was started within its experiment, from 0."""
    return _channel().sequence_id


def get_trial_dir() -> Path | None:
    """The trial's own directory (for checkpoints and logs); ``None`` when run by hand."""
    return _channel().trial_dir

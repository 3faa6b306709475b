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

Both sides of the files and variables are written in :mod:`spiketune.trial._protocol`. This
package imports only the standard library, so that a trial process starts in a few
milliseconds (no Optuna, numpy or torch behind ``import spiketune.trial``).

What a trial sets up before it trains is here too: :func:`trial_device` (its GPU, or the CPU),
:func:`trial_threads` (its share of the CPU cores) and :func:`seed_everything`; those two
import torch when called, not when ``spiketune.trial`` is imported. :func:`trial_time_limit`
is the experiment's ``max_trial_duration`` as the trial sees it, and :func:`trial_deadline`
the instant by which its training should end to report a result before that limit. So is
what the templates' trial scripts share: :func:`add_trial_options` (their command-line options),
:func:`start_trial` (parameters, seeds, threads, device), :func:`epoch_report` (the means
over the folds reported after each epoch), :func:`trial_output_dir` and
:func:`keep_trial_model` (the model saved beside its ``result.json`` and offered as the
experiment's best).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune._lazy import lazy_exports
from spiketune.trial._protocol import (
    ENV_EXPERIMENT_DIR,
    ENV_EXPERIMENT_ID,
    ENV_PARAMETER_FILE,
    ENV_PARAMETERS,
    ENV_SEQUENCE_ID,
    ENV_TRIAL_DIR,
    ENV_TRIAL_ID,
    FINAL,
    INTERMEDIATE,
    METRICS_FILE,
    PARAMETER_FILE,
    TrialStopped,
    normalize_metric,
)
from spiketune.trial._protocol import channel as _channel
from spiketune.trial._protocol import reset as _reset  # noqa: F401 - tests forget the channel

if TYPE_CHECKING:
    from spiketune.trial._artifacts import (
        BestModel,
        Predictions,
        experiment_dir_of_trial,
        offer_best_model,
    )
    from spiketune.trial._population import (
        Member,
        in_population,
        joining,
        population,
        stop_joining,
    )
    from spiketune.trial._runtime import (
        ENV_CONCURRENCY,
        ENV_TRIAL_THREADS,
        seed_everything,
        trial_deadline,
        trial_device,
        trial_threads,
        trial_time_limit,
    )
    from spiketune.trial._script import (
        PreparedMember,
        add_trial_options,
        epoch_report,
        keep_trial_model,
        start_trial,
        train_members,
        trial_output_dir,
    )

# Keeping the best model is imported on first use: it costs a trial process ~12 ms of imports
# (dataclasses, uuid, shutil) that a trial which never offers a model should not pay. The same
# for populations, and for the trial's runtime (device, CPU threads, seeds).
__getattr__, _ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ("BestModel", "Predictions", "experiment_dir_of_trial", "offer_best_model"),
            "spiketune.trial._artifacts",
        ),
        **dict.fromkeys(("Member", "in_population", "joining", "population", "stop_joining"),
                        "spiketune.trial._population"),
        **dict.fromkeys(("ENV_CONCURRENCY", "ENV_TRIAL_THREADS", "seed_everything",
                         "trial_deadline", "trial_device", "trial_threads", "trial_time_limit"),
                        "spiketune.trial._runtime"),
        **dict.fromkeys(("PreparedMember", "add_trial_options", "epoch_report",
                         "keep_trial_model", "start_trial", "train_members", "trial_output_dir"),
                        "spiketune.trial._script"),
    },
)

__all__ = [
    "ENV_CONCURRENCY",
    "ENV_EXPERIMENT_DIR",
    "ENV_EXPERIMENT_ID",
    "ENV_PARAMETERS",
    "ENV_PARAMETER_FILE",
    "ENV_SEQUENCE_ID",
    "ENV_TRIAL_DIR",
    "ENV_TRIAL_ID",
    "ENV_TRIAL_THREADS",
    "METRICS_FILE",
    "PARAMETER_FILE",
    "BestModel",
    "Member",
    "Predictions",
    "PreparedMember",
    "TrialStopped",
    "add_trial_options",
    "epoch_report",
    "experiment_dir_of_trial",
    "flat_parameters",
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_sequence_id",
    "get_trial_dir",
    "get_trial_id",
    "in_population",
    "joining",
    "keep_trial_model",
    "normalize_metric",
    "offer_best_model",
    "population",
    "report_final_result",
    "report_intermediate_result",
    "seed_everything",
    "start_trial",
    "stop_joining",
    "train_members",
    "trial_deadline",
    "trial_device",
    "trial_output_dir",
    "trial_threads",
    "trial_time_limit",
    "with_defaults",
]


def get_next_parameter() -> dict[str, Any]:
    """The parameters chosen for this trial (a fresh copy of the JSON object)."""
    return json.loads(json.dumps(_channel().parameters))


get_next_parameters: Callable[[], dict[str, Any]] = get_next_parameter


def get_current_parameter(tag: str | None = None) -> Any:
    """The current parameters, or the one named ``tag``."""
    params = _channel().parameters
    # a copy either way: the trial may edit what it gets (``opt.pop("_name")``), and the
    # parameters recorded with its kept best model must stay those it received
    return json.loads(json.dumps(params if tag is None else params[tag]))


def report_intermediate_result(metric: Any) -> None:
    """Report one intermediate result (a number, or a dict whose ``"default"`` is the objective).

    Results are numbered 1, 2, ... in report order; an assessor compares trials step by step.
    In-process, this is where a trial the engine has stopped gets :class:`TrialStopped`.
    """
    _channel().report(INTERMEDIATE, normalize_metric(metric))


def report_final_result(metric: Any) -> None:
    """Report the trial's result (a number, or a dict whose ``"default"`` is the objective).

    Every extra key of a dict (train accuracy, spike counts...) is kept and shown. Only the
    first final result of a trial counts. A trial process (launched by the engine or run by
    hand; not an in-process trial's) then exits without the garbage collector's last passes
    (:func:`~spiketune.trial._runtime.quick_exit_after_result`: about a second of CPU saved
    with torch imported).
    """
    from spiketune.trial._runtime import quick_exit_after_result

    # A non-finite value is still reported: the engine records the trial as FAILED with a reason.
    _channel().report(FINAL, normalize_metric(metric))
    quick_exit_after_result()


def get_trial_id() -> str:
    """This trial's id as NNI names it: its number in the experiment, as text (``"3"``);
    ``"manual"`` when run by hand. (Not the database's id of the trial.)"""
    return _channel().nni_trial_id


def get_experiment_id() -> str:
    """The experiment's id (``"manual"`` when run by hand)."""
    return _channel().experiment_id


def get_sequence_id() -> int:
    """The order in which this trial was started within its experiment, from 0."""
    return _channel().sequence_id


def flat_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters with each nested choice ``{"_name": option, sub-parameters...}``
    flattened to ``key=option`` plus its sub-parameters (recursively):
    ``{"rule": {"_name": "eprop", "feedback": "random"}}`` becomes ``{"rule": "eprop",
    "feedback": "random"}``, the form configuration fields take (``SNNConfig(**flat)``).
    Two parameters of one trial with one flat name (a top-level ``lr`` and ``rule``'s own
    ``lr``) are a :class:`~spiketune.ConfigError` naming both: which one would win is not a
    choice to leave to the order of the keys."""
    from spiketune.errors import ConfigError, Problem

    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []

    def put(key: str, value: Any, path: str) -> None:
        if key in flat:
            problems.append(Problem(path, value, f"its flat name {key!r} is also that of "
                                    f"{where[key]}; rename one of them in the search space"))
        else:
            flat[key], where[key] = value, path

    def walk(items: Mapping[str, Any], prefix: str) -> None:
        for key, value in items.items():
            if isinstance(value, Mapping) and "_name" in value:
                put(key, value["_name"], prefix + key)
                walk({k: v for k, v in value.items() if k != "_name"},
                     f"{prefix}{key}/{value['_name']}/")
            else:
                put(key, value, prefix + key)

    walk(params, "")
    if problems:
        raise ConfigError(problems)
    return flat


def with_defaults(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``defaults`` names: each from ``params`` where given, else its default
    (a template's data options). An option whose default is true or false must be given as
    true or false: the JSON string ``"false"`` or ``"no"`` would read as true, so anything
    else is a :class:`~spiketune.ConfigError` naming the option."""
    from spiketune.errors import ConfigError, Problem

    options = {key: params.get(key, default) for key, default in defaults.items()}
    problems = [Problem(key, options[key], "must be true or false")
                for key, default in defaults.items()
                if isinstance(default, bool) and not isinstance(options[key], bool)]
    if problems:
        raise ConfigError(problems)
    return options


def get_trial_dir() -> Path | None:
    """The trial's own directory (for checkpoints and logs); ``None`` when run by hand."""
    return _channel().trial_dir

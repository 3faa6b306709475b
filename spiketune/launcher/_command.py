"""A launcher's changes to the experiment: its settings, its trial command, its search space."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spiketune.engine import ExperimentConfig


def with_options(
    command: list[str], options: Mapping[str, Any], *, paths: Collection[str] = ()
) -> list[str]:
    """``command`` (a split trial command) with each option of ``options`` whose value is not
    ``None`` given that value: in place where the command already has the option (``--folds
    3`` in config.toml), else appended in the order of ``options``. The values of the options
    named in ``paths`` are made absolute (``~`` expanded), since a trial runs in its own
    directory, and must exist: a missing one is a ConfigError naming the option, before any
    trial starts (every trial would fail on it). ``command`` itself is left as it is."""
    from spiketune.errors import ConfigError, Problem

    result = list(command)
    for option, value in options.items():
        if value is None:
            continue
        text = str(value)
        if option in paths:
            path = Path(value).expanduser().resolve()
            if not path.exists():
                shown = "" if str(value) == str(path) else f" ({path} is not)"
                raise ConfigError(Problem(option, str(value),
                                          f"an existing file or directory{shown}"))
            text = str(path)
        if option in result[:-1]:
            result[result.index(option) + 1] = text
        else:
            result += [option, text]
    return result


def narrow_choice(space: Mapping[str, Any], key: str, name: str) -> dict[str, Any]:
    """The search space's nested choice ``key`` narrowed to its option named ``name`` (with
    that option's sub-parameters): a launcher's ``--model lmu`` keeps one model of a space
    that offers several. An option the choice does not offer ends the launcher
    (``SystemExit``) with a message naming the options it has."""
    options = space.get(key, {}).get("_value", [])
    kept = [o for o in options if isinstance(o, dict) and o.get("_name") == name]
    if not kept:
        names = [o.get("_name") for o in options if isinstance(o, dict)]
        raise SystemExit(f"error: --{key} {name}: search_space.json's {key!r} choice has no option "
                         f"named {name!r} (it has {names})")
    return {"_type": "choice", "_value": kept}


#: A launcher's options (their ``argparse`` names) and the experiment settings they change.
_SETTINGS = (("trials", "max_trials"), ("duration", "max_duration"),
             ("trial_duration", "max_trial_duration"), ("concurrency", "concurrency"),
             ("population", "population"), ("seed", "seed"), ("name", "name"),
             ("experiment_dir", "experiment_dir"), ("start_with", "start_with"))


def option_of(field: str) -> str | None:
    """The launcher option that sets the experiment setting ``field`` (``max_trials``:
    ``--trials``), or None when only config.toml sets it."""
    top = field.split(".")[0].split("[")[0]
    option = next((o for o, f in (*_SETTINGS, ("gpus", "gpus")) if f == top), None)
    return None if option is None else "--" + option.replace("_", "-")


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment settings a launcher's command line changes, as keyword arguments of
    ``Experiment(config, **changes)``: ``--trials`` (``max_trials``), ``--duration``
    (``max_duration``), ``--trial-duration`` (``max_trial_duration``), ``--concurrency``,
    ``--population``, ``--seed``, ``--name``, ``--experiment-dir``, ``--start-with`` (the
    parameter sets already read from its file) and ``--gpus`` (``none``: no GPU). An option
    the launcher does not have, or that was not given (``None``), changes nothing:
    config.toml's value stands."""
    changes = {field: getattr(args, option) for option, field in _SETTINGS
               if getattr(args, option, None) is not None}
    gpus = getattr(args, "gpus", None)
    if gpus is not None:
        changes["gpus"] = None if gpus == "none" else gpus
    return changes


def trial_command_change(
    config: ExperimentConfig, options: Mapping[str, Any], *, paths: Collection[str] = ()
) -> dict[str, Any]:
    """The change to ``config``'s trial command that gives every trial ``options`` (see
    :func:`with_options`; ``paths`` made absolute), as keyword arguments of
    ``Experiment(config, **changes)``: ``{"trial_command": ...}``, or ``{}`` when no option
    was given and config.toml's command stands. Options travel on the command line so that
    they are recorded with the experiment."""
    given = shlex.split(config.require_trial_command())
    command = with_options(given, options, paths=paths)
    return {} if command == given else {"trial_command": shlex.join(command)}


def trial_module(directory: Path, name: str = "setup_hpo") -> ModuleType:
    """``<directory>/<name>.py``, a file of the project's own trial (a template's
    ``setup_hpo.py``), as a module read by its path: a launcher reads the data a trial reads
    before the search (so that a wrong ``--data`` stops the run once, not each trial), and
    ``make demo`` imports the launcher without its directory on the module path."""
    path = Path(directory) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_{Path(directory).name}_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


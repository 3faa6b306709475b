"""Experiment directories: where they are, what files they hold, and how a name finds one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiketune.errors import StorageError

__all__ = [
    "EXPERIMENTS_ENV",
    "ExperimentMatch",
    "ExperimentPaths",
    "default_root",
    "find_experiment",
    "locate_experiment",
    "parse_owner",
    "read_json",
    "write_json",
]

EXPERIMENTS_ENV = "SPIKETUNE_EXPERIMENTS"


def default_root() -> Path:
    """Where experiment directories go when the config names none."""
    env = os.environ.get(EXPERIMENTS_ENV)
    return Path(env).expanduser() if env else Path.home() / "spiketune-experiments"


def writable_root(root: Path) -> None:
    """The experiments root a new experiment goes into: a directory this process may write
    (created if missing), else a :class:`StorageError` that says which and how to choose
    another. Checked before an experiment is registered anywhere, so that a refusal leaves
    nothing behind."""
    how = "choose another with --experiment-dir, $SPIKETUNE_EXPERIMENTS or experiment_dir"
    root = root.expanduser()
    if root.exists() and not root.is_dir():
        raise StorageError(f"the experiments root {root} is not a directory; {how}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"the experiments root {root} cannot be created "
                           f"({e.strerror or e}); {how}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise StorageError(f"the experiments root {root} is not writable; {how}")


#: The files and directories spiketune writes at the top of an experiment directory: what
#: :meth:`ExperimentPaths.owns` protects (SQLite keeps its journal beside the study).
_OWNED_FILES = frozenset({"experiment.json", "study.db", "study.db-wal", "study.db-shm",
                          "study.db-journal", "scheduler.json", "stop", "session.lock",
                          "retrained.json", "jobs.json"})
_OWNED_DIRS = frozenset({"trials", "workers", "populations", "best_model", "chosen", "jobs",
                         "report"})


@dataclass(frozen=True)
class ExperimentPaths:
    """The files of one experiment directory."""

    directory: Path

    @property
    def experiment_json(self) -> Path:
        return self.directory / "experiment.json"

    @property
    def study_db(self) -> Path:
        return self.directory / "study.db"

    @property
    def scheduler_json(self) -> Path:
        return self.directory / "scheduler.json"

    @property
    def stop_file(self) -> Path:
        return self.directory / "stop"

    @property
    def trials(self) -> Path:
        return self.directory / "trials"

    @property
    def workers(self) -> Path:
        return self.directory / "workers"

    def worker_json(self, owner: str) -> Path:
        """State file of one worker (``owner`` is ``host:pid/token``) running here."""
        return self.workers / (re.sub(r"[^A-Za-z0-9._-]", ".", owner) + ".json")

    def trial_dir(self, number: int) -> Path:
        return self.trials / str(number)

    @property
    def populations(self) -> Path:
        return self.directory / "populations"

    def population_dir(self, first: int) -> Path:
        """The directory of a population process (population mode), named after its first
        member's number: its ``population.json``, ``stdout.log``, ``stderr.log``."""
        return self.populations / str(first)

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is one of the files spiketune keeps in this directory (the study,
        the experiment's and the scheduler's state, every trial's files, the best model, the
        retrained seeds, the report), so that a command writing where the user says never
        replaces one: an ``export -o study.db`` would lose every result. A file of the user's
        own beside them (``trials.csv``) is not spiketune's."""
        try:
            relative = path.expanduser().resolve().relative_to(self.directory.resolve())
        except ValueError:
            return False
        parts = relative.parts
        if not parts:
            return True
        return parts[0] in _OWNED_DIRS or (len(parts) == 1 and parts[0] in _OWNED_FILES)


@dataclass(frozen=True)
class ExperimentMatch:
    """The experiment a reference found, and what to tell the user about the choice.

    ``notice`` is set when the reference was a name shared by several experiments: it says
    which one was taken (the most recent) and how to name the others; None otherwise.
    """

    directory: Path
    notice: str | None = None


def locate_experiment(ref: str | Path, root: Path | None = None) -> ExperimentMatch:
    """The experiment ``ref`` names, tried in this order (the first that matches wins):

    1. a directory holding ``experiment.json``;
    2. an experiment id under ``root`` (default :func:`default_root`);
    3. an experiment *name* (``name`` in its ``experiment.json``): the most recent experiment
       of that name, with a notice when there are several;
    4. a unique id prefix.

    An exact name wins over a prefix, so ``faults`` finds the experiment named ``faults``
    even when ``faults2-...`` exists. Raises :class:`StorageError` naming what was tried.
    """
    path = Path(ref).expanduser()
    if (path / "experiment.json").is_file():
        return ExperimentMatch(path.resolve())
    base = root or default_root()
    text = str(ref)
    exact = base / text
    if "/" not in text and (exact / "experiment.json").is_file():
        return ExperimentMatch(exact.resolve())
    candidates = _experiment_dirs(base) if "/" not in text else []
    named = _named(candidates, text)
    if named:
        return _most_recent(named, text)
    matches = sorted(d for d in candidates if d.name.startswith(text))
    if len(matches) == 1:
        return ExperimentMatch(matches[0].resolve())
    if matches:
        names = ", ".join(p.name for p in matches[:5])
        raise StorageError(f"experiment {text!r} is ambiguous under {base}: {names} "
                           "(give the whole id, or a longer prefix)")
    raise StorageError(
        f"no experiment {text!r}: not an experiment directory, and no id, name or id prefix "
        f"under {base} (set {EXPERIMENTS_ENV} or give the directory)"
    )


def find_experiment(ref: str | Path, root: Path | None = None) -> Path:
    """The directory of the experiment ``ref`` (see :func:`locate_experiment`; its notice,
    when there is one, is issued as a :class:`UserWarning`)."""
    found = locate_experiment(ref, root)
    if found.notice is not None:
        warnings.warn(found.notice, UserWarning, stacklevel=2)
    return found.directory


def _experiment_dirs(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    try:
        return [d for d in base.iterdir() if (d / "experiment.json").is_file()]
    except OSError:
        return []


def _named(directories: list[Path], name: str) -> list[tuple[str, int, Path]]:
    """(created, mtime in ns, directory) of each experiment called ``name``."""
    out = []
    for d in directories:
        path = d / "experiment.json"
        try:
            meta = read_json(path)
            mtime = path.stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("name") == name:
            out.append((str(meta.get("created", "")), mtime, d))
    return out


def _most_recent(named: list[tuple[str, int, Path]], name: str) -> ExperimentMatch:
    named.sort(key=lambda entry: (entry[0], entry[1], entry[2].name))
    chosen = named[-1][2]
    if len(named) == 1:
        return ExperimentMatch(chosen.resolve())
    others = ", ".join(d.name for _, _, d in reversed(named[:-1]))
    notice = (f"{len(named)} experiments are named {name!r}; using the most recent, "
              f"{chosen.name}. Name another by its id: {others}")
    return ExperimentMatch(chosen.resolve(), notice)


def parse_owner(owner: str) -> tuple[str, int | None]:
    """``host:pid/token`` (a heartbeat's owner) -> (host, pid or None)."""
    host, _, rest = owner.partition("/")[0].rpartition(":")
    return host, int(rest) if rest.isdigit() else None


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_experiment_json(path: Path) -> dict[str, Any]:
    """An experiment's ``experiment.json`` (its id, name, creation time and configuration),
    or :class:`StorageError` saying what is wrong with it: a file that cannot be read, is
    not JSON, or lacks the id (text) or the configuration (a mapping). Why: a damaged file
    (a full disk, an edit) must end a command with its name and the reason, and say that
    the trials' records are not in it, rather than with a traceback."""
    try:
        meta = read_json(path)
    except OSError as e:
        raise StorageError(f"{path} cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # not JSON, not UTF-8
        problem = f"not JSON: {e}"
    else:
        if not isinstance(meta, dict):
            problem = f"a JSON {type(meta).__name__}, not an object"
        elif not isinstance(meta.get("id"), str):
            problem = f"its id is {meta.get('id')!r}, not text"
        elif not isinstance(meta.get("config"), dict):
            problem = "it has no configuration ('config')"
        else:
            return meta
    raise StorageError(f"{path} is damaged ({problem}); the trials' records are in the "
                       f"experiment's study, not in this file: restore it from a copy")


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temporary file, then rename), so readers never see half a file.

    A write that fails (a full disk) raises an OSError naming ``path``, not the temporary
    file or nothing (a full disk fails the write or the close, whose errors name no file),
    and leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


"""The experiment's best model, kept by its trials as they finish.

A trial that has trained a model offers it with a *score*; the experiment keeps the best one
offered so far in ``<experiment dir>/best_model/``::

    best_model/
        best_model.pt       the model file(s) offered (any names; bytes or copied files)
        parameters.json     the parameters of the trial that produced it
        predictions.json    its predictions on a held-out split (optional): labels,
                            predictions, class names, split name; read by the report
        best.json           the manifest, written last: score, trial, files, info, time

Scores are tuples of numbers compared lexicographically, **larger is better**: the Braille
example offers ``(validation accuracy, -spikes per sample)``, so validation decides and fewer
spikes break ties. A tie keeps the model offered first. For a quantity to minimise, offer its
negative.

Concurrency and crashes: trials running at the same time (processes or threads) take an
exclusive ``fcntl.flock`` on ``best_model.lock`` for the whole compare-and-replace. The new
model is written into a temporary directory (each file flushed to disk, manifest last) and only
then swapped in with two renames (``best_model`` → ``.best_model.old``, temporary →
``best_model``). A trial killed at any point leaves either the previous best model or the new
complete one; whoever takes the lock next finishes or undoes a swap that was cut short and
removes the leftovers. An offer that did not return has no effect.

This module imports only the standard library: trial scripts import it cheaply, and they pass
the model as bytes (``torch.save`` into a ``BytesIO``) or as the path of a file they saved.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from spiketune import trial as trial_api
from spiketune.errors import CheckpointError, TrialError
from spiketune.trial._protocol import ENV_EXPERIMENT_DIR

__all__ = [
    "BEST_MODEL_DIR",
    "ENV_EXPERIMENT_DIR",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "PARAMETERS_FILE",
    "PREDICTIONS_FILE",
    "BestModel",
    "BestModelKeeper",
    "Predictions",
    "experiment_dir_of_trial",
    "offer_best_model",
]

#: Environment variable naming the experiment directory of a trial. When absent, the directory is
#: derived from the trial directory (``<experiment dir>/trials/<number>``).
BEST_MODEL_DIR = "best_model"
MODEL_FILE = "best_model.pt"
PARAMETERS_FILE = "parameters.json"
PREDICTIONS_FILE = "predictions.json"
MANIFEST_FILE = "best.json"
_LOCK_FILE = "best_model.lock"
_OLD_DIR = ".best_model.old"
_TMP_PREFIX = ".best_model.tmp-"
_RESERVED = frozenset({PARAMETERS_FILE, PREDICTIONS_FILE, MANIFEST_FILE})


# ------------------------------------------------------------------------------ predictions
@dataclass(frozen=True)
class Predictions:
    """A model's predicted classes on one split, beside the true ones.

    ``labels`` and ``predictions`` are class indices (any sequence or array with ``tolist``);
    ``class_names[i]`` names class ``i`` (default: the indices as text). Validated on creation.
    """

    labels: list[int]
    predictions: list[int]
    class_names: list[str] | None = None
    split: str = "test"

    def __post_init__(self) -> None:
        labels = _int_list(self.labels, "labels")
        preds = _int_list(self.predictions, "predictions")
        if len(labels) != len(preds):
            raise TrialError(
                f"predictions: labels and predictions must have the same length, "
                f"got {len(labels)} and {len(preds)}"
            )
        names = None if self.class_names is None else [str(c) for c in self.class_names]
        if names is not None:
            bad = [v for v in labels + preds if v >= len(names)]
            if bad:
                raise TrialError(
                    f"predictions: class index {bad[0]} has no name; "
                    f"class_names has {len(names)} entries"
                )
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "predictions", preds)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "split", str(self.split))

    @property
    def n_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return max([*self.labels, *self.predictions], default=-1) + 1

    @property
    def names(self) -> list[str]:
        """Class names, the indices as text where none were given."""
        return self.class_names or [str(i) for i in range(self.n_classes)]

    @property
    def n_correct(self) -> int:
        return sum(1 for y, p in zip(self.labels, self.predictions, strict=True) if y == p)

    @property
    def accuracy(self) -> float:
        """Fraction of samples predicted right (NaN for an empty split)."""
        return self.n_correct / len(self.labels) if self.labels else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "class_names": self.names,
            "labels": self.labels,
            "predictions": self.predictions,
            "n_total": len(self.labels),
            "n_correct": self.n_correct,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Predictions:
        return cls(
            labels=list(d["labels"]),
            predictions=list(d["predictions"]),
            class_names=d.get("class_names"),
            split=d.get("split", "test"),
        )


def _int_list(values: Any, what: str) -> list[int]:
    """Class indices: whole numbers >= 0. A float such as 1.6 (a probability, a score) or
    text is refused, not cut to an index: the confusion matrix would be silently wrong."""
    if hasattr(values, "tolist"):  # numpy arrays, tensors
        values = values.tolist()
    if isinstance(values, str | bytes):
        raise TrialError(f"predictions: {what} must be a sequence of class indices, got text")
    try:
        items = list(values)
    except TypeError as e:
        raise TrialError(f"predictions: {what} must be class indices (integers): {e}") from e
    bad = [v for v in items if isinstance(v, bool)
           or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))]
    if bad:
        raise TrialError(f"predictions: {what} must be class indices (whole numbers), got "
                         f"{bad[0]!r}")
    out = [int(v) for v in items]
    if any(v < 0 for v in out):
        raise TrialError(f"predictions: {what} must be non-negative class indices")
    return out


# ------------------------------------------------------------------------------ best model
@dataclass(frozen=True)
class BestModel:
    """What ``best_model/`` holds: the manifest, parameters and predictions, read back."""

    directory: Path
    score: tuple[float, ...]
    parameters: dict[str, Any]
    files: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    trial_id: str | None = None  # get_trial_id() of the trial that offered it: its number, as text
    sequence_id: int | None = None
    saved: str | None = None
    predictions: Predictions | None = None

    def path(self, name: str = MODEL_FILE) -> Path:
        """The path of one kept file (default: the model)."""
        if name not in self.files:
            raise CheckpointError(f"the best model has no file {name!r}; it has {self.files}")
        return self.directory / name


class BestModelKeeper:
    """Keeps the best model of one experiment in ``<experiment_dir>/best_model/``.

    Lifecycle: create it from the experiment directory (nothing is touched yet), then call
    :meth:`offer` any number of times, from any number of processes; :meth:`current` reads the
    kept model. Every call holds the experiment's lock while it runs (see the module docstring).
    """

    def __init__(self, experiment_dir: str | os.PathLike[str]) -> None:
        self.experiment_dir = Path(experiment_dir)
        self.directory = self.experiment_dir / BEST_MODEL_DIR
        self._old = self.experiment_dir / _OLD_DIR
        self._lock_path = self.experiment_dir / _LOCK_FILE

    # ---------------------------------------------------------------- public
    def current(self) -> BestModel | None:
        """The kept model, or ``None`` before the first accepted offer."""
        try:
            with self._locked():
                return self._read()
        except OSError:
            # No lock file can be made: a read-only copy of an experiment, which nobody can be
            # writing to.
            return self._read()

    def offer(
        self,
        score: Sequence[float] | float,
        files: Mapping[str, bytes | str | os.PathLike[str]],
        *,
        parameters: Mapping[str, Any],
        info: Mapping[str, Any] | None = None,
        predictions: Predictions | None = None,
        trial_id: str | None = None,
        sequence_id: int | None = None,
    ) -> bool:
        """Keep this model if its score beats the kept one; ``True`` when it was kept.

        ``files`` maps plain file names (``"best_model.pt"``) to their content: bytes, or the
        path of a file to copy. ``info`` is any JSON-able dict stored in the manifest (metrics,
        epoch, spike counts...). Raises :class:`TrialError` for an invalid offer (checked
        before anything is written) and :class:`CheckpointError` when the files cannot be
        written.
        """
        key = _score(score)
        payload = _check_files(files)
        manifest = {
            "score": list(key),
            "trial_id": trial_id,
            "sequence_id": sequence_id,
            "saved": datetime.now().isoformat(timespec="seconds"),
            "files": sorted(payload),
            "info": _json_ready(dict(info or {}), "info"),
        }
        params_text = json.dumps(_json_ready(dict(parameters), "parameters"), indent=2)
        self.experiment_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            kept = self._read()
            if kept is not None:
                if len(kept.score) != len(key):
                    raise TrialError(
                        f"best model score {list(key)} has {len(key)} parts but the kept one "
                        f"{list(kept.score)} has {len(kept.score)}: offer scores of one shape"
                    )
                if key <= kept.score:
                    return False
            tmp = self.experiment_dir / f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                tmp.mkdir()
                for name, content in payload.items():
                    _write_file(tmp / name, content)
                _write_file(tmp / PARAMETERS_FILE, params_text.encode() + b"\n")
                if predictions is not None:
                    text = json.dumps(predictions.to_dict())
                    _write_file(tmp / PREDICTIONS_FILE, text.encode() + b"\n")
                _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2).encode() + b"\n")
                _fsync_dir(tmp)
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise CheckpointError(f"cannot write the best model into {tmp}: {e}") from e
            self._swap_in(tmp)
            return True

    # ---------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._recover()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _swap_in(self, tmp: Path) -> None:
        if self.directory.exists():
            os.replace(self.directory, self._old)
        os.replace(tmp, self.directory)
        _fsync_dir(self.experiment_dir)
        shutil.rmtree(self._old, ignore_errors=True)

    def _recover(self) -> None:
        """Finish or undo a swap that a killed process left half done; drop its leftovers."""
        complete = (self.directory / MANIFEST_FILE).is_file()
        if self._old.exists():
            if complete:  # killed after the second rename: the new model is in place
                shutil.rmtree(self._old, ignore_errors=True)
            else:  # killed between the renames: put the previous model back
                if self.directory.exists():
                    shutil.rmtree(self.directory)
                os.replace(self._old, self.directory)
        for leftover in self.experiment_dir.glob(_TMP_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _read(self) -> BestModel | None:
        d = self.directory
        try:
            manifest = json.loads((d / MANIFEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise CheckpointError(f"unreadable best model manifest {d / MANIFEST_FILE}: {e}") from e
        try:
            params = json.loads((d / PARAMETERS_FILE).read_text(encoding="utf-8"))
            pred_path = d / PREDICTIONS_FILE
            predictions = (
                Predictions.from_dict(json.loads(pred_path.read_text(encoding="utf-8")))
                if pred_path.is_file()
                else None
            )
            return BestModel(
                directory=d,
                score=tuple(float(s) for s in manifest["score"]),
                parameters=params,
                files=list(manifest.get("files", [])),
                info=dict(manifest.get("info") or {}),
                trial_id=manifest.get("trial_id"),
                sequence_id=manifest.get("sequence_id"),
                saved=manifest.get("saved"),
                predictions=predictions,
            )
        except (OSError, ValueError, KeyError, TypeError, TrialError) as e:
            raise CheckpointError(f"unreadable best model in {d}: {e}") from e


def _score(score: Sequence[float] | float) -> tuple[float, ...]:
    if score is None or isinstance(score, str | bytes):
        raise TrialError(f"best model score must be a number or a tuple of numbers, got "
                         f"{score!r}")
    one = isinstance(score, int | float) or getattr(score, "ndim", None) == 0  # NumPy, torch
    parts = [score] if one else list(score)
    if not parts:
        raise TrialError("best model score must have at least one number, got ()")
    out = []
    for s in parts:
        if isinstance(s, bool) or not hasattr(s, "__float__"):
            raise TrialError(f"best model score must be numbers, got {s!r} in {score!r}")
        f = float(s)
        if not math.isfinite(f):
            raise TrialError(f"best model score must be finite, got {s!r} in {score!r}")
        out.append(f)
    return tuple(out)


def _check_files(
    files: Mapping[str, bytes | str | os.PathLike[str]],
) -> dict[str, bytes | Path]:
    if not files:
        raise TrialError("a best model offer needs at least one file, got none")
    out: dict[str, bytes | Path] = {}
    for name, content in files.items():
        if (
            not isinstance(name, str)
            or not name
            or name.startswith(".")
            or "/" in name
            or "\\" in name
        ):
            raise TrialError(f"best model file name must be a plain file name, got {name!r}")
        if name in _RESERVED:
            raise TrialError(
                f"best model file name {name!r} is reserved; the keeper writes "
                f"{sorted(_RESERVED)} itself"
            )
        if isinstance(content, bytes | bytearray | memoryview):
            out[name] = bytes(content)
        elif isinstance(content, str | os.PathLike):
            path = Path(content)
            if not path.is_file():
                raise TrialError(f"best model file {name!r}: no file at {path}")
            out[name] = path
        else:
            raise TrialError(
                f"best model file {name!r} must be bytes or a file path, "
                f"got {type(content).__name__}"
            )
    return out


def _json_ready(obj: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(obj, allow_nan=False, default=_to_plain))
    except (TypeError, ValueError) as e:
        raise TrialError(f"best model {what} must be JSON-able (finite numbers): {e}") from e


def _to_plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


def _write_file(path: Path, content: bytes | Path) -> None:
    """Write (or copy) and flush to disk, so a renamed directory never holds an empty file."""
    with open(path, "wb") as out:
        if isinstance(content, Path):
            with open(content, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            out.write(content)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------ trial side
def experiment_dir_of_trial() -> Path | None:
    """The experiment directory of the running trial, or ``None`` outside any experiment.

    ``$SPIKETUNE_EXPERIMENT_DIR`` when set; otherwise two levels above the trial directory
    (``<experiment dir>/trials/<number>``), if an ``experiment.json`` is there.
    """
    env = os.environ.get(ENV_EXPERIMENT_DIR)
    if env:
        return Path(env)
    trial_dir = trial_api.get_trial_dir()
    if trial_dir is None:
        return None
    candidate = Path(trial_dir).resolve().parent.parent
    return candidate if (candidate / "experiment.json").is_file() else None


def offer_best_model(
    score: Sequence[float] | float,
    files: Mapping[str, bytes | str | os.PathLike[str]],
    info: Mapping[str, Any] | None = None,
    predictions: Predictions | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    experiment_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """From inside a trial: keep this model as the experiment's best if ``score`` beats it.

    ``parameters`` default to the trial's own (:func:`spiketune.trial.get_current_parameter`);
    the trial's id and sequence id are recorded. A script run by hand, outside any experiment
    (and without ``experiment_dir``), keeps nothing and gets ``False``.
    See :meth:`BestModelKeeper.offer` for the arguments.
    """
    directory = Path(experiment_dir) if experiment_dir is not None else experiment_dir_of_trial()
    if directory is None:
        return False
    in_trial = trial_api.get_trial_dir() is not None
    return BestModelKeeper(directory).offer(
        score,
        files,
        parameters=trial_api.get_current_parameter() if parameters is None else parameters,
        info=info,
        predictions=predictions,
        trial_id=trial_api.get_trial_id() if in_trial else None,
        sequence_id=trial_api.get_sequence_id() if in_trial else None,
    )

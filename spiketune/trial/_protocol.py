"""The trial protocol, both directions, in one module.

The engine and a trial process talk through a trial directory and a few environment
variables (documented in docs/engine.md):

* **in**: the engine writes ``parameter.json`` (:func:`write_parameters`); the trial reads it
  (:func:`read_parameters`);
* **out**: the trial appends one JSON line per report to ``metrics.jsonl``
  (:func:`append_metric`, ``{"type": "intermediate"|"final", "value": ...}``); the engine parses
  those lines (:func:`parse_metric_line`), incrementally while the trial runs
  (:class:`MetricsReader`) or all at once afterwards (:func:`read_metrics`);
* **in-process**, a trial that is a Python callable gets a channel bound to its thread
  (:func:`bind`) instead of the files, and :class:`TrialStopped` when the engine ends it.

Both sides live here so that a change of format is one change. The module imports only the
standard library: a trial process that does ``import spiketune.trial`` must start in
milliseconds, with no Optuna, numpy or torch behind it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

ENV_TRIAL_DIR = "SPIKETUNE_TRIAL_DIR"
# The trial's number in its study, as text: what get_trial_id() returns (the name is NNI's).
# Never the database's id of the trial.
ENV_TRIAL_ID = "SPIKETUNE_TRIAL_ID"
ENV_EXPERIMENT_ID = "SPIKETUNE_EXPERIMENT_ID"
ENV_SEQUENCE_ID = "SPIKETUNE_SEQUENCE_ID"
ENV_EXPERIMENT_DIR = "SPIKETUNE_EXPERIMENT_DIR"  # where best_model/ and report/ live
ENV_PARAMETERS = "SPIKETUNE_PARAMETERS"
ENV_PARAMETER_FILE = "SPIKETUNE_PARAMETER_FILE"
# The experiment's max_trial_duration in seconds, when it has one: a trial that knows its limit
# can end its training in time and report what it reached, rather than be killed without a
# result (see spiketune.trial.trial_deadline).
ENV_MAX_TRIAL_DURATION = "SPIKETUNE_MAX_TRIAL_DURATION"
# When the experiment's duration budget (max_duration) runs out, as a Unix time in seconds,
# reckoned when the scheduler started the trial's process: it stops every trial still running
# then, so a trial that knows can end its training before, with a result.
ENV_BUDGET_END = "SPIKETUNE_BUDGET_END"
PARAMETER_FILE = "parameter.json"
METRICS_FILE = "metrics.jsonl"
# Population mode (several trials trained in one process): the population's own directory
# holds ``population.json``, the list of its members; each member keeps its own trial
# directory. The engine asks a member to stop by creating STOP_REQUEST_FILE in the member's
# directory; the trial says that a member is over without a final result (it obeyed a stop,
# or failed alone) by writing MEMBER_END_FILE there.
ENV_POPULATION_FILE = "SPIKETUNE_POPULATION_FILE"
# The members' trial directories, os.pathsep-joined: a process of the population is a process
# of each member's trial (how the crash recovery finds leftovers by a member's directory).
ENV_POPULATION_MEMBERS = "SPIKETUNE_POPULATION_MEMBERS"
POPULATION_FILE = "population.json"
STOP_REQUEST_FILE = "stop_request"
MEMBER_END_FILE = "member_end.json"
# A running population takes new members (the engine refills the places of members that
# ended): the process says it does by creating ACCEPTING_FILE in the population's directory;
# the engine offers a member as JOINS_DIR/<number>.json, and the process claims it by renaming
# that file into JOINED_DIR (whichever of the two renames first wins: an offer the engine
# withdraws is never trained, one the process claimed is never withdrawn). A member's
# directory names its population's directory in POPULATION_MARK_FILE (crash recovery).
ACCEPTING_FILE = "accepting"
JOINS_DIR = "joins"
JOINED_DIR = "joined"
POPULATION_MARK_FILE = "population_dir"
# A population's process whose script asked for a single trial (get_next_parameter, a report)
# writes why into its directory before it fails: no member of it can ever train there, so the
# engine records them FAILED with that reason and does not retry them.
NOT_A_POPULATION_FILE = "not_a_population_script.txt"

INTERMEDIATE = "intermediate"
FINAL = "final"
_KINDS = (INTERMEDIATE, FINAL)


class TrialStopped(BaseException):
    """Raised inside an in-process trial when the engine ends it (assessor, timeout, stop).

    A ``BaseException`` so that a trial's own ``except Exception`` does not swallow it.
    """


# ------------------------------------------------------------------------------ metrics
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


def _within_float(value: int) -> float | int:
    """``value``, or an infinity of its sign where it is beyond a float's range (10**400):
    every number the engine compares, plots or stores is a float, and such an int would
    overflow there; as an infinity it is a non-finite metric, which fails its trial alone."""
    try:
        float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    return value


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or value is None or _is_boolean_scalar(value):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, int):
        return _within_float(value)
    if isinstance(value, float):
        return value
    if hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError) as e:  # an array of several values, say
            raise TypeError(f"{what} must be one number, got {type(value).__name__} "
                            f"({e})") from None
    raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")


def _is_boolean_scalar(value: Any) -> bool:
    """A NumPy or torch boolean (``np.bool_(True)``, ``torch.tensor(True)``): refused as
    Python's True is, not read as 1.0. By its dtype's name, with no import of either."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("bool", "torch.bool")


def _jsonable(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return _within_float(value)
    if value is None or isinstance(value, str | bool | float):
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


def metric_line(kind: str, value: dict[str, Any]) -> bytes:
    """One line of ``metrics.jsonl`` (with its newline) for a normalised ``value``."""
    if kind not in _KINDS:
        raise ValueError(f"a report's type must be one of {_KINDS}, got {kind!r}")
    return (json.dumps({"type": kind, "value": value}) + "\n").encode("utf-8")


def append_metric(trial_dir: Path, kind: str, value: dict[str, Any]) -> None:
    """Append one report to the trial's ``metrics.jsonl`` (trial side).

    One ``write()`` of one whole line on an ``O_APPEND`` file: the engine, reading while the
    trial runs, never sees half a record, and several threads of a trial may report at once.
    """
    line = metric_line(kind, value)
    fd = os.open(trial_dir / METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _int_or_infinity(digits: str) -> int | float:
    """An integer of a report; one too long for Python to read from text (over 4,300 digits)
    is far beyond a float's range, and is read as the infinity any such integer is."""
    try:
        return int(digits)
    except ValueError:
        return -math.inf if digits.startswith("-") else math.inf


def parse_metric_line(line: bytes | str) -> tuple[str, dict[str, Any]]:
    """``(kind, value)`` of one ``metrics.jsonl`` line (engine side); value normalised.

    ``kind`` is ``"intermediate"`` or ``"final"``. A ``null`` ``"default"`` or value (how
    JSON writers of other languages spell NaN) becomes NaN: the report is kept and the engine
    records the trial as non-finite. ``null`` under another key stays None (a named
    objective's is then "not a number"). Raises ``ValueError`` (or ``TypeError``) naming what
    is wrong with a line that does not follow the protocol.
    """
    try:
        obj = json.loads(line, parse_int=_int_or_infinity)
    except RecursionError:  # a line nested thousands deep: refused, not a crash
        raise ValueError("nested too deeply to be a report") from None
    if not isinstance(obj, dict) or obj.get("type") not in _KINDS:
        raise ValueError('expected {"type": "intermediate"|"final", "value": ...}')
    if "value" not in obj:
        raise ValueError("missing 'value'")
    value = obj["value"]
    if isinstance(value, dict) and value.get("default", 0) is None:
        value = dict(value, default=float("nan"))
    elif value is None:
        value = float("nan")
    return obj["type"], normalize_metric(value)


class MetricsReader:
    """Reads a trial's ``metrics.jsonl`` while it grows (engine side).

    Each :meth:`read` returns the intermediate results appended since the last call, in order.
    Only the first final result counts (:attr:`final`); lines that break the protocol are kept
    as messages in :attr:`errors` and skipped. A line is taken only once its newline is there,
    except by ``read(last=True)``, called once the trial has ended.

    The protocol appends; a trial that rewrites the whole file instead (a new file moved over
    it, or the old one truncated) is read again from its start, its intermediate results
    counted from there, so that its final result is not lost: :func:`read_metrics`, which
    ``resume`` uses, would find it, and both must agree.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._buffer = b""
        self._taken = 0  # intermediate results returned so far
        self._skip = 0  # of those, how many a rewritten file repeats from its start
        self.final: dict[str, Any] | None = None
        self.errors: list[str] = []

    def read(self, *, last: bool = False) -> list[dict[str, Any]]:
        """The intermediate results appended since the previous call."""
        if self._rewritten():
            self._file.close()
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed by close()
            self._buffer = b""
            self._skip = self._taken
        data = self._file.read()
        if data:
            self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if last and self._buffer.strip():  # a last line without its newline
            lines.append(self._buffer)
            self._buffer = b""
        out: list[dict[str, Any]] = []
        for raw in lines:
            if raw.strip():
                self._take(raw, out)
        return out

    def _rewritten(self) -> bool:
        """Whether the path now holds another file, or a file shorter than what was read."""
        try:
            now = os.stat(self._path)
        except OSError:  # removed: what was read stands
            return False
        held = os.fstat(self._file.fileno())
        return ((now.st_ino, now.st_dev) != (held.st_ino, held.st_dev)
                or now.st_size < self._file.tell())

    def _take(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        try:
            kind, value = parse_metric_line(raw)
        except (ValueError, TypeError) as e:
            text = raw[:200].decode("utf-8", errors="replace")
            message = f"unreadable line in {METRICS_FILE} ({e}): {text}"
            if message not in self.errors:  # a rewritten file is read again
                self.errors.append(message)
            return
        if kind == INTERMEDIATE:
            if self._skip:
                self._skip -= 1
                return
            out.append(value)
            self._taken += 1
        elif self.final is None:
            self.final = value

    def close(self) -> None:
        self._file.close()


def read_metrics(trial_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``(intermediate results, first final result or None)`` of a trial's ``metrics.jsonl``.

    For a trial that is over (or whose scheduler is gone); unreadable lines are skipped, and a
    missing file reads as no reports at all.
    """
    try:
        reader = MetricsReader(trial_dir / METRICS_FILE)
    except OSError:
        return [], None
    try:
        return reader.read(last=True), reader.final
    finally:
        reader.close()


# ------------------------------------------------------------------------------ parameters
def write_parameters(trial_dir: Path, parameters_json: str) -> Path:
    """Write ``parameter.json`` (engine side): exactly ``parameters_json``, byte for byte.

    The text is what the study stores too, so the parameters a trial reads and the ones
    recorded for it cannot differ.
    """
    trial_dir.mkdir(parents=True, exist_ok=True)
    path = trial_dir / PARAMETER_FILE
    path.write_text(parameters_json, encoding="utf-8")
    return path


def read_parameters(trial_dir: Path) -> dict[str, Any]:
    """The parameters in the trial's ``parameter.json`` (trial side)."""
    with open(trial_dir / PARAMETER_FILE, encoding="utf-8") as f:
        params = json.load(f)
    if not isinstance(params, dict):
        raise ValueError(
            f"{trial_dir / PARAMETER_FILE} must hold a JSON object, got {type(params).__name__}"
        )
    return params


# ------------------------------------------------------------------------------ population
def write_population(population_dir: Path, members: list[dict[str, Any]]) -> Path:
    """Write ``population.json`` (engine side): ``{"members": [{"number", "sequence_id",
    "trial_dir"}, ...]}``, each member's ``parameter.json`` being in its own directory."""
    population_dir.mkdir(parents=True, exist_ok=True)
    path = population_dir / POPULATION_FILE
    path.write_text(json.dumps({"members": members}, indent=1) + "\n", encoding="utf-8")
    return path


def read_population(path: Path) -> list[dict[str, Any]]:
    """The members listed in a ``population.json`` (trial side)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not all(
        isinstance(m, dict) and {"number", "trial_dir"} <= m.keys() for m in members
    ):
        raise ValueError(f"{path} must hold {{'members': [{{'number', 'trial_dir'}}, ...]}}")
    return members


def offer_member(population_dir: Path, entry: dict[str, Any]) -> None:
    """Offer a new member to a running population (engine side): ``entry`` as in
    ``population.json``, written whole and then renamed into ``joins/`` (the process never
    reads half of it); the member's directory is marked with its population's."""
    joins = population_dir / JOINS_DIR
    joins.mkdir(parents=True, exist_ok=True)
    number = int(entry["number"])
    tmp = joins / f".{number}.json.tmp"
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    mark_member(Path(entry["trial_dir"]), population_dir)
    os.replace(tmp, joins / f"{number}.json")


def withdraw_member(population_dir: Path, number: int) -> bool:
    """Take back an offer (engine side): True when the process had not claimed it (it will
    never train it), False when it had (the member runs in that process)."""
    try:
        (population_dir / JOINS_DIR / f"{number}.json").unlink()
    except FileNotFoundError:
        return False
    return True


def claim_members(population_dir: Path) -> list[dict[str, Any]]:
    """The members offered to this population since the last call (trial side), in the order
    of their numbers; each is claimed (moved to ``joined/``) before it is read, so an offer
    the engine withdrew meanwhile is skipped."""
    joins, joined = population_dir / JOINS_DIR, population_dir / JOINED_DIR
    try:
        names = [n for n in os.listdir(joins) if n.endswith(".json") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    joined.mkdir(exist_ok=True)
    entries = []
    for name in sorted(names, key=lambda n: int(n.split(".")[0])):
        try:
            os.replace(joins / name, joined / name)
        except FileNotFoundError:
            continue  # withdrawn
        with open(joined / name, encoding="utf-8") as f:
            entries.append(json.load(f))
    return entries


def set_accepting(population_dir: Path, accepting: bool) -> None:
    """Say whether this population's process takes new members (trial side)."""
    path = population_dir / ACCEPTING_FILE
    if accepting:
        path.touch()
    else:
        path.unlink(missing_ok=True)


def not_a_population_script(population_dir: Path) -> str | None:
    """Why the population's script cannot train populations, as its process wrote it
    (engine side), or None."""
    try:
        return (population_dir / NOT_A_POPULATION_FILE).read_text(encoding="utf-8").strip() \
            or None
    except (OSError, ValueError):
        return None


def is_accepting(population_dir: Path) -> bool:
    """Whether the population's process takes new members (engine side; one ``stat``)."""
    return (population_dir / ACCEPTING_FILE).exists()


def mark_member(trial_dir: Path, population_dir: Path) -> None:
    """Record in a member's directory which population's process trains it."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / POPULATION_MARK_FILE).write_text(str(population_dir), encoding="utf-8")


def marked_population(trial_dir: Path) -> Path | None:
    """The population directory a member's directory names, if any."""
    try:
        text = (trial_dir / POPULATION_MARK_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Path(text) if text else None


def write_member_end(trial_dir: Path, status: str, reason: str = "") -> None:
    """Say that a member is over without a final result (trial side): ``status`` is
    ``"stopped"`` (it obeyed the engine's stop request) or ``"failed"`` (``reason``).
    Written whole, then renamed into place: the engine never reads half of it."""
    tmp = trial_dir / (MEMBER_END_FILE + ".tmp")
    tmp.write_text(json.dumps({"status": status, "reason": reason}), encoding="utf-8")
    os.replace(tmp, trial_dir / MEMBER_END_FILE)


def read_member_end(trial_dir: Path) -> dict[str, str] | None:
    """The member's end note (engine side), or None while it has written none."""
    try:
        text = (trial_dir / MEMBER_END_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"status": "failed", "reason": f"unreadable {MEMBER_END_FILE}: {text[:200]!r}"}
    if not isinstance(data, dict) or data.get("status") not in ("stopped", "failed"):
        return {"status": "failed", "reason": f"unreadable {MEMBER_END_FILE}: {text[:200]!r}"}
    return {"status": str(data["status"]), "reason": str(data.get("reason", ""))}


# ------------------------------------------------------------------------------ channels
class Channel(Protocol):
    """Where reports go and parameters come from; one per running trial."""

    parameters: dict[str, Any]
    nni_trial_id: str  # what get_trial_id() returns: the trial's number as text, or "manual"
    experiment_id: str
    sequence_id: int
    trial_dir: Path | None

    def report(self, kind: str, value: dict[str, Any]) -> None: ...


class FileChannel:
    """A trial launched by the engine: ``parameter.json`` in, ``metrics.jsonl`` out."""

    def __init__(self, trial_dir: Path, environ: Mapping[str, str] = os.environ) -> None:
        self.trial_dir: Path | None = trial_dir
        self._dir = trial_dir
        self.nni_trial_id = environ.get(ENV_TRIAL_ID, "")
        self.experiment_id = environ.get(ENV_EXPERIMENT_ID, "")
        self.sequence_id = int(environ.get(ENV_SEQUENCE_ID, "0") or 0)
        self.parameters = read_parameters(trial_dir)

    def report(self, kind: str, value: dict[str, Any]) -> None:
        append_metric(self._dir, kind, value)


class ManualChannel:
    """A trial script run by hand: parameters from the command line or environment; reports
    printed."""

    def __init__(self, argv: list[str], environ: Mapping[str, str]) -> None:
        self.trial_dir: Path | None = None
        self.nni_trial_id = "manual"
        self.experiment_id = "manual"
        self.sequence_id = 0
        from spiketune.errors import ConfigError

        try:
            self.parameters = manual_parameters(argv, environ)
        except ConfigError as e:  # the script's own command line: its reason, no traceback
            raise SystemExit("error: " + "; ".join(str(p) for p in e.problems)) from None
        self._count = 0

    def report(self, kind: str, value: dict[str, Any]) -> None:
        if kind == INTERMEDIATE:
            self._count += 1
            label = f"intermediate result {self._count}"
        else:
            label = "final result"
        shown = value["default"] if len(value) == 1 else value
        print(f"[spiketune] {label}: {json.dumps(shown)}", flush=True)


def manual_parameters(argv: list[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """Parameters of a script run by hand: ``--params FILE``, else ``SPIKETUNE_PARAMETERS``
    (inline JSON), else ``SPIKETUNE_PARAMETER_FILE`` (a path), else ``{}``."""
    from spiketune.errors import ConfigError, Problem

    path: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--params":
            if i + 1 == len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(Problem("--params", None, "the path of a JSON file of "
                                          "parameters after it"))
            path = argv[i + 1]
        elif arg.startswith("--params="):
            path = arg.split("=", 1)[1]
    # A file that is missing, unreadable or not a JSON object is the user's input: a
    # ConfigError naming where the parameters came from, not a traceback.
    if path is None and environ.get(ENV_PARAMETERS):
        where, shown = f"${ENV_PARAMETERS}", environ[ENV_PARAMETERS]
        try:
            params = json.loads(shown)
        except ValueError as e:
            raise ConfigError(Problem(where, shown, f"a JSON object of parameters ({e})")
                              ) from None
    else:
        where = "--params" if path else f"${ENV_PARAMETER_FILE}"
        path = path or environ.get(ENV_PARAMETER_FILE)
        if not path:
            return {}
        shown = path
        try:
            with open(path, encoding="utf-8") as f:
                params = json.load(f)
        except OSError as e:
            raise ConfigError(Problem(where, path, f"a readable JSON file of parameters "
                                      f"({e.strerror or e})")) from None
        except ValueError as e:  # bad JSON, or not UTF-8
            raise ConfigError(Problem(where, path, f"a JSON object of parameters ({e})")
                              ) from None
    if not isinstance(params, dict):
        raise ConfigError(Problem(where, shown, f"a JSON object of parameters, not a JSON "
                                  f"{type(params).__name__}"))
    return params


_bound = threading.local()
_process_channel: Channel | None = None
_lock = threading.Lock()
#: threads of this process bound to a channel (in-process trials, population members)
_bound_threads = 0


def channel() -> Channel:
    """The channel of the calling thread's trial, chosen once per process when first needed:
    the thread's bound channel (in-process), else the trial directory's files (launched by the
    engine), else the manual channel (run by hand)."""
    bound = getattr(_bound, "channel", None)
    if bound is not None:
        return bound
    if _bound_threads and not os.environ.get(ENV_TRIAL_DIR):
        # a thread the trial started: its reports would be printed as if run by hand, and the
        # trial would end without them
        from spiketune.errors import TrialError

        raise TrialError(
            "spiketune.trial was called from a thread that is not the trial's own: an "
            "in-process trial reports from the thread that runs its function (hand the "
            "values back to it, or run the trial as a command, one process per trial)"
        )
    population_file = os.environ.get(ENV_POPULATION_FILE)
    if population_file:
        message = (
            "this process trains a population of trials (the experiment sets population = K): "
            "get them with spiketune.trial.population() and report through each member, or "
            "run the experiment without population mode"
        )
        with contextlib.suppress(OSError):  # the members' reason, which no retry changes
            (Path(population_file).parent / NOT_A_POPULATION_FILE).write_text(
                message + "\n", encoding="utf-8")
        raise RuntimeError(message)
    global _process_channel
    with _lock:
        if _process_channel is None:
            trial_dir = os.environ.get(ENV_TRIAL_DIR)
            _process_channel = (
                FileChannel(Path(trial_dir)) if trial_dir
                else ManualChannel(sys.argv[1:], os.environ)
            )
        return _process_channel


_hosts_trials = False


def host_in_process_trials() -> None:
    """Mark this process as one that runs in-process trials (the engine's, the user's own
    Python): its trials do not own it, and so do not change how it exits."""
    global _hosts_trials
    _hosts_trials = True


def hosts_in_process_trials() -> bool:
    """Whether :func:`host_in_process_trials` marked this process."""
    return _hosts_trials


@dataclass(frozen=True)
class ThreadLimits:
    """The time limits of an in-process trial, which shares its process (and so its
    environment) with the scheduler and the other trials: the trial's own ``max_trial_duration``
    (seconds), the duration budget's end (a Unix time, seconds) and its start (a
    :func:`time.perf_counter` instant: when the runner started its thread)."""

    time_limit: float | None
    budget_end: float | None
    started: float


def budget_end_in(environment: Mapping[str, str]) -> float | None:
    """The duration budget's end that ``environment`` holds (``$SPIKETUNE_BUDGET_END``, a Unix
    time in seconds), or None without a valid one."""
    try:
        end = float(environment.get(ENV_BUDGET_END, "").strip())
    except ValueError:
        return None
    return end if math.isfinite(end) and end > 0 else None


def thread_limits() -> ThreadLimits | None:
    """The limits of the calling thread's in-process trial; None in a trial process (whose
    limits are in its environment) or by hand."""
    bound = getattr(_bound, "channel", None)
    limits = getattr(bound, "limits", None)
    return limits if isinstance(limits, ThreadLimits) else None


def bound_trial_dir() -> Path | None:
    """The trial directory of the channel bound to the calling thread (an in-process trial, a
    population member), or None: what is the thread's own in a process several trials share."""
    directory = getattr(getattr(_bound, "channel", None), "trial_dir", None)
    return Path(directory) if directory is not None else None


def bind(bound: Channel | None) -> None:
    """Attach a channel to the calling thread (the in-process runner); ``None`` detaches."""
    global _bound_threads
    with _lock:
        _bound_threads += (bound is not None) - (getattr(_bound, "channel", None) is not None)
    _bound.channel = bound


def reset() -> None:
    """Forget the process-wide channel (for tests that change the environment)."""
    global _process_channel
    with _lock:
        _process_channel = None

"""The WISDM smartphone and smartwatch activity data: raw sensor streams cut into windows.

Source: G. M. Weiss, "WISDM Smartphone and Smartwatch Activity and Biometrics Dataset", UCI
Machine Learning Repository, dataset 507 (2019), doi:10.24432/C5HK59 (CC BY 4.0). 51 subjects
(ids 1600..1650) each performed 18 activities for 3 minutes with a phone in the pocket and a
watch on the dominant hand; the accelerometer and gyroscope of both were sampled at 20 Hz.

Layout: ``wisdm-dataset/raw/{phone,watch}/{accel,gyro}/data_<subject>_<sensor>_<device>.txt``,
one record a line, ``subject,activity_code,timestamp,x,y,z;`` with the timestamp in
nanoseconds. The UCI download wraps ``wisdm-dataset.zip`` (and the description PDF) in an outer
zip; the outer zip, ``wisdm-dataset.zip`` itself or an extracted directory are all accepted.

Defaults are the published hand-activity task: watch accelerometer + gyroscope (6 channels:
``accel_x, accel_y, accel_z, gyro_x, gyro_y, gyro_z``), the 7 hand-oriented activities
F, G, O, P, Q, R, S, non-overlapping 2 s windows (40 samples of 50 ms).

Alignment rule (accelerometer + gyroscope): within one subject and activity, each
accelerometer sample is paired with the gyroscope sample nearest in time, and the pair is kept
only if the two are at most half a sampling period (25 ms) apart; a gyroscope sample is used
once (by the accelerometer sample closest to it). Samples without a partner are dropped, so
only the stretch both sensors recorded (their overlap) remains. The pair takes the
accelerometer's time.

Windows are cut from runs of consecutive kept samples: a gap of more than 1.5 sampling periods
(a missing sample) ends a run, so a window never spans a hole in the recording. A run's
leftover shorter than a window is dropped.

Split and normalisation: by default subjects are split (no subject in two parts), because
windows of one recording are near copies of each other and would leak between a window-level
train and test set. Each channel is then standardised with the mean and standard deviation of
the training windows only, and the same statistics are applied to validation and test.
"""

from __future__ import annotations

import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from spiketune._validation import cross_field
from spiketune.data._base import Dataset, DatasetInfo, DatasetLoader, validate_options
from spiketune.data._download import RemoteFile, cache_dir, download, extract_member
from spiketune.data._encoding import bin_events, sigma_delta_encode
from spiketune.data._splits import Split, stratified_split
from spiketune.errors import DataError

#: Activity codes and names, in code order (there is no code N).
WISDM_ACTIVITIES: Mapping[str, str] = MappingProxyType({
    "A": "walking",
    "B": "jogging",
    "C": "stairs",
    "D": "sitting",
    "E": "standing",
    "F": "typing",
    "G": "brushing teeth",
    "H": "eating soup",
    "I": "eating chips",
    "J": "eating pasta",
    "K": "drinking from cup",
    "L": "eating sandwich",
    "M": "kicking (soccer ball)",
    "O": "playing catch (tennis ball)",
    "P": "dribbling (basketball)",
    "Q": "writing",
    "R": "clapping",
    "S": "folding clothes",
})
#: The 7 hand-oriented activities of the published task, in label order.
WISDM_HAND_ACTIVITIES: tuple[str, ...] = ("F", "G", "O", "P", "Q", "R", "S")
#: Subject ids of the dataset.
WISDM_SUBJECTS: tuple[int, ...] = tuple(range(1600, 1651))
#: Sampling rate (Hz) and its period, the time step of every window (seconds).
WISDM_RATE = 20.0
WISDM_DT = 1.0 / WISDM_RATE

#: Checksum of the UCI archive. UNVERIFIED: UCI publishes none, so it is ``None`` and the
#: download is accepted unverified, with a warning that prints the md5 received.
WISDM_ARCHIVE_MD5: str | None = None
#: Size in bytes of the UCI archive, as recorded by a third party that downloaded it
#: (sha256 6e0147f181d8f5275918db65eeb9dc842a0185d37cb6b2f30cbf74ee6e205469, inner
#: wisdm-dataset.zip sha256 1cf32e8d3a0ecc101bd299fba22545273dcb7de1c9565e0b7844abdfbc6b1695).
#: Not checked here against UCI; a fresh download of another size only warns.
WISDM_ARCHIVE_SIZE: int | None = 310_292_805

WISDM_ARCHIVE = RemoteFile(
    url=(
        "https://archive.ics.uci.edu/static/public/507/"
        "wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset.zip"
    ),
    filename="wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset.zip",
    md5=WISDM_ARCHIVE_MD5,
    page=(
        "https://archive.ics.uci.edu/dataset/507/"
        "wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset"
    ),
    zip=True,
)

_INNER = "wisdm-dataset.zip"
_SENSORS: tuple[str, ...] = ("accel", "gyro")
_AXES: tuple[str, ...] = ("x", "y", "z")
#: A raw file's path (in a zip or below a directory): device, sensor, subject.
_RAW = re.compile(r"(?:.*/)?raw/(phone|watch)/(accel|gyro)/data_(\d+)_\2_\1\.txt")
_NAME = re.compile(r"data_(\d+)_(accel|gyro)_(phone|watch)\.txt")
_PERIOD_NS = 50_000_000  # one sampling period, nanoseconds
_MAX_GAP_NS = 75_000_000  # 1.5 periods: a longer gap means a missing sample
_FIELDS = "subject,activity,timestamp,x,y,z"
#: How many notes the summary warning spells out.
_NOTES_SHOWN = 10

Recording = tuple[np.ndarray, np.ndarray]  # timestamps [N] int64 ns, values [N, C] float64


class WisdmOptions(pydantic.BaseModel):
    """Options of ``load_wisdm``; see its docstring. Units: seconds."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None
    device: Literal["phone", "watch"] = "watch"
    sensors: tuple[Literal["accel", "gyro"], ...] = ("accel", "gyro")
    activities: Literal["hand", "all"] | tuple[str, ...] = "hand"
    subjects: tuple[int, ...] | None = None
    window: float = pydantic.Field(default=2.0, ge=WISDM_DT, allow_inf_nan=False)
    overlap: float = pydantic.Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    split: Literal["subject", "stratified"] = "subject"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    kind: Literal["frame", "events"] = "frame"
    threshold: float = pydantic.Field(default=0.5, gt=0, allow_inf_nan=False)
    clip: bool = True
    missing: Literal["error", "warn"] = "error"
    seed: int = pydantic.Field(default=0, ge=0)
    download: bool = True
    progress: bool = True

    @pydantic.field_validator("sensors", mode="before")
    @classmethod
    def _sensors(cls, value: Any) -> Any:
        if value == "both":
            return _SENSORS
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, Sequence) or not value:
            raise ValueError("must be 'accel', 'gyro', 'both' or a list of them")
        for item in value:
            if item not in _SENSORS:
                raise ValueError(f"unknown sensor {item!r}; sensors are 'accel' and 'gyro'")
        if len(set(value)) != len(value):
            raise ValueError("lists a sensor twice")
        return tuple(s for s in _SENSORS if s in value)  # channels: accel first, then gyro

    @pydantic.field_validator("activities", mode="before")
    @classmethod
    def _activities(cls, value: Any) -> Any:
        if value in ("hand", "all"):
            return value
        rule = "must be 'hand', 'all' or a list of activity codes (A..S without N)"
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise ValueError(rule)
        out: list[str] = []
        for item in value:
            code = item.upper() if isinstance(item, str) else None
            if code not in WISDM_ACTIVITIES:
                codes = ", ".join(WISDM_ACTIVITIES)
                raise ValueError(f"unknown activity {item!r}; codes are {codes}")
            if code in out:
                raise ValueError(f"activity {code!r} is listed twice")
            out.append(code)
        return tuple(out)

    @pydantic.field_validator("subjects", mode="before")
    @classmethod
    def _subjects(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise ValueError("must be a list of subject ids (1600..1650)")
        out: list[int] = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | np.integer) \
                    or int(item) not in WISDM_SUBJECTS:
                raise ValueError(f"subject {item!r} is not an id in 1600..1650")
            if int(item) in out:
                raise ValueError(f"subject {int(item)} is listed twice")
            out.append(int(item))
        if not out:
            raise ValueError("must list at least one subject")
        return tuple(sorted(out))

    @pydantic.field_validator("ratios", mode="after")
    @classmethod
    def _ratios(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        ok = all(np.isfinite(r) and 0 <= r <= 1 for r in value) and value[0] > 0
        if not ok or abs(sum(value) - 1.0) > 1e-9:
            raise ValueError("must be three numbers (train, val, test) in [0, 1], train > 0, "
                             "summing to 1")
        return value

    @pydantic.field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError("must be a non-negative integer")
        return int(value)

    @pydantic.model_validator(mode="after")
    def _event_options_need_events(self) -> WisdmOptions:
        if self.kind == "frame":
            for name in ("threshold", "clip"):
                if name in self.model_fields_set:
                    raise cross_field(name, getattr(self, name), "applies only to kind='events'")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        """Activity codes in label order."""
        if self.activities == "hand":
            return WISDM_HAND_ACTIVITIES
        if self.activities == "all":
            return tuple(WISDM_ACTIVITIES)
        return tuple(self.activities)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(WISDM_ACTIVITIES[code] for code in self.codes)

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the analog channels, in input order."""
        return tuple(f"{sensor}_{axis}" for sensor in self.sensors for axis in _AXES)

    @property
    def n_steps(self) -> int:
        """Samples per window: ``round(window / 0.05 s)``."""
        return max(1, round(self.window / WISDM_DT))

    @property
    def step(self) -> int:
        """Samples from one window's start to the next: ``round(n_steps * (1 - overlap))``."""
        return max(1, round(self.n_steps * (1.0 - self.overlap)))


@dataclass(frozen=True)
class WisdmRecords:
    """The records of one raw file, in file order.

    ``activities`` holds each record's code, ``timestamps`` its time in nanoseconds (int64),
    ``values`` its ``x, y, z`` in the units the device reports (float64, ``[N, 3]``).
    """

    subject: int
    activities: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class WisdmData:
    """The WISDM windows, split and standardised.

    ``dataset`` holds every window (ordered by subject, then activity in label order, then
    time) and ``train``, ``val``, ``test`` are ``dataset.split(split)``. ``window_subjects``
    gives the subject of each window of ``dataset``. ``mean`` and ``std`` (per analog channel,
    named in ``channels``, in the sensors' units) were fitted on the training windows only and
    applied to all parts. ``notes`` lists what was left out: subjects missing a sensor file
    (with ``missing="warn"``), recordings too short for a window, odd sampling intervals.
    """

    dataset: Dataset
    train: Dataset
    val: Dataset
    test: Dataset
    split: Split
    window_subjects: np.ndarray
    channels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: tuple[str, ...]

    @property
    def split_digest(self) -> str:
        """SHA-256 of the split's index lists (see ``Split.digest``)."""
        return self.split.digest()

    @property
    def train_subjects(self) -> tuple[int, ...]:
        return self._subjects_of(self.split.train)

    @property
    def val_subjects(self) -> tuple[int, ...]:
        return self._subjects_of(self.split.val)

    @property
    def test_subjects(self) -> tuple[int, ...]:
        return self._subjects_of(self.split.test)

    def _subjects_of(self, indices: np.ndarray) -> tuple[int, ...]:
        return tuple(int(s) for s in np.unique(self.window_subjects[indices]))


# ------------------------------------------------------------------------------ parsing
def _bad(where: str, number: int, rule: str, line: str) -> DataError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return DataError(f"{where}, line {number}: {rule} (got {shown!r})")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{where}, line {number}: not UTF-8 text ({exc.reason})") from None


def _split_lines(text: str, where: str) -> tuple[list[int], list[str], list[list[str]]]:
    """Line numbers, lines and fields of every record; blank lines are skipped."""
    numbers, lines, fields = [], [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not line.endswith(";"):
            raise _bad(where, number, "a record must end with ';'", line)
        parts = line[:-1].split(",")
        if len(parts) != 6:
            raise _bad(where, number, f"has {len(parts)} fields, expected 6 ({_FIELDS})", line)
        numbers.append(number)
        lines.append(line)
        fields.append(parts)
    return numbers, lines, fields


_ARTICLE = {np.int64: "an integer (64-bit)", np.float64: "a number"}


def _converts(value: str, dtype: type) -> bool:
    try:
        number = int(value) if dtype is np.int64 else float(value)
    except ValueError:
        return False
    return dtype is not np.int64 or -(2**63) <= number < 2**63


def _column(
    values: Sequence[str], dtype: type, what: str, where: str, numbers: list[int],
    lines: list[str],
) -> np.ndarray:
    """``values`` as ``dtype``; the first one that does not convert is reported by line."""
    try:
        out = np.asarray(values, dtype=str).astype(dtype)
    except (ValueError, OverflowError):
        i = next(i for i, value in enumerate(values) if not _converts(value, dtype))
        raise _bad(where, numbers[i], f"{what} is not {_ARTICLE[dtype]}", lines[i]) from None
    if dtype is np.float64 and not np.all(np.isfinite(out)):
        i = int(np.flatnonzero(~np.isfinite(out))[0])
        raise _bad(where, numbers[i], f"{what} is not a finite number", lines[i])
    return out


def _parse_lines(text: str, where: str, subject: int | None) -> WisdmRecords:
    """Check and convert every record line by line, blaming the first bad one by number."""
    numbers, lines, fields = _split_lines(text, where)
    columns = list(zip(*fields, strict=True)) or [()] * 6
    ids = _column(columns[0], np.int64, "the subject", where, numbers, lines)
    stripped = [code.strip() for code in columns[1]]
    unknown = [i for i, code in enumerate(stripped) if code not in WISDM_ACTIVITIES]
    if unknown:
        i = unknown[0]
        raise _bad(where, numbers[i], f"unknown activity code {stripped[i]!r} (codes: "
                   f"{''.join(WISDM_ACTIVITIES)})", lines[i])
    codes = np.asarray(stripped, dtype="<U1")
    if subject is None:
        if not len(ids):
            raise DataError(f"{where}: holds no record")
        subject = int(ids[0])
    wrong = np.flatnonzero(ids != subject)
    if len(wrong):
        i = int(wrong[0])
        raise _bad(where, numbers[i], f"subject {ids[i]} in the file of subject {subject}",
                   lines[i])
    stamps = _column(columns[2], np.int64, "the timestamp", where, numbers, lines)
    axes = [_column(columns[3 + k], np.float64, axis, where, numbers, lines)
            for k, axis in enumerate(_AXES)]
    values = np.stack(axes, axis=1) if fields else np.empty((0, 3))
    return WisdmRecords(subject, codes, stamps, values)


def _parse_fast(text: str, subject: int | None) -> WisdmRecords | None:
    """The records of a well-formed file, converted a column at a time; ``None`` at the first
    doubt, and ``_parse_lines`` then finds the line to blame. Why: a real file holds about
    65,000 records, and checking them one by one in Python takes several times longer."""
    records = text.split()  # a well-formed record holds no blank: one token each
    n = len(records)
    if not n or list(map(str.count, records, repeat(","))).count(5) != n \
            or list(map(str.count, records, repeat(";"))).count(1) != n \
            or list(map(str.endswith, records, repeat(";"))).count(True) != n:
        return None
    fields = ",".join(records).replace(";", "").split(",")
    if not set(fields[1::6]) <= WISDM_ACTIVITIES.keys():
        return None
    try:
        ids = np.array(list(map(int, fields[0::6])), dtype=np.int64)
        stamps = np.array(list(map(int, fields[2::6])), dtype=np.int64)
        values = np.array([fields[3::6], fields[4::6], fields[5::6]], dtype=np.float64).T
    except (ValueError, OverflowError):
        return None
    subject = int(ids[0]) if subject is None else subject
    if np.any(ids != subject) or not np.all(np.isfinite(values)):
        return None
    codes = np.array(fields[1::6], dtype="<U1")
    return WisdmRecords(subject, codes, stamps, np.ascontiguousarray(values))


def _parse(data: bytes, where: str, subject: int | None) -> WisdmRecords:
    """Check and convert every record of one raw file (see ``read_wisdm_file``)."""
    text = _decode(data, where)
    fast = _parse_fast(text, subject)
    return fast if fast is not None else _parse_lines(text, where, subject)


def read_wisdm_file(path: Path | str) -> WisdmRecords:
    """The records of one raw WISDM file, every line checked.

    A line must read ``subject,activity,timestamp,x,y,z;`` (integer subject and timestamp in
    nanoseconds, an activity code A..S without N, finite numbers); blank lines are skipped.
    The subject must be the one of the file name ``data_<subject>_<sensor>_<device>.txt``
    (or, for another name, that of the first record). Anything else raises ``DataError``
    naming the file and the line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    named = _NAME.fullmatch(path.name)
    return _parse(data, str(path), int(named.group(1)) if named else None)


# ------------------------------------------------------------------ alignment and windows
def _by_activity(records: WisdmRecords, codes: Sequence[str]) -> dict[str, Recording]:
    """Per activity code: its samples sorted by time, a repeated timestamp kept once."""
    out = {}
    for code in codes:
        mask = records.activities == code
        stamps, order = np.unique(records.timestamps[mask], return_index=True)
        out[code] = (stamps, records.values[mask][order])
    return out


def _pair(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reference time: the index of the nearest ``other`` time, and whether that pair
    is kept (at most half a period apart, and the closest claimant of that ``other`` sample)."""
    right = np.searchsorted(other, reference)
    left = np.clip(right - 1, 0, len(other) - 1)
    right = np.clip(right, 0, len(other) - 1)
    closer_right = np.abs(other[right] - reference) < np.abs(reference - other[left])
    index = np.where(closer_right, right, left)
    distance = np.abs(other[index] - reference)
    order = np.lexsort((np.arange(len(reference)), distance, index))
    first = np.ones(len(order), dtype=bool)
    first[1:] = index[order][1:] != index[order][:-1]
    unique = np.zeros(len(reference), dtype=bool)
    unique[order[first]] = True
    return index, unique & (2 * distance <= _PERIOD_NS)


def _align(streams: Sequence[Recording]) -> Recording:
    """One recording of all sensors' channels, paired on the first sensor's timestamps."""
    stamps, values = streams[0]
    if len(streams) == 1:
        return stamps, values
    keep = np.ones(len(stamps), dtype=bool)
    columns = [values]
    for other_stamps, other_values in streams[1:]:
        if not len(other_stamps) or not len(stamps):
            return stamps[:0], np.empty((0, 3 * len(streams)))
        index, kept = _pair(stamps, other_stamps)
        keep &= kept
        columns.append(other_values[index])
    return stamps[keep], np.concatenate(columns, axis=1)[keep]


def _windows(recording: Recording, n_steps: int, step: int) -> np.ndarray:
    """Windows ``[K, n_steps, C]`` starting every ``step`` samples within each gap-free run."""
    stamps, values = recording
    breaks = np.flatnonzero(np.diff(stamps) > _MAX_GAP_NS) + 1
    parts = [
        np.lib.stride_tricks.sliding_window_view(run, n_steps, axis=0)[::step]
        for run in np.split(values, breaks)
        if len(run) >= n_steps
    ]
    if not parts:
        return np.empty((0, n_steps, values.shape[1]))
    return np.concatenate(parts).transpose(0, 2, 1)  # the view is [K, C, n_steps]


def _interval_note(stamps: np.ndarray, what: str) -> list[str]:
    """A note when the median sampling interval is far from 50 ms (timestamps in another unit,
    or another rate), since every rule here counts on 20 Hz in nanoseconds."""
    if len(stamps) < 2:
        return []
    median = float(np.median(np.diff(stamps)))
    if _PERIOD_NS / 2 <= median <= 2 * _PERIOD_NS:
        return []
    return [f"{what}: median sampling interval {median / 1e6:.3g} ms, expected 50 ms "
            "(timestamps are read as nanoseconds at 20 Hz)"]


# --------------------------------------------------------------------------- raw files
class _RawFiles:
    """The raw text files of a ``wisdm-dataset.zip`` or of a directory holding ``raw/``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{path} is not a readable zip archive: {exc}") from None

    def __enter__(self) -> _RawFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._zip is not None:
            self._zip.close()

    def names(self) -> list[str]:
        if self._zip is not None:
            return self._zip.namelist()
        return [p.relative_to(self.path).as_posix()
                for p in sorted((self.path / "raw").rglob("data_*.txt"))]

    def where(self, name: str) -> str:
        """How a message names the file ``name``."""
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise DataError(f"{self.where(name)}: cannot be read ({exc})") from None


def _expected_name(opts: WisdmOptions, subject: int, sensor: str) -> str:
    return f"raw/{opts.device}/{sensor}/data_{subject}_{sensor}_{opts.device}.txt"


def _find_files(names: Sequence[str], opts: WisdmOptions, where: Path) -> dict[int, dict[str, str]]:
    """Per subject present: the file of each asked sensor, by name."""
    found: dict[int, dict[str, str]] = {}
    for name in names:
        match = _RAW.fullmatch(name)
        if match is None or match.group(1) != opts.device or match.group(2) not in opts.sensors:
            continue
        files = found.setdefault(int(match.group(3)), {})
        if match.group(2) in files:
            raise DataError(f"{where}: two files for one sensor: {files[match.group(2)]}, {name}")
        files[match.group(2)] = name
    if not found:
        raise DataError(
            f"{where}: no raw {opts.device} file of the sensor(s) {', '.join(opts.sensors)} "
            f"(expected {_expected_name(opts, 1600, opts.sensors[0])} and the like)"
        )
    return found


def _complete_subjects(
    found: dict[int, dict[str, str]], opts: WisdmOptions, where: Path
) -> tuple[dict[int, dict[str, str]], list[str]]:
    """The subjects that have every asked sensor file; a missing one is an error, or (with
    ``missing="warn"``) a note and the subject is left out."""
    wanted = opts.subjects if opts.subjects is not None else tuple(sorted(found))
    missing = [
        f"subject {subject}: no {sensor} file {_expected_name(opts, subject, sensor)}"
        for subject in wanted
        for sensor in opts.sensors
        if sensor not in found.get(subject, {})
    ]
    if missing and opts.missing == "error":
        raise DataError(f"{where}: missing sensor file(s): {'; '.join(missing)} (pass "
                        "missing='warn' to load the other subjects and list these)")
    complete = {s: found[s] for s in wanted if set(opts.sensors) <= set(found.get(s, {}))}
    if not complete:
        raise DataError(f"{where}: no subject has every sensor file: {'; '.join(missing)}")
    return complete, [f"{m} (subject left out)" for m in missing]


@dataclass
class _Windows:
    """Windows as they are read: analog values, labels and subjects, plus notes."""

    values: list[np.ndarray]
    labels: list[int]
    subjects: list[int]
    notes: list[str]


def _read_subject(
    raw: _RawFiles, subject: int, files: dict[str, str], opts: WisdmOptions, out: _Windows
) -> None:
    """Parse one subject's sensor files and append its windows of every asked activity."""
    streams = {
        sensor: _by_activity(_parse(raw.read(files[sensor]), raw.where(files[sensor]), subject),
                             opts.codes)
        for sensor in opts.sensors
    }
    for label, code in enumerate(opts.codes):
        for sensor in opts.sensors:
            out.notes += _interval_note(streams[sensor][code][0],
                                        f"subject {subject}, activity {code}, {sensor}")
        recording = _align([streams[sensor][code] for sensor in opts.sensors])
        windows = _windows(recording, opts.n_steps, opts.step)
        if not len(windows):
            out.notes.append(
                f"subject {subject}, activity {code} ({WISDM_ACTIVITIES[code]}): no window "
                f"({len(recording[0])} aligned samples, a window takes {opts.n_steps})"
            )
        out.values.append(windows)
        out.labels += [label] * len(windows)
        out.subjects += [subject] * len(windows)


def _read_windows(path: Path, opts: WisdmOptions) -> _Windows:
    out = _Windows([], [], [], [])
    with _RawFiles(path) as raw:
        found = _find_files(raw.names(), opts, path)
        subjects, out.notes = _complete_subjects(found, opts, path)
        for subject, files in subjects.items():
            _read_subject(raw, subject, files, opts, out)
    counts = np.bincount(np.asarray(out.labels, dtype=np.int64), minlength=len(opts.codes))
    empty = [f"{code} ({WISDM_ACTIVITIES[code]})" for code, c in zip(opts.codes, counts,
                                                                       strict=True) if not c]
    if empty:
        raise DataError(f"{path}: no window of activity {', '.join(empty)}")
    return out


# -------------------------------------------------------------- split, scale and encode
def _subject_split(subjects: np.ndarray, opts: WisdmOptions) -> Split:
    """Whole subjects to train, val and test: a seeded, machine-independent shuffle of the
    subject ids (``stratified_split`` with one class), then every window follows its subject."""
    people = np.unique(subjects)
    try:
        by_person = stratified_split(np.zeros(len(people), np.int64), opts.ratios, opts.seed)
        parts = (by_person.train, by_person.val, by_person.test)
        empty = [name for name, ratio, part in zip(("train", "val", "test"), opts.ratios, parts,
                                                   strict=True) if ratio > 0 and not len(part)]
    except DataError:  # the training part would be empty
        empty, parts = ["train"], ()
    if empty:
        raise DataError(f"{len(people)} subject(s) are too few for ratios {opts.ratios}: the "
                        f"{', '.join(empty)} part would get no subject")
    indices = []
    for part in parts:
        index = np.flatnonzero(np.isin(subjects, people[part])).astype(np.int64)
        index.setflags(write=False)
        indices.append(index)
    return Split(*indices)


def _fit_normalisation(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every sample of the training windows (a
    sample in two overlapping windows counts twice); a constant channel gets std 1."""
    flat = train.reshape(-1, train.shape[-1])
    if not len(flat):
        raise DataError("the training part holds no window")
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return mean, np.where(std > 1e-9, std, 1.0)


def _events(frames: np.ndarray, opts: WisdmOptions) -> torch.Tensor:
    """Sigma-delta ON/OFF events of each standardised window, counted per 50 ms step:
    ``[N, T, 2C]`` (ON of the C channels, then OFF). ``threshold`` is in standard deviations;
    each window is encoded on its own, from its first sample."""
    events = [sigma_delta_encode(window, opts.threshold, rate=WISDM_RATE) for window in frames]
    return bin_events(events, bin_size=WISDM_DT, n_steps=frames.shape[1], channels="split",
                      clip=opts.clip)


def _dataset_name(opts: WisdmOptions) -> str:
    which = opts.activities if isinstance(opts.activities, str) else "custom"
    kind = f"events_th{opts.threshold:g}" if opts.kind == "events" else opts.kind
    return f"wisdm_{opts.device}_{'+'.join(opts.sensors)}_{which}_{kind}"


def _notify(notes: Sequence[str]) -> None:
    if notes:
        shown = "; ".join(notes[:_NOTES_SHOWN])
        more = f"; and {len(notes) - _NOTES_SHOWN} more" if len(notes) > _NOTES_SHOWN else ""
        warnings.warn(f"WISDM: {shown}{more} (all in WisdmData.notes)", stacklevel=3)


# ------------------------------------------------------------------------ locating files
def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive: {exc}") from None


def _holds_raw(names: Sequence[str]) -> bool:
    return any(_RAW.fullmatch(name) for name in names)


def _inner_archive(archive: Path, root: Path) -> Path:
    """The zip holding the raw files: ``archive`` itself, or the ``wisdm-dataset.zip`` it wraps,
    extracted (atomically, CRC-checked) into ``root`` once and reused after."""
    names = _zip_names(archive)
    if _holds_raw(names):
        return archive
    if not any(name.rsplit("/", 1)[-1] == _INNER for name in names):
        raise DataError(f"{archive}: holds neither raw WISDM files nor {_INNER} (archive "
                        f"holds: {', '.join(names[:20])})")
    inner = root / _INNER
    if inner != archive and inner.is_file():
        try:
            if _holds_raw(_zip_names(inner)):
                return inner
        except DataError:
            pass  # a damaged copy: extract it again
    extract_member(archive, re.escape(_INNER), inner)
    if not _holds_raw(_zip_names(inner)):
        raise DataError(f"{inner} (from {archive}) holds no raw WISDM files")
    return inner


def _from_path(path: Path, root: Path) -> Path:
    """The raw-file source of a given ``path`` (a directory or a zip)."""
    if path.is_file():
        return _inner_archive(path, root)
    if not path.is_dir():
        raise DataError(f"{path} does not exist")
    for candidate in (path, path / "wisdm-dataset"):
        if (candidate / "raw").is_dir():
            return candidate
    for name in (_INNER, WISDM_ARCHIVE.filename):
        if (path / name).is_file():
            return _inner_archive(path / name, root)
    raise DataError(f"{path} holds none of raw/, wisdm-dataset/raw/, {_INNER}, "
                    f"{WISDM_ARCHIVE.filename}")


def _check_size(archive: Path) -> None:
    """Warn when a fresh download's size differs from the one recorded (no checksum exists)."""
    size = archive.stat().st_size
    if WISDM_ARCHIVE_SIZE is not None and size != WISDM_ARCHIVE_SIZE:
        warnings.warn(
            f"{archive.name}: received {size} bytes, but {WISDM_ARCHIVE_SIZE} bytes were "
            f"recorded for the UCI archive; it may have been republished (compare with "
            f"{WISDM_ARCHIVE.page})",
            stacklevel=4,
        )


def _locate(opts: WisdmOptions) -> Path:
    root = cache_dir() / "wisdm"
    if opts.path is not None:
        return _from_path(opts.path.expanduser(), root)
    if (root / "wisdm-dataset" / "raw").is_dir():
        return root / "wisdm-dataset"
    if (root / _INNER).is_file():
        return _inner_archive(root / _INNER, root)
    archive = root / WISDM_ARCHIVE.filename
    fresh = not archive.is_file()
    if fresh and not opts.download:
        raise DataError(
            f"the WISDM data are not in {root} and download=False. Download "
            f"{WISDM_ARCHIVE.filename} from {WISDM_ARCHIVE.page} and place it at {archive} "
            f"(or place {_INNER} at {root / _INNER}, or extract it so that "
            f"{root / 'wisdm-dataset' / 'raw'} exists, or pass path=)."
        )
    archive = download(WISDM_ARCHIVE, root, progress=opts.progress)
    if fresh:
        _check_size(archive)
    return _inner_archive(archive, root)


class WisdmLoader(DatasetLoader):
    """Loads the WISDM raw files; options as for ``load_wisdm``.

    ``load()`` gives every window (``WisdmData.dataset``); ``load_parts()`` gives the split
    parts and the normalisation statistics too.
    """

    name = "wisdm"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(WisdmOptions, options)

    def locate(self) -> Path:
        """A directory holding ``raw/`` or a zip holding the raw files (downloaded, cached
        and unwrapped as needed)."""
        return _locate(self.options)

    def build(self, path: Path | None) -> Dataset:
        return self.build_parts(path).dataset

    def load_parts(self) -> WisdmData:
        return self.build_parts(self.locate())

    def build_parts(self, path: Path | None) -> WisdmData:
        """Read, window, split, standardise (training statistics) and encode."""
        if path is None:
            raise DataError("the WISDM dataset needs a directory or a zip archive")
        opts = self.options
        read = _read_windows(path, opts)
        windows = np.concatenate(read.values)
        labels = np.asarray(read.labels, dtype=np.int64)
        subjects = np.asarray(read.subjects, dtype=np.int64)
        subjects.setflags(write=False)
        if opts.split == "subject":
            split = _subject_split(subjects, opts)
        else:
            split = stratified_split(labels, opts.ratios, opts.seed)
        mean, std = _fit_normalisation(windows[split.train])
        frames = (windows - mean) / std
        inputs = _events(frames, opts) if opts.kind == "events" \
            else torch.from_numpy(frames.astype(np.float32))
        info = DatasetInfo(name=_dataset_name(opts), classes=opts.classes,
                           n_inputs=int(inputs.shape[2]), n_steps=opts.n_steps, dt=WISDM_DT)
        dataset = Dataset(info, inputs, torch.from_numpy(labels))
        _notify(read.notes)
        return WisdmData(dataset, *dataset.split(split), split=split,
                         window_subjects=subjects, channels=opts.channels,
                         mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                         notes=tuple(read.notes))


def load_wisdm(
    path: Path | str | None = None,
    *,
    device: Literal["phone", "watch"] = "watch",
    sensors: Literal["accel", "gyro", "both"] | Sequence[str] = "both",
    activities: Literal["hand", "all"] | Sequence[str] = "hand",
    subjects: Sequence[int] | None = None,
    window: float = 2.0,
    overlap: float = 0.0,
    split: Literal["subject", "stratified"] = "subject",
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    kind: Literal["frame", "events"] = "frame",
    threshold: float | None = None,
    clip: bool | None = None,
    missing: Literal["error", "warn"] = "error",
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
) -> WisdmData:
    """WISDM activity windows, split into train/val/test and standardised.

    ``path``: a directory holding ``raw/`` or ``wisdm-dataset/raw/``, ``wisdm-dataset.zip``, or
    the UCI archive that wraps it. Without ``path`` the data are looked up in
    ``cache_dir()/wisdm`` (an extracted ``wisdm-dataset/``, then ``wisdm-dataset.zip``, then the
    UCI archive) and, with ``download=True``, downloaded from UCI first (about 310 MB; UCI
    publishes no checksum, so the download warns with the md5 received).

    ``device``: ``"watch"`` or ``"phone"``. ``sensors``: ``"accel"``, ``"gyro"`` or ``"both"``
    (channels ``accel_x, accel_y, accel_z`` then ``gyro_x, gyro_y, gyro_z``; the two are paired
    by timestamp, see the module docstring). ``activities``: ``"hand"`` (F, G, O, P, Q, R, S),
    ``"all"`` (the 18 codes) or a list of codes; labels follow that order and class names come
    from ``WISDM_ACTIVITIES``. ``subjects``: ids to read (default: every subject with a file
    of the device); a subject missing an asked sensor file raises ``DataError`` naming it and
    the file, or with ``missing="warn"`` is left out, warned about and listed in ``notes``.

    ``window`` (seconds) gives ``T = round(window / 0.05)`` steps of ``dt = 0.05`` s; ``overlap``
    (fraction in [0, 1)) sets the step between window starts, ``round(T * (1 - overlap))``.
    ``split``: ``"subject"`` (default: whole subjects to each part, ``ratios`` of the subjects)
    or ``"stratified"`` (windows, class proportions kept; windows of one recording then sit in
    several parts). ``seed`` makes either split the same on every machine.

    ``kind``: ``"frame"`` gives the standardised analog values as input currents,
    ``[N, T, C]`` float32; ``"events"`` gives their sigma-delta ON/OFF events, ``[N, T, 2C]``
    (ON of every channel, then OFF), with ``threshold`` in standard deviations (default 0.5)
    and ``clip`` (default True) for 0/1 spikes rather than counts per step. Bad options raise
    ``ConfigError``; a missing, malformed or damaged file raises ``DataError``. ``progress``
    shows a progress bar while downloading.

    Cost: reading the 102 watch files takes some seconds; ``kind="events"`` adds about a
    millisecond per window (the encoder is plain Python).
    """
    events = {"threshold": threshold, "clip": clip}
    return WisdmLoader(
        path=path, device=device, sensors=sensors, activities=activities, subjects=subjects,
        window=window, overlap=overlap, split=split, ratios=ratios, kind=kind,
        missing=missing, seed=seed, download=download, progress=progress,
        **{key: value for key, value in events.items() if value is not None},
    ).load_parts()

"""The Tactile Braille Letters dataset: event files, binned into spike tensors.

Source: Müller-Cleve, Fra, Khacef, et al., "Braille letter reading: a benchmark for
spatio-temporal pattern recognition on neuromorphic hardware", Frontiers in Neuroscience
16:951164 (2022); data on Zenodo, record 7050094 (CC BY 4.0). An iCub fingertip with 12
taxels slid over 27 embossed letters (``Space``, ``A``..``Z``), 200 recordings each, sampled at
40 Hz and sigma-delta encoded with thresholds 1, 2, 5 and 10 into ON/OFF event times.

A file is a pickle of a list of ``{"letter": str, "events": [[on_times, off_times]] * 12}``
(times in seconds), or the same records as a pandas table with ``letter`` and ``events``
columns. Both are read through an allow-list (``_safe_pickle``).

Channels: ``"split"`` (24 inputs: ON of taxels 0..11, then OFF of taxels 0..11) is the
default because it keeps the polarity that the OR merge throws away, which matters at the
sparse threshold 10; ``"merged"`` (12 inputs, ON | OFF) is the recipe of the NIR paper.

``kind="frame"`` reads the raw 40 Hz readings the events were made from instead (12 analog
inputs, resampled to ``bin_size``; see ``_braille_frames``), and ``braille_frames_from_array``
takes such readings as an array. Both kinds select letters and order labels the same way
(``_select``), so the same samples get the same labels and the same splits.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from spiketune._torch_load import finding, refused_global
from spiketune._validation import cross_field
from spiketune.data._base import Dataset, DatasetInfo, DatasetLoader, validate_options
from spiketune.data._braille_frames import (
    BRAILLE_FRAME_RATE,
    FRAME_FILE_NAMES,
    FRAME_MEMBER_PATTERN,
    N_TAXELS,
    check_letters,
    frames_array,
    read_frame_table,
    resample,
)
from spiketune.data._download import RemoteFile, cache_dir, download, extract_member
from spiketune.data._encoding import Events, bin_events
from spiketune.data._safe_pickle import safe_load
from spiketune.errors import DataError

#: All 27 classes, in the label order of ``letters="full"``.
BRAILLE_LETTERS: tuple[str, ...] = ("Space", *(chr(c) for c in range(ord("A"), ord("Z") + 1)))
#: The 7-class task of the NIR paper and of the published HPO pipeline, in label order.
BRAILLE_REDUCED_LETTERS: tuple[str, ...] = ("Space", "A", "E", "I", "O", "U", "Y")
#: Sigma-delta thresholds the dataset was published with.
BRAILLE_THRESHOLDS: tuple[int, ...] = (1, 2, 5, 10)

#: Checksum of ``reading_braille_data.zip`` as published on the Zenodo record.
#: UNVERIFIED: the value could not be read from the record when this was written, so it is
#: ``None`` and downloads are accepted unverified (with a warning that prints the md5
#: received). Set it to the md5 shown on https://zenodo.org/records/7050094 once checked.
BRAILLE_ARCHIVE_MD5: str | None = None

BRAILLE_ARCHIVE = RemoteFile(
    url="https://zenodo.org/records/7050094/files/reading_braille_data.zip?download=1",
    filename="reading_braille_data.zip",
    md5=BRAILLE_ARCHIVE_MD5,
    page="https://zenodo.org/records/7050094",
    zip=True,
)

#: Seconds per time step of the NIR paper's preprocessed split.
NIR_BIN_SIZE = 0.005

#: Named encodings of ``load_braille(preset=...)``: the options a preset fills in when they are
#: not given. ``"nir"`` is the encoding of the NIR paper's Braille task, of the published HPO
#: use case and of ``load_braille_pool`` files: threshold 1, the 7 reduced letters, 12 channels
#: (ON | OFF of each taxel, OR-merged), 0/1 spikes in 5 ms bins over 1.28 s (256 steps), each
#: event in its nearest bin (``round(t / 5 ms)``, as the archive's published loaders bin).
BRAILLE_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "nir": MappingProxyType({
        "threshold": 1,
        "letters": "reduced",
        "channels": "merged",
        "clip": True,
        "bin_size": NIR_BIN_SIZE,
        "window": 1.28,
        "binning": "nearest",
    }),
})

#: Options that only the event encoding reads, and those that only the frames read.
_EVENT_OPTIONS = ("threshold", "channels", "clip", "binning")
_FRAME_OPTIONS = ("rate", "timestamps", "scale")

#: The file name of the threshold-1 pool (``load_braille_pool`` accepts its directory too).
_POOL_FILE = "braille_reduced_th1_pool.pt"
#: Channels of the reduced encoding: one per taxel, ON | OFF.
_POOL_CHANNELS = 12


def _file_names(threshold: int) -> list[str]:
    """Names an event file of ``threshold`` goes by (shared copies drop the ``.pkl``)."""
    stems = [f"data_braille_letters_th{threshold}", f"data_braille_letters_th_{threshold}"]
    return [name for stem in stems for name in (f"{stem}.pkl", stem)]


#: An event file's name as the archive gives it, with the threshold it was encoded at.
_EVENT_FILE_NAME = re.compile(r"data_braille_letters_th_?(\d+)(\.pkl)?")


def braille_file_threshold(path: str | os.PathLike[str]) -> int | None:
    """The sigma-delta threshold an event file's name gives (``data_braille_letters_th10`` is
    10), or None for a name that gives none. Why: the four encodings' files hold the same
    kind of lists, so only the name tells a threshold-10 file from a threshold-1 one."""
    match = _EVENT_FILE_NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


class BrailleOptions(pydantic.BaseModel):
    """Options of ``load_braille``; see its docstring. Units: seconds; ``rate`` in Hz."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None
    kind: Literal["events", "frame"] = "events"
    preset: Literal["nir"] | None = None
    threshold: Literal[1, 2, 5, 10] = 10
    letters: Literal["reduced", "full"] | tuple[str, ...] = "reduced"
    bin_size: float = pydantic.Field(default=0.005, gt=0, allow_inf_nan=False)
    window: float = pydantic.Field(default=1.35, gt=0, allow_inf_nan=False)
    channels: Literal["split", "merged"] = "split"
    clip: bool = True
    binning: Literal["floor", "nearest"] = "floor"
    rate: float = pydantic.Field(default=BRAILLE_FRAME_RATE, gt=0, allow_inf_nan=False)
    timestamps: bool | str = True
    scale: float = pydantic.Field(default=1.0, gt=0, allow_inf_nan=False)
    download: bool = True
    progress: bool = True

    @pydantic.model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """A preset fills the encoding options that are not given; given ones win."""
        if isinstance(data, dict) and isinstance(data.get("preset"), str):
            preset = BRAILLE_PRESETS.get(data["preset"])
            if preset is not None:  # an unknown name is left to the field's rule
                return {**preset, **{k: v for k, v in data.items() if v is not None}}
        return data

    @pydantic.field_validator("letters", mode="before")
    @classmethod
    def _letters(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in ("reduced", "full"):
                return value
            raise ValueError("must be 'reduced', 'full' or a list of letters")
        if not isinstance(value, Sequence) or not value:
            raise ValueError("must be 'reduced', 'full' or a non-empty list of letters")
        canonical = {name.lower(): name for name in BRAILLE_LETTERS}
        out = []
        for item in value:
            name = canonical.get(str(item).lower()) if isinstance(item, str) else None
            if name is None:
                raise ValueError(
                    f"unknown letter {item!r}; letters are {', '.join(BRAILLE_LETTERS)}"
                )
            if name in out:
                raise ValueError(f"letter {name!r} is listed twice")
            out.append(name)
        return tuple(out)

    @pydantic.field_validator("timestamps", mode="before")
    @classmethod
    def _timestamps(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, str) and value.strip()):
            return value
        raise ValueError(
            "must be true (find the timestamps column), false (reading k at k / rate) "
            "or a column name"
        )

    @pydantic.model_validator(mode="after")
    def _options_fit_the_kind(self) -> BrailleOptions:
        """An option the chosen ``kind`` never reads is refused, not silently ignored."""
        given = self.model_fields_set
        if self.kind == "frame":
            if self.preset is not None:
                raise cross_field("preset", self.preset, "applies only to kind='events'")
            for name in _EVENT_OPTIONS:
                if name in given:
                    raise cross_field(name, getattr(self, name), "applies only to kind='events'")
        else:
            for name in _FRAME_OPTIONS:
                if name in given:
                    raise cross_field(name, getattr(self, name), "applies only to kind='frame'")
        return self

    @pydantic.model_validator(mode="after")
    def _window_holds_a_bin(self) -> BrailleOptions:
        if self.window < self.bin_size:
            raise ValueError(
                f"window ({self.window} s) must be at least one bin_size ({self.bin_size} s)"
            )
        return self

    @property
    def classes(self) -> tuple[str, ...]:
        if self.letters == "reduced":
            return BRAILLE_REDUCED_LETTERS
        if self.letters == "full":
            return BRAILLE_LETTERS
        return tuple(self.letters)

    @property
    def n_steps(self) -> int:
        """Time steps: ``round(window / bin_size)``."""
        return max(1, round(self.window / self.bin_size))

    @property
    def which(self) -> str:
        """The letters' part of a dataset name: ``reduced``, ``full`` or ``custom``."""
        return self.letters if isinstance(self.letters, str) else "custom"


def read_braille_events(path: Path | str) -> tuple[list[str], list[Events]]:
    """The letters and event lists of a Braille event file, in file order.

    Accepts the list-of-dicts pickle and the pandas table; anything else is ``DataError``.
    """
    path = Path(path)
    if _is_torch_file(path):  # else "truncated or corrupt", which it is not
        raise DataError(f"{path} is a TensorDataset file (a pool of encoded samples), not an "
                        "event file: read it with load_braille_pool or load_braille_encoding")
    obj = safe_load(path)
    if isinstance(obj, list):
        letters, events = [], []
        for i, record in enumerate(obj):
            if not isinstance(record, dict) or "letter" not in record or "events" not in record:
                raise DataError(f"{path}: record {i} is not a dict with 'letter' and 'events'")
            letters.append(record["letter"])
            events.append(record["events"])
    elif type(obj).__module__.startswith("pandas") and hasattr(obj, "columns"):
        missing = {"letter", "events"} - set(obj.columns)
        if missing:
            raise DataError(f"{path}: the table lacks the column(s) {sorted(missing)}")
        letters, events = list(obj["letter"].tolist()), list(obj["events"].tolist())
    else:
        raise DataError(f"{path}: expected a list of records or a table, got {type(obj)}")
    for i, letter in enumerate(letters):
        if not isinstance(letter, str):
            raise DataError(f"{path}: record {i} has a non-text letter {letter!r}")
    return letters, events


def _is_torch_file(path: Path) -> bool:
    """Whether ``path`` is what ``torch.save`` writes: a zip archive holding ``data.pkl``."""
    if path.suffix in (".pt", ".pth"):
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith("/data.pkl") for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _select(
    letters: Sequence[str], classes: tuple[str, ...], source: str
) -> tuple[list[int], torch.Tensor]:
    """The samples whose letter is one of ``classes`` (in file order) and their labels, the
    index of the letter in ``classes``: one rule for events and frames, so the same samples
    get the same labels and ``stratified_split`` the same splits. Every class must occur."""
    index = {name: k for k, name in enumerate(classes)}
    chosen = [i for i, letter in enumerate(letters) if letter in index]
    present = {letters[i] for i in chosen}
    absent = [name for name in classes if name not in present]
    if absent:
        raise DataError(f"{source}: no samples of letter(s) {absent}")
    labels = torch.tensor([index[letters[i]] for i in chosen], dtype=torch.int64)
    return chosen, labels


def _frame_dataset(
    readings: np.ndarray | list[np.ndarray],
    times: np.ndarray | list[np.ndarray],
    labels: torch.Tensor,
    opts: BrailleOptions,
) -> Dataset:
    """Resampled, scaled frames ``[N, n_steps, 12]`` float32 with their labels."""
    n_steps = opts.n_steps
    if isinstance(readings, np.ndarray):  # one time grid for all samples
        x = resample(readings, np.asarray(times), opts.bin_size, n_steps)
    else:
        x = np.stack([resample(r, t, opts.bin_size, n_steps)
                      for r, t in zip(readings, times, strict=True)])
    inputs = torch.from_numpy((x * opts.scale).astype(np.float32))
    info = DatasetInfo(
        name=f"braille_frame_{opts.which}",
        classes=opts.classes,
        n_inputs=N_TAXELS,
        n_steps=n_steps,
        dt=opts.bin_size,
    )
    return Dataset(info, inputs, labels)


class BrailleLoader(DatasetLoader):
    """Loads the Braille event files, or with ``kind="frame"`` the frame table; options as
    for ``load_braille``."""

    name = "braille"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(BrailleOptions, options)

    def locate(self) -> Path:
        opts = self.options
        frame = opts.kind == "frame"
        names = list(FRAME_FILE_NAMES) if frame else _file_names(opts.threshold)
        if opts.path is not None:
            given = opts.path.expanduser()
            if given.is_file():
                named = None if frame else braille_file_threshold(given)
                if named is not None and named != opts.threshold:
                    raise DataError(
                        f"{given}: its name says sigma-delta threshold {named}, and "
                        f"threshold={opts.threshold} was asked; give threshold={named}, or "
                        f"the event file of threshold {opts.threshold}"
                    )
                return given
            if given.is_dir():
                for name in names:
                    if (given / name).is_file():
                        return given / name
                raise DataError(f"{given} holds none of {', '.join(names)}")
            raise DataError(f"{given} does not exist")
        root = cache_dir() / "braille"
        for name in names:
            if (root / name).is_file():
                return root / name
        archive = root / BRAILLE_ARCHIVE.filename
        if not archive.is_file() and not opts.download:
            raise DataError(
                f"the Braille data are not in {root} and download=False. Download "
                f"{BRAILLE_ARCHIVE.filename} from {BRAILLE_ARCHIVE.page} and place it at "
                f"{archive} (or pass path= to {'the frame table' if frame else 'an event file'})."
            )
        archive = download(BRAILLE_ARCHIVE, root, progress=opts.progress)
        if not frame:
            pattern = rf"data_braille_letters_th_?{opts.threshold}(\.pkl)?"
            return extract_member(archive, pattern, root / names[0])
        try:
            return extract_member(archive, FRAME_MEMBER_PATTERN, root / names[0])
        except DataError as exc:
            raise DataError(
                f"{exc}. The frame table's name inside the archive is not confirmed; if the "
                "archive holds it under another name, extract it and pass path= to it"
            ) from None

    def build(self, path: Path | None) -> Dataset:
        if path is None:
            raise DataError("the Braille dataset needs a file")
        opts = self.options
        if opts.kind == "frame":
            letters, readings, times = read_frame_table(
                path, known=BRAILLE_LETTERS, timestamps=opts.timestamps, rate=opts.rate
            )
            chosen, labels = _select(letters, opts.classes, str(path))
            return _frame_dataset(
                [readings[i] for i in chosen], [times[i] for i in chosen], labels, opts
            )
        letters, events = read_braille_events(path)
        classes = opts.classes
        chosen, labels = _select(letters, classes, str(path))
        try:
            inputs = bin_events(
                [events[i] for i in chosen],
                bin_size=opts.bin_size,
                n_steps=opts.n_steps,
                channels=opts.channels,
                clip=opts.clip,
                names=[f"record {i} ({letters[i]})" for i in chosen],
                binning=opts.binning,
            )
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        taxels = inputs.shape[2] // (2 if opts.channels == "split" else 1)
        if taxels != N_TAXELS:  # 11 taxels split would pass for 22 channels otherwise
            raise DataError(f"{path}: its records have {taxels} taxels; the Braille sensor "
                            f"has {N_TAXELS}")
        info = DatasetInfo(
            name=f"braille_th{opts.threshold}_{opts.which}_{opts.channels}",
            classes=classes,
            n_inputs=int(inputs.shape[2]),
            n_steps=opts.n_steps,
            dt=opts.bin_size,
        )
        return Dataset(info, inputs, labels)


def load_braille(
    path: Path | str | None = None,
    *,
    kind: Literal["events", "frame"] = "events",
    preset: Literal["nir"] | None = None,
    threshold: int | None = None,
    letters: Literal["reduced", "full"] | Sequence[str] | None = None,
    bin_size: float | None = None,
    window: float | None = None,
    channels: Literal["split", "merged"] | None = None,
    clip: bool | None = None,
    binning: Literal["floor", "nearest"] | None = None,
    rate: float | None = None,
    timestamps: bool | str | None = None,
    scale: float | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """The Braille letters as tensors: inputs ``[N, T, C]`` float32, labels int64.

    ``kind="events"`` (default) reads the sigma-delta events and gives spikes;
    ``kind="frame"`` reads the raw 40 Hz taxel readings and gives them as analog input
    currents ``[N, T, 12]`` (see below).

    ``path`` is an event file or a directory holding ``data_braille_letters_th{threshold}``
    (with or without ``_`` before the number and ``.pkl`` after it). Without ``path`` the
    file is looked up in ``cache_dir()/braille``, extracted from ``reading_braille_data.zip``
    there, or (with ``download=True``) downloaded from Zenodo first.

    ``threshold``: 1, 2, 5 or 10. ``letters``: ``"reduced"`` (Space, A, E, I, O, U, Y),
    ``"full"`` (Space, A..Z) or a list; labels follow that order. ``bin_size`` and ``window``
    are in seconds; ``T = round(window / bin_size)`` (defaults: 5 ms, 1.35 s, so 270 steps;
    ``window=1.28`` gives the NIR recipe's 256). ``channels``: ``"split"`` (default, 24: ON of
    taxels 0..11 then OFF) or ``"merged"`` (12, ON | OFF). ``clip=True`` gives 0/1 spikes per
    bin, ``False`` keeps counts. ``binning``: ``"floor"`` (default; an event at ``t`` in bin
    ``floor(t / bin_size)``) or ``"nearest"`` (``round(t / bin_size)``, as the archive's
    published loaders bin). Bad options raise ``ConfigError``; a missing, refused or corrupt
    file raises ``DataError``.

    ``preset``: a named encoding of :data:`BRAILLE_PRESETS` that fills the options not given
    (an option left as ``None`` takes the preset's value, else the default above).
    ``preset="nir"`` is threshold 1, reduced letters, merged 0/1 channels, 5 ms bins, 1.28 s,
    nearest bins: ``[N, 256, 12]``, the encoding of ``load_braille_pool`` files.

    ``kind="frame"``: ``path`` is the frame table (a pickled pandas table, or a list of
    dicts, with ``letter`` and ``taxel_data`` = ``[T, 12]`` readings per sample) or a
    directory holding ``data_braille_letters_raw`` (``.pkl`` optional); without ``path`` it
    is looked up and extracted like the event files, though its name in the archive is not
    confirmed. Step ``j`` is the recording at ``j * bin_size`` seconds, linearly
    interpolated between readings, the last reading held after the end. Reading times come
    from the table's timestamps column (``timestamps=True``: the one column whose name holds
    ``timestamp``, else ``time``; none found: reading ``k`` at ``k / rate``), from the column
    named by ``timestamps="name"``, or with ``timestamps=False`` from ``k / rate``; times
    are in seconds (datetime64 converted) and must step by about ``1 / rate``. ``rate``:
    readings per second (40). ``scale``: a fixed gain on the readings (1.0, fit on no
    data, so nothing leaks from test samples; standardise with training statistics
    yourself). ``threshold``, ``channels``, ``clip``, ``binning`` and ``preset`` apply only to
    events, ``rate``, ``timestamps`` and ``scale`` only to frames: giving one to the other
    kind is a ``ConfigError``.
    """
    encoding = {
        "threshold": threshold,
        "letters": letters,
        "bin_size": bin_size,
        "window": window,
        "channels": channels,
        "clip": clip,
        "binning": binning,
        "rate": rate,
        "timestamps": timestamps,
        "scale": scale,
    }
    return BrailleLoader(
        path=path,
        kind=kind,
        preset=preset,
        download=download,
        progress=progress,
        **{key: value for key, value in encoding.items() if value is not None},
    ).load()


def braille_frames_from_array(
    frames: np.ndarray | torch.Tensor,
    labels: Sequence[str] | Sequence[int] | np.ndarray | torch.Tensor,
    *,
    rate: float = BRAILLE_FRAME_RATE,
    bin_size: float = 0.005,
    window: float = 1.35,
    letters: Literal["reduced", "full"] | Sequence[str] = "reduced",
    scale: float = 1.0,
) -> Dataset:
    """Braille readings you already hold, ``[N, T, 12]``, as a ``load_braille(kind="frame")``
    dataset: float32 inputs ``[N, round(window / bin_size), 12]``, int64 labels.

    ``frames``: a NumPy array or torch tensor of N samples of T readings of the 12 taxels,
    reading ``k`` taken at ``k / rate`` seconds (``rate`` in Hz, 40 for the dataset).
    Resampled as ``load_braille(kind="frame")`` does: step ``j`` is the recording at
    ``j * bin_size`` seconds, linearly interpolated, the last reading held after the end;
    then multiplied by the fixed gain ``scale``. ``bin_size`` and ``window`` in seconds.

    ``labels``: one per sample, either letter names (``"Space"``, ``"A"`` .. ``"Z"``, as in
    the data files; samples of letters outside ``letters`` are left out, as the loaders do)
    or class indices into the classes of ``letters`` (``0..6`` = Space, A, E, I, O, U, Y for
    ``"reduced"``; every sample kept). Either way every class must occur. Bad options raise
    ``ConfigError``; bad frames or labels raise ``DataError`` naming the entry and the rule.
    """
    opts = validate_options(BrailleOptions, {
        "kind": "frame", "rate": rate, "bin_size": bin_size, "window": window,
        "letters": letters, "scale": scale,
    })
    readings = frames_array(frames)
    n = readings.shape[0]
    given = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    values = np.asarray(given)
    if values.shape != (n,):
        raise DataError(
            f"labels: must be one per sample of frames, shape ({n},), got {values.shape}"
        )
    classes = opts.classes
    if values.dtype.kind in "iu":
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= len(classes):
            bad = low if low < 0 else high
            raise DataError(
                f"labels: class index {bad} is outside 0..{len(classes) - 1}, the classes "
                f"{', '.join(classes)} of letters={opts.letters!r}"
            )
        named = [classes[int(k)] for k in values]
    elif values.dtype.kind in "UO":
        named = check_letters(list(values), BRAILLE_LETTERS, "labels[{i}]", "")
    else:
        raise DataError(
            f"labels: must be letter names or integer class indices, got dtype {values.dtype}"
        )
    chosen, label_tensor = _select(named, classes, "labels")
    times = np.arange(readings.shape[1]) / opts.rate
    return _frame_dataset(readings[chosen], times, label_tensor, opts)


def _load_tensor_dataset(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import warnings

    from torch.utils.data import TensorDataset

    try:
        with warnings.catch_warnings():  # torch's note on a file's pickle protocol: the
            # error below says what matters
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            if hasattr(torch.serialization, "safe_globals"):
                with torch.serialization.safe_globals([TensorDataset]):
                    obj = torch.load(path, weights_only=True, map_location="cpu")
            else:  # torch < 2.5
                torch.serialization.add_safe_globals([TensorDataset])
                obj = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except Exception as exc:
        asked = refused_global(exc)
        why = f"it asks to build {asked}" if asked else f"{type(exc).__name__}: {finding(exc)}"
        raise DataError(
            f"{path}: refused or unreadable (only a TensorDataset of tensors is accepted): {why}"
        ) from None
    if not isinstance(obj, TensorDataset):
        raise DataError(f"{path}: expected a TensorDataset of (inputs, labels), got "
                        f"{type(obj).__name__}")
    if len(obj.tensors) != 2:
        raise DataError(f"{path}: expected a TensorDataset of 2 tensors (inputs, labels), got "
                        f"{len(obj.tensors)}")
    inputs, labels = obj.tensors
    if inputs.layout != torch.strided:  # sparse spikes: the same values
        inputs = inputs.to_dense()
    if labels.layout != torch.strided:
        labels = labels.to_dense()
    if inputs.ndim != 3:
        raise DataError(f"{path}: inputs must be [N, T, C], got {tuple(inputs.shape)}")
    if inputs.is_complex():
        raise DataError(f"{path}: inputs must be real spike counts, got {inputs.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{path}: labels must be one integer per sample ([N]), got shape "
                        f"{tuple(labels.shape)}")
    if labels.dtype == torch.bool:  # True/False would pass for classes 1 and 0
        raise DataError(f"{path}: labels must be integer class indices, got torch.bool")
    if labels.is_complex() or (labels.is_floating_point()
                               and bool((labels != labels.round()).any())):
        odd = labels[labels != labels.round()][:1].tolist() if not labels.is_complex() else []
        raise DataError(f"{path}: labels must be one integer per sample, got {labels.dtype}"
                        + (f" values such as {odd[0]!r}" if odd else ""))
    return inputs.to(torch.float32), labels.to(torch.int64)


def load_nir_braille(
    directory: Path | str, splits: Sequence[str] = ("train", "val", "test")
) -> dict[str, Dataset]:
    """The NIR paper's preprocessed reduced split: ``ds_{train,val,test}.pt`` in ``directory``.

    Each file is a pickled ``TensorDataset`` of ``[N, 256, 12]`` float inputs (threshold 1,
    5 ms bins, ON | OFF) and integer labels; it is read with ``torch.load(weights_only=True)``
    allowing ``TensorDataset`` and nothing else. Class names are taken to be the reduced
    letters in their usual order (Space, A, E, I, O, U, Y).
    """
    directory = Path(directory)
    out: dict[str, Dataset] = {}
    for split in splits:
        inputs, labels = _load_tensor_dataset(directory / f"ds_{split}.pt")
        info = DatasetInfo(
            name=f"braille_nir_{split}",
            classes=BRAILLE_REDUCED_LETTERS,
            n_inputs=int(inputs.shape[2]),
            n_steps=int(inputs.shape[1]),
            dt=NIR_BIN_SIZE,
        )
        out[split] = Dataset(info, inputs, labels)
    return out


def load_braille_pool(path: Path | str) -> Dataset:
    """One ``TensorDataset`` file of the reduced Braille letters in the ``"nir"`` encoding.

    ``path`` is the file (such as ``braille_reduced_th1_pool.pt``) or a directory holding
    ``braille_reduced_th1_pool.pt``. The file holds inputs ``[N, T, 12]`` (one channel per
    taxel, ON | OFF; 0/1 spikes or non-negative event counts per 5 ms bin) and labels ``[N]``
    in ``0..6`` = Space, A, E, I, O, U, Y. It is read with ``torch.load(weights_only=True)``
    allowing ``TensorDataset`` and nothing else. ``load_braille(path, preset="nir")`` gives
    the same form from an event file of the Zenodo archive. A file that breaks a rule raises
    ``DataError`` naming the file, the rule and what was found.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / _POOL_FILE
    inputs, labels = _load_tensor_dataset(path)
    n, t, c = inputs.shape
    classes = BRAILLE_REDUCED_LETTERS
    if n == 0 or t == 0:
        raise DataError(f"{path}: inputs must hold samples and time steps, got {(n, t, c)}")
    if c != _POOL_CHANNELS:
        raise DataError(
            f"{path}: inputs must be [N, T, {_POOL_CHANNELS}] (one channel per taxel, ON | OFF "
            f"merged), got [N, T, C] = {(n, t, c)}"
        )
    if labels.shape != (n,):
        raise DataError(f"{path}: labels must be [N] with N={n}, got {tuple(labels.shape)}")
    if not bool(torch.isfinite(inputs).all()):
        raise DataError(f"{path}: inputs hold NaN or infinite values")
    bad = (inputs < 0) | (inputs != inputs.round())
    if bool(bad.any()):
        value = float(inputs[bad][0])
        raise DataError(
            f"{path}: inputs must be 0/1 spikes or non-negative event counts, found {value!r}"
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= len(classes):
        raise DataError(
            f"{path}: labels must lie in 0..{len(classes) - 1} ({', '.join(classes)}), "
            f"found {low}..{high}"
        )
    info = DatasetInfo(
        name=path.stem, classes=classes, n_inputs=c, n_steps=t, dt=NIR_BIN_SIZE
    )
    return Dataset(info, inputs, labels)

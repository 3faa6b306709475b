"""The WISDM loader on raw files generated in the published layout: parsing, alignment,
windows, subject split, normalisation, events, malformed lines, missing files, and the
download, cache and unwrapping of the archive from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import inspect
import io
import re
import threading
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

import spiketune.data._wisdm as wisdm
from spiketune.data._download import CACHE_ENV, RemoteFile
from spiketune.data._encoding import bin_events, sigma_delta_encode
from spiketune.data._wisdm import (
    WISDM_ACTIVITIES,
    WISDM_HAND_ACTIVITIES,
    WisdmData,
    WisdmLoader,
    WisdmOptions,
    load_wisdm,
    read_wisdm_file,
)
from spiketune.errors import ConfigError, DataError

SUBJECTS = (1600, 1601, 1602, 1603)
CODES = ("A", *WISDM_HAND_ACTIVITIES)  # walking too, which the hand task must leave out
N = 100  # accelerometer samples per subject and activity
LAG = 2  # the gyroscope starts this many samples after the accelerometer
PAIRED = N - LAG  # samples both sensors recorded
T0 = 90_426_708_196_641  # ns, a device clock like those of the real files
PERIOD = 50_000_000  # ns
GYRO_OFFSET = 7_000_000  # ns: the gyroscope ticks 7 ms after the accelerometer
RATIOS = (0.5, 0.25, 0.25)  # 4 subjects: 2 train, 1 val, 1 test
HAND_NAMES = tuple(WISDM_ACTIVITIES[c] for c in WISDM_HAND_ACTIVITIES)


def jitter(i: int) -> int:
    """A fixed -3..3 ms wobble of the sampling clock."""
    return ((i * 7919) % 7 - 3) * 1_000_000


def file_text(
    subject: int,
    sensor: str,
    device: str = "watch",
    *,
    lengths: Mapping[str, int] | None = None,
    skip: range | tuple[int, ...] = (),
    scale: float = 1.0,
    tick: int = 1,
) -> str:
    """One raw file. Sample ``i`` (time index) of an activity: accelerometer ``x = i``,
    ``y`` = the code's place in the alphabet, ``z`` = a subject offset; gyroscope (times
    ``LAG..``, 7 ms late) ``x = i + 1000``, ``y = -place``. Phone files add 500 to ``x``.
    ``skip`` drops time indices, ``tick`` divides the timestamps (1e6: milliseconds)."""
    lines = []
    for a, code in enumerate(CODES):
        start = T0 + a * 10**12  # each activity its own stretch of time
        place = ord(code) - ord("A")
        n = (lengths or {}).get(code, N)
        first = 0 if sensor == "accel" else LAG
        for i in range(first, first + n):
            if i in skip:
                continue
            if sensor == "accel":
                t = start + i * PERIOD + jitter(i)
                x, y, z = i, place, (subject - 1600) + 0.01 * i
            else:
                t = start + i * PERIOD + GYRO_OFFSET + jitter(i + 3)
                x, y, z = i + 1000, -place, 0.5 * (subject - 1600) - 0.02 * i
            x += 500 if device == "phone" else 0
            lines.append(f"{subject},{code},{t // tick},{x * scale:.6f},{y * scale:.6f},"
                         f"{z * scale:.6f};")
    return "\n".join(lines) + "\n"


def member(subject: int, sensor: str, device: str = "watch") -> str:
    return f"raw/{device}/{sensor}/data_{subject}_{sensor}_{device}.txt"


def raw_files(subjects: tuple[int, ...] = SUBJECTS) -> dict[str, str]:
    """Every raw file of ``subjects``, by path below ``wisdm-dataset/``."""
    return {
        member(s, sensor, device): file_text(s, sensor, device)
        for device in ("watch", "phone")
        for sensor in ("accel", "gyro")
        for s in subjects
    }


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """``root/wisdm-dataset/raw/...`` as extracted from the archive; returns ``root``."""
    for name, text in files.items():
        path = root / "wisdm-dataset" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return root


def zip_bytes(members: Mapping[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``members`` with a fixed date, so that the same members give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2019, 9, 1, 0, 0, 0)), data, method)
    return buffer.getvalue()


def inner_zip(files: Mapping[str, str]) -> bytes:
    """``wisdm-dataset.zip`` with the extras of the real one (docs, .DS_Store, macOS forks)."""
    extras: dict[str, str | bytes] = {
        "wisdm-dataset/README.txt": "WISDM raw data\n",
        "wisdm-dataset/activity_key.txt": "walking = A\n",
        "wisdm-dataset/raw/watch/accel/.DS_Store": b"\0\0",
        "__MACOSX/wisdm-dataset/raw/watch/accel/._data_1600_accel_watch.txt": b"x",
    }
    return zip_bytes(extras | {f"wisdm-dataset/{name}": text for name, text in files.items()})


def outer_zip(files: Mapping[str, str]) -> bytes:
    """The UCI download: the description PDF and ``wisdm-dataset.zip``."""
    return zip_bytes({"WISDM-dataset-description.pdf": b"%PDF-1.4 description",
                      "wisdm-dataset.zip": inner_zip(files)}, zipfile.ZIP_STORED)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "data", raw_files())


def load(path: Path | None, **options: object) -> WisdmData:
    settings: dict[str, object] = {"ratios": RATIOS, "progress": False} | options
    return load_wisdm(path, **settings)  # type: ignore[arg-type]


def raw_values(data: WisdmData, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """The analog values before standardisation, in float64."""
    x = data.dataset.inputs if inputs is None else inputs
    return x.double() * torch.tensor(data.std) + torch.tensor(data.mean)


# ----------------------------------------------------------------- shapes, labels, windows
def test_defaults_give_the_hand_task_as_frames(tree: Path) -> None:
    data = load(tree)
    ds = data.dataset
    per_recording = PAIRED // 40  # non-overlapping 2 s windows
    assert ds.inputs.shape == (len(SUBJECTS) * 7 * per_recording, 40, 6)
    assert ds.inputs.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert (ds.n_steps, ds.dt, ds.n_inputs) == (40, 0.05, 6)
    assert ds.classes == HAND_NAMES
    assert ds.classes[0] == "typing" and ds.classes[-1] == "folding clothes"
    assert ds.name == "wisdm_watch_accel+gyro_hand_frame"
    assert data.channels == ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")
    assert ds.class_counts() == {name: len(SUBJECTS) * per_recording for name in HAND_NAMES}
    # accel_y holds the code's place in the alphabet: each window carries its own label
    place = raw_values(data)[:, :, 1].round()
    codes = [WISDM_HAND_ACTIVITIES[label] for label in ds.labels.tolist()]
    expected = torch.tensor([ord(code) - ord("A") for code in codes], dtype=place.dtype)
    assert torch.equal(place, expected[:, None].expand_as(place))
    assert data.notes == ()


def test_accel_and_gyro_are_paired_by_nearest_timestamp_and_only_the_overlap_is_kept(
    tree: Path,
) -> None:
    raw = raw_values(load(tree))
    # gyro sample i (x = i + 1000) sits 1..13 ms from accel sample i (x = i): nearest wins
    assert torch.allclose(raw[:, :, 3] - raw[:, :, 0], torch.full_like(raw[:, :, 0], 1000.0),
                          atol=1e-3)
    assert torch.allclose(raw[:, :, 4], -raw[:, :, 1], atol=1e-4)
    # the accelerometer alone records times 0..LAG-1: they are dropped, windows start at LAG
    starts = sorted(set(raw[:, 0, 0].round().tolist()))
    assert starts == [LAG, LAG + 40]
    assert torch.allclose(raw[:, 1:, 0] - raw[:, :-1, 0], torch.ones(()).double(), atol=1e-3)


def test_the_alignment_rule_nearest_within_half_a_period_each_partner_once() -> None:
    ms = 1_000_000
    accel_ms = np.array([0, 50, 100, 150, 200, 300, 500, 515])
    gyro_ms = np.array([10, 80, 190, 330, 510, 900])
    accel = (accel_ms * ms, np.arange(8.0)[:, None].repeat(3, 1))
    gyro = (gyro_ms * ms, 10 + np.arange(6.0)[:, None].repeat(3, 1))
    stamps, values = wisdm._align([accel, gyro])
    # kept: 0<->10, 100<->80 (closer to 80 than 50 is), 200<->190 (closer than 150), and
    # 515<->510 (5 ms, closer than 500's 10 ms: a partner is used once); 300 is nearest to
    # 330, unclaimed but 30 ms away (over half a period); 900 has no partner
    assert (stamps // ms).tolist() == [0, 100, 200, 515]
    assert values[:, 0].tolist() == [0.0, 2.0, 4.0, 7.0]
    assert values[:, 3].tolist() == [10.0, 11.0, 12.0, 14.0]
    assert values.shape == (4, 6)


def test_overlap_and_window_length_set_the_windows(tree: Path) -> None:
    half = load(tree, overlap=0.5)
    starts = sorted(set(raw_values(half)[:, 0, 0].round().tolist()))
    assert starts == [LAG, LAG + 20, LAG + 40]  # (PAIRED - 40) // 20 + 1 = 3 per recording
    assert len(half.dataset) == len(SUBJECTS) * 7 * 3
    short = load(tree, window=1.0, overlap=0.25)
    assert short.dataset.n_steps == 20
    starts = sorted(set(raw_values(short)[:, 0, 0].round().tolist()))
    assert starts == [LAG + 15 * k for k in range((PAIRED - 20) // 15 + 1)]


def test_a_window_never_spans_a_gap_in_the_recording(tmp_path: Path) -> None:
    files = raw_files()
    files[member(1600, "accel")] = file_text(1600, "accel", skip=range(45, 50))
    data = load(write_tree(tmp_path, files))
    raw = raw_values(data)
    mine = torch.from_numpy(data.window_subjects == 1600)
    assert sorted(set(raw[mine, 0, 0].round().tolist())) == [LAG, 50]  # runs 2..44, 50..99
    assert torch.allclose(raw[:, 1:, 0] - raw[:, :-1, 0], torch.ones(()).double(), atol=1e-3)


def test_records_out_of_order_or_repeated_are_sorted_and_kept_once(
    tmp_path: Path, tree: Path
) -> None:
    files = raw_files()
    lines = files[member(1600, "accel")].splitlines()
    lines = lines[::-1] + lines[140:160]  # reversed, and twenty records twice
    files[member(1600, "accel")] = "\n".join(lines) + "\n"
    data = load(write_tree(tmp_path, files))
    assert torch.equal(data.dataset.inputs, load(tree).dataset.inputs)


def test_a_list_of_activities_sets_the_classes_and_their_order(tree: Path) -> None:
    data = load(tree, activities=["S", "a"])
    assert data.dataset.classes == ("folding clothes", "walking")
    place = raw_values(data)[:, 0, 1].round()
    assert torch.equal(place[data.dataset.labels == 0], torch.full((8,), 18.0).double())
    assert torch.equal(place[data.dataset.labels == 1], torch.zeros(8).double())
    assert data.dataset.name == "wisdm_watch_accel+gyro_custom_frame"


def test_the_phone_accelerometer_alone(tree: Path) -> None:
    data = load(tree, device="phone", sensors="accel")
    raw = raw_values(data)
    assert data.dataset.inputs.shape[1:] == (40, 3)
    assert data.channels == ("accel_x", "accel_y", "accel_z")
    assert sorted(set(raw[:, 0, 0].round().tolist())) == [500, 540]  # no gyro to align with


# ---------------------------------------------------------------- split and normalisation
def test_subject_split_keeps_every_subject_in_one_part(tree: Path) -> None:
    data = load(tree)
    split = data.split
    parts = [set(data.window_subjects[p].tolist()) for p in (split.train, split.val, split.test)]
    assert [len(p) for p in parts] == [2, 1, 1]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(SUBJECTS)
    assert parts == [set(data.train_subjects), set(data.val_subjects), set(data.test_subjects)]
    everything = np.sort(np.concatenate([split.train, split.val, split.test]))
    assert np.array_equal(everything, np.arange(len(data.dataset)))
    assert torch.equal(data.train.labels, data.dataset.labels[torch.from_numpy(split.train.copy())])
    assert len(data.test) == len(split.test) > 0
    again = load(tree)
    assert again.split_digest == data.split_digest == split.digest()
    assert len({load(tree, seed=s).test_subjects for s in range(6)}) > 1


def test_stratified_split_keeps_class_proportions(tree: Path) -> None:
    data = load(tree, split="stratified")
    per_class = len(SUBJECTS) * 2
    assert data.test.class_counts() == {name: round(per_class * 0.25) for name in HAND_NAMES}
    assert data.train.class_counts() == {name: per_class // 2 for name in HAND_NAMES}


def test_too_few_subjects_for_the_ratios_is_an_error(tree: Path) -> None:
    with pytest.raises(DataError, match=r"4 subject\(s\) are too few .*: the val, test part"):
        load(tree, ratios=(0.8, 0.1, 0.1))  # 4 * 0.1 rounds to no subject
    with pytest.raises(DataError, match=r"2 subject\(s\) are too few .*: the train part"):
        load(tree, subjects=[1600, 1601])  # one to val, one to test


def test_normalisation_is_fitted_on_the_training_windows_only(tmp_path: Path) -> None:
    data = load(write_tree(tmp_path / "a", raw_files()))
    flat = data.train.inputs.reshape(-1, 6).double()
    assert torch.allclose(flat.mean(0), torch.zeros(6).double(), atol=1e-4)
    assert torch.allclose(flat.std(0, unbiased=False), torch.ones(6).double(), atol=1e-4)
    # the same statistics scale the held-out parts, which are not standardised by them
    held_out = data.test.inputs.reshape(-1, 6).double()
    assert not torch.allclose(held_out.mean(0), torch.zeros(6).double(), atol=1e-2)
    # blowing up the held-out subjects' data leaves the statistics and the training inputs be
    files = raw_files()
    for s in data.val_subjects + data.test_subjects:
        for sensor in ("accel", "gyro"):
            files[member(s, sensor)] = file_text(s, sensor, scale=100.0)
    scaled = load(write_tree(tmp_path / "b", files))
    assert scaled.split_digest == data.split_digest
    assert scaled.mean == data.mean and scaled.std == data.std
    assert torch.equal(scaled.train.inputs, data.train.inputs)
    assert not torch.allclose(scaled.test.inputs, data.test.inputs)


# --------------------------------------------------------------------------------- events
def test_events_are_the_sigma_delta_encoding_of_the_standardised_frames(tree: Path) -> None:
    frames = load(tree)
    events = load(tree, kind="events", threshold=0.5)
    x = events.dataset.inputs
    assert x.shape == (len(frames.dataset), 40, 12)
    assert events.dataset.n_inputs == 12 and events.dataset.dt == 0.05
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert events.dataset.name == "wisdm_watch_accel+gyro_hand_events_th0.5"
    assert events.split_digest == frames.split_digest and events.mean == frames.mean
    assert torch.equal(events.dataset.labels, frames.dataset.labels)
    windows = frames.dataset.inputs[:6].double().numpy()
    expected = bin_events([sigma_delta_encode(w, 0.5, rate=20.0) for w in windows],
                          bin_size=0.05, n_steps=40, channels="split", clip=True)
    assert torch.equal(x[:6], expected)
    coarse = load(tree, kind="events", threshold=1.0).dataset.inputs
    assert 0 < coarse.sum() < x.sum()
    # accel_x climbs about 0.035 standard deviations a step: several events at 0.01
    fine = load(tree, kind="events", threshold=0.01).dataset.inputs
    counts = load(tree, kind="events", threshold=0.01, clip=False).dataset.inputs
    assert counts.max() > 1 and torch.equal(counts.clamp(max=1), fine)


def test_event_options_with_frames_are_refused(tree: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tree, threshold=0.5)
    assert info.value.problems[0].field == "threshold"
    assert "kind='events'" in info.value.problems[0].rule


# --------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("options", "field", "rule"),
    [
        ({"device": "tablet"}, "device", "must be one of"),
        ({"sensors": "magnet"}, "sensors", "unknown sensor 'magnet'"),
        ({"sensors": ["accel", "accel"]}, "sensors", "twice"),
        ({"activities": ["N"]}, "activities", "unknown activity 'N'"),
        ({"activities": ["F", "f"]}, "activities", "listed twice"),
        ({"activities": "hands"}, "activities", "must be 'hand', 'all' or a list"),
        ({"window": 0.01}, "window", "must be >= 0.05"),
        ({"overlap": 1.0}, "overlap", "must be < 1"),
        ({"overlap": -0.1}, "overlap", "must be >= 0"),
        ({"ratios": (0.5, 0.5, 0.5)}, "ratios", "summing to 1"),
        ({"subjects": [1599]}, "subjects", "not an id in 1600..1650"),
        ({"seed": True}, "seed", "non-negative integer"),
        ({"seed": -1}, "seed", "must be >= 0"),
        ({"split": "random"}, "split", "must be one of"),
        ({"kind": "spikes"}, "kind", "must be one of"),
        ({"missing": "ignore"}, "missing", "must be one of"),
        ({"kind": "events", "threshold": 0}, "threshold", "must be > 0"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_bad_options_name_the_field_the_value_and_the_rule(
    options: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as info:
        WisdmLoader(**options)
    problem = info.value.problems[0]
    assert problem.field == field
    assert rule in problem.rule
    assert problem.value == next(iter(options.values())) or field == "threshold"


def test_load_wisdm_defaults_are_the_options_defaults() -> None:
    parameters = inspect.signature(load_wisdm).parameters
    assert set(parameters) == set(WisdmOptions.model_fields)
    given = {n: p.default for n, p in parameters.items() if p.default is not None}
    assert WisdmOptions(**given) == WisdmOptions()
    opts = WisdmOptions()
    assert (opts.codes, opts.n_steps, opts.step, opts.sensors) == (
        WISDM_HAND_ACTIVITIES, 40, 40, ("accel", "gyro"))


# ------------------------------------------------------------------------ malformed files
@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("1601,A,123,1.0,2.0,3.0", "must end with ';'"),
        ("1601,A,123,1.0,2.0;", "has 5 fields, expected 6"),
        ("1601,A,123,1.0,2.0,3.0,4.0;", "has 7 fields, expected 6"),
        ("1601,A,123,abc,2.0,3.0;", "x is not a number"),
        ("1601,A,123,1.0,,3.0;", "y is not a number"),
        ("1601,A,123,1.0,2.0,inf;", "z is not a finite number"),
        ("1601,A,12.5,1.0,2.0,3.0;", "the timestamp is not an integer"),
        ("1601,A,99999999999999999999,1.0,2.0,3.0;", "the timestamp is not an integer (64-bit)"),
        ("16o1,A,123,1.0,2.0,3.0;", "the subject is not an integer"),
        ("1601,N,123,1.0,2.0,3.0;", "unknown activity code 'N'"),
        ("1601,AB,123,1.0,2.0,3.0;", "unknown activity code 'AB'"),
        ("1602,A,123,1.0,2.0,3.0;", "subject 1602 in the file of subject 1601"),
    ],
)
def test_a_malformed_line_names_the_file_and_the_line(
    tmp_path: Path, line: str, rule: str
) -> None:
    files = raw_files()
    lines = files[member(1601, "gyro")].splitlines()
    lines[4] = line  # line 5, an activity (walking) the hand task does not even use
    files[member(1601, "gyro")] = "\n".join(lines) + "\n"
    with pytest.raises(DataError) as info:
        load(write_tree(tmp_path, files))
    message = str(info.value)
    assert "data_1601_gyro_watch.txt, line 5: " in message
    assert rule in message and repr(line) in message


def test_a_malformed_line_inside_the_archive_names_the_member(tmp_path: Path) -> None:
    files = raw_files()
    lines = files[member(1600, "accel")].splitlines()
    lines[149] = lines[149].rstrip(";")  # line 150: typing, a used activity
    files[member(1600, "accel")] = "\n".join(lines) + "\n"
    archive = tmp_path / "wisdm-dataset.zip"
    archive.write_bytes(inner_zip(files))
    with pytest.raises(DataError, match=r"wisdm-dataset/raw/watch/accel/data_1600_accel_watch"
                                        r"\.txt, line 150: a record must end with ';'"):
        load(archive)


def test_bytes_that_are_not_text_name_the_line(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = dict(raw_files())
    text = files[member(1602, "accel")]
    assert isinstance(text, str)
    lines = text.encode().split(b"\n")
    lines[6] = b"1602,A,\xff\xfe,1,2,3;"
    files[member(1602, "accel")] = b"\n".join(lines)
    with pytest.raises(DataError, match=r"data_1602_accel_watch\.txt, line 7: not UTF-8"):
        load(write_tree(tmp_path, files))


def test_crlf_line_ends_and_blank_lines_are_read_alike(tmp_path: Path, tree: Path) -> None:
    files = raw_files()
    text = files[member(1603, "gyro")]
    files[member(1603, "gyro")] = "\r\n".join(text.splitlines()[:50]) + "\r\n\r\n  \n" \
        + "\n".join(text.splitlines()[50:]) + "\n\n"
    other = load(write_tree(tmp_path / "crlf", files))
    assert torch.equal(other.dataset.inputs, load(tree).dataset.inputs)


def test_the_fast_and_the_careful_reader_agree(tree: Path) -> None:
    text = file_text(1601, "gyro")
    fast = wisdm._parse_fast(text, 1601)
    careful = wisdm._parse_lines(text, "data_1601_gyro_watch.txt", 1601)
    assert fast is not None and fast.subject == careful.subject == 1601
    for name in ("activities", "timestamps", "values"):
        assert np.array_equal(getattr(fast, name), getattr(careful, name)), name
    # blanks inside records are not for the fast reader, but the careful one accepts them
    spaced = text.replace(",", ", ")
    assert wisdm._parse_fast(spaced, 1601) is None
    records = wisdm._parse(spaced.encode(), "spaced", 1601)
    assert np.array_equal(records.values, careful.values)


def test_read_wisdm_file_returns_the_records(tree: Path) -> None:
    records = read_wisdm_file(tree / "wisdm-dataset" / member(1602, "gyro"))
    assert records.subject == 1602
    assert records.timestamps.dtype == np.int64 and records.values.shape == (len(CODES) * N, 3)
    assert records.activities[0] == "A" and records.activities[-1] == "S"
    assert records.timestamps[0] == T0 + LAG * PERIOD + GYRO_OFFSET + jitter(LAG + 3)
    assert records.values[0].tolist() == [LAG + 1000, 0.0, 1.0 - 0.02 * LAG]


# ------------------------------------------------------------------ missing or odd data
def test_a_missing_sensor_file_is_an_error_naming_the_subject_and_the_file(tree: Path) -> None:
    (tree / "wisdm-dataset" / member(1602, "gyro")).unlink()
    with pytest.raises(DataError) as info:
        load(tree)
    message = str(info.value)
    assert "subject 1602: no gyro file raw/watch/gyro/data_1602_gyro_watch.txt" in message
    assert "missing='warn'" in message
    assert len(load(tree, sensors="accel").dataset) == len(SUBJECTS) * 7 * 2  # gyro not asked


def test_an_asked_subject_without_files_is_an_error(tree: Path) -> None:
    with pytest.raises(DataError, match=r"subject 1650: no accel file .*subject 1650: no gyro"):
        load(tree, subjects=[1600, 1601, 1650])


def test_missing_warn_leaves_the_subject_out_and_says_so(tree: Path) -> None:
    (tree / "wisdm-dataset" / member(1602, "gyro")).unlink()
    with pytest.warns(UserWarning, match="subject 1602: no gyro file"):
        data = load(tree, missing="warn")
    assert 1602 not in data.window_subjects
    assert set(data.window_subjects.tolist()) == {1600, 1601, 1603}
    assert data.notes == (
        "subject 1602: no gyro file raw/watch/gyro/data_1602_gyro_watch.txt (subject left out)",
    )


def test_a_recording_too_short_for_a_window_is_listed(tmp_path: Path) -> None:
    files = raw_files()
    for sensor in ("accel", "gyro"):
        files[member(1601, sensor)] = file_text(1601, sensor, lengths={"F": 30})
    with pytest.warns(UserWarning, match=r"subject 1601, activity F \(typing\): no window"):
        data = load(write_tree(tmp_path / "one", files))
    assert data.notes == ("subject 1601, activity F (typing): no window (28 aligned samples, "
                          "a window takes 40)",)
    assert data.dataset.class_counts()["typing"] == 3 * 2
    for s in SUBJECTS:
        for sensor in ("accel", "gyro"):
            files[member(s, sensor)] = file_text(s, sensor, lengths={"F": 30})
    with pytest.raises(DataError, match=r"no window of activity F \(typing\)"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load(write_tree(tmp_path / "all", files))


def test_timestamps_in_another_unit_are_listed(tmp_path: Path) -> None:
    files = raw_files()
    for sensor in ("accel", "gyro"):
        files[member(1603, sensor)] = file_text(1603, sensor, tick=1_000_000)  # milliseconds
    with pytest.warns(UserWarning, match="median sampling interval"):
        data = load(write_tree(tmp_path, files))
    assert len(data.notes) == 2 * 7  # both sensors, every activity, of subject 1603 only
    assert data.notes[0].startswith("subject 1603, activity F, accel: median sampling interval")
    assert "e-05 ms, expected 50 ms" in data.notes[0]


# ------------------------------------------------------------- archives, cache, download
def test_a_zip_or_a_directory_gives_the_same_data(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    expected = load(tree)
    inner = tmp_path / "wisdm-dataset.zip"
    inner.write_bytes(inner_zip(raw_files()))
    outer = tmp_path / "uci" / wisdm.WISDM_ARCHIVE.filename
    outer.parent.mkdir()
    outer.write_bytes(outer_zip(raw_files()))
    for path in (tree / "wisdm-dataset", inner, outer, outer.parent):
        data = load(path)
        assert torch.equal(data.dataset.inputs, expected.dataset.inputs), path
        assert data.split_digest == expected.split_digest
    # the wrapped archive was unwrapped once into the cache
    assert (tmp_path / "cache" / "wisdm" / "wisdm-dataset.zip").read_bytes() == inner.read_bytes()


def test_a_damaged_or_foreign_archive_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="not a readable zip archive"):
        load(bad)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(DataError, match=r"holds neither raw WISDM files nor wisdm-dataset\.zip"):
        load(foreign)
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_the_loader_class_follows_the_base_lifecycle(tree: Path) -> None:
    loader = WisdmLoader(path=tree, ratios=RATIOS, progress=False)
    assert loader.locate() == tree / "wisdm-dataset"
    data = loader.load_parts()
    dataset = loader.load()
    assert torch.equal(dataset.inputs, data.dataset.inputs)
    train, _, test = dataset.split(data.split)
    assert torch.equal(train.inputs, data.train.inputs)
    assert torch.equal(test.labels, data.test.labels)


class _Counting(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "uci.zip").write_bytes(outer_zip(raw_files()))
    (served / "inner.zip").write_bytes(inner_zip(raw_files()))
    _Counting.requests = []
    handler = functools.partial(_Counting, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _serve(monkeypatch: pytest.MonkeyPatch, url: str, cache: Path, size: int | None) -> Path:
    remote = RemoteFile(url=url, filename=wisdm.WISDM_ARCHIVE.filename, md5=None,
                        page="https://example.invalid/wisdm")
    monkeypatch.setattr(wisdm, "WISDM_ARCHIVE", remote)
    monkeypatch.setattr(wisdm, "WISDM_ARCHIVE_SIZE", size)
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache / "wisdm"


def test_the_wrapped_archive_is_downloaded_unwrapped_and_cached(
    server: str, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = outer_zip(raw_files())
    root = _serve(monkeypatch, f"{server}/uci.zip?download=1", tmp_path / "cache", len(outer))
    with pytest.warns(UserWarning, match="unverified"):
        data = load(None)
    assert (root / wisdm.WISDM_ARCHIVE.filename).read_bytes() == outer
    assert (root / "wisdm-dataset.zip").read_bytes() == inner_zip(raw_files())
    assert torch.equal(data.dataset.inputs, load(tree).dataset.inputs)
    asked = len(_Counting.requests)
    assert asked == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no download, no size check, nothing to say
        again = load(None)
    assert len(_Counting.requests) == asked
    assert again.split_digest == data.split_digest


def test_a_bare_inner_archive_is_used_as_downloaded(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _serve(monkeypatch, f"{server}/inner.zip", tmp_path / "cache", None)
    with pytest.warns(UserWarning, match="unverified"):
        data = load(None)
    assert (root / wisdm.WISDM_ARCHIVE.filename).read_bytes() == inner_zip(raw_files())
    assert not (root / "wisdm-dataset.zip").exists()  # nothing to unwrap
    assert len(data.dataset) == len(SUBJECTS) * 7 * 2


def test_a_download_of_another_size_warns(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(monkeypatch, f"{server}/uci.zip", tmp_path / "cache", 123)
    with pytest.warns(UserWarning) as record:
        load(None)
    messages = [str(w.message) for w in record]
    assert any(re.search(r"received \d+ bytes, but 123 bytes were recorded", m) for m in messages)
    assert any("unverified" in m for m in messages)


def test_no_data_and_no_download_says_where_to_put_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(DataError) as info:
        load(None, download=False)
    message = str(info.value)
    assert str(tmp_path / "wisdm" / wisdm.WISDM_ARCHIVE.filename) in message
    assert "archive.ics.uci.edu/dataset/507" in message
    assert str(tmp_path / "wisdm" / "wisdm-dataset.zip") in message


def test_an_archive_placed_by_hand_in_the_cache_is_used_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    (tmp_path / "wisdm").mkdir()
    (tmp_path / "wisdm" / "wisdm-dataset.zip").write_bytes(inner_zip(raw_files()))
    assert len(load(None, download=False).dataset) == len(SUBJECTS) * 7 * 2


def test_the_published_archive_is_described() -> None:
    archive = wisdm.WISDM_ARCHIVE
    assert archive.url == (
        "https://archive.ics.uci.edu/static/public/507/"
        "wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset.zip"
    )
    assert archive.page == (
        "https://archive.ics.uci.edu/dataset/507/"
        "wisdm+smartphone+and+smartwatch+activity+and+biometrics+dataset"
    )
    # UCI publishes no checksum: it stays unset rather than guessed
    assert archive.md5 is None and wisdm.WISDM_ARCHIVE_MD5 is None
    assert wisdm.WISDM_ARCHIVE_SIZE == 310_292_805
    assert len(WISDM_ACTIVITIES) == 18 and "N" not in WISDM_ACTIVITIES
    assert [WISDM_ACTIVITIES[c] for c in "MOP"] == [
        "kicking (soccer ball)", "playing catch (tennis ball)", "dribbling (basketball)"]

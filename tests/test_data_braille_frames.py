"""Braille frames (``load_braille(kind="frame")``, ``braille_frames_from_array``) on generated
tables in the layout of the dataset's raw file: shapes, the resampling rule by hand, labels
and splits that match the event loader, and refusal of crafted or malformed files."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from spiketune.data import (
    BRAILLE_LETTERS,
    BRAILLE_REDUCED_LETTERS,
    CACHE_ENV,
    braille_frames_from_array,
    load_braille,
    stratified_split,
)
from spiketune.errors import ConfigError, DataError

#: Readings of taxel 3 in the first "A": a peak, so linear interpolation differs from a hold.
KNOWN = [0.0, 8.0, 2.0]
#: Jittered reading times of that sample (seconds, relative): 0, 20 ms, 50 ms.
KNOWN_TIMES = [0.0, 0.02, 0.05]


def make_rows(per_letter: int = 2, letters: tuple[str, ...] = BRAILLE_LETTERS) -> list[dict]:
    """Records in the raw file's layout: letter, taxel_data [T, 12] (8-bit readings, as the
    dataset's scripts treat them), timestamp [T] (absolute seconds, 40 Hz with jitter)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(per_letter):
        for letter in letters:
            n = int(rng.integers(50, 55))
            readings = rng.integers(0, 256, (n, 12)).astype(np.uint8)
            times = 1.65e9 + np.arange(n) * 0.025 + rng.uniform(0, 0.003, n)
            if letter == "A" and i == 0:
                readings = np.zeros((3, 12), dtype=np.uint8)
                readings[:, 3] = KNOWN
                times = 1000.0 + np.array(KNOWN_TIMES)
            rows.append({"letter": letter, "taxel_data": readings, "timestamp": times})
    return rows


@pytest.fixture
def pd() -> Any:
    return pytest.importorskip("pandas")


@pytest.fixture
def table(tmp_path: Path, pd: Any) -> Path:
    path = tmp_path / "data_braille_letters_raw"
    pd.DataFrame(make_rows()).to_pickle(path)
    return path


def first_a(ds: Any) -> torch.Tensor:
    """Inputs of the first "A" (file order is Space, A, ... in each repetition)."""
    return ds.inputs[int((ds.labels == ds.classes.index("A")).nonzero()[0])]


def test_table_gives_analog_frames_in_label_order(table: Path) -> None:
    ds = load_braille(table, kind="frame")
    assert ds.inputs.shape == (14, 270, 12) and ds.inputs.dtype == torch.float32
    assert ds.labels.dtype == torch.int64
    assert (ds.classes, ds.n_inputs, ds.n_steps, ds.dt) == (BRAILLE_REDUCED_LETTERS, 12, 270,
                                                            0.005)
    assert ds.info.name == "braille_frame_reduced"
    assert ds.labels.tolist() == list(range(7)) * 2
    assert float(ds.inputs.max()) > 1.0  # readings are kept as currents, not clipped to spikes
    full = load_braille(table, kind="frame", letters="full", window=0.5, bin_size=0.025)
    assert full.inputs.shape == (54, 20, 12) and full.classes == BRAILLE_LETTERS
    rows = make_rows()
    # At 25 ms bins on the sample's own 40 Hz clock, the readings come back unchanged.
    same = load_braille(table, kind="frame", letters="full", timestamps=False, bin_size=0.025,
                        window=0.5)
    assert torch.equal(same.inputs[0], torch.from_numpy(rows[0]["taxel_data"][:20]).float())


def test_resampling_is_linear_between_readings_and_holds_the_last(table: Path) -> None:
    # Reading k at k / 40 s: at 10 ms steps, t = 0..70 ms is reading 0, 0.4, 0.8, ..., 2.8.
    ds = load_braille(table, kind="frame", letters=["A"], timestamps=False, bin_size=0.01,
                      window=0.08)
    expected = [0.0, 3.2, 6.4, 8 + 0.2 * -6, 8 + 0.6 * -6, 2.0, 2.0, 2.0]
    x = first_a(ds)
    assert x[:, 3].tolist() == pytest.approx(expected, abs=1e-5)  # a hold would give 0, 0, 0, 8
    assert float(x[:, [0, 1, 2, 4]].abs().max()) == 0.0
    halved = load_braille(table, kind="frame", letters=["A"], timestamps=False, bin_size=0.01,
                          window=0.08, scale=0.5)
    assert first_a(halved)[:, 3].tolist() == pytest.approx([v / 2 for v in expected], abs=1e-5)


def test_the_timestamps_column_sets_the_clock(table: Path, pd: Any, tmp_path: Path) -> None:
    # Readings at 0, 20 and 50 ms (absolute times from 1000 s): 10 ms steps give
    # t=10 ms halfway to 8, t=30 and 40 ms one and two thirds of the way from 8 down to 2.
    expected = [0.0, 4.0, 8.0, 6.0, 4.0, 2.0, 2.0]
    ds = load_braille(table, kind="frame", letters=["A"], bin_size=0.01, window=0.07)
    assert first_a(ds)[:, 3].tolist() == pytest.approx(expected, abs=1e-5)
    # Another spelling of the column is found; a name without "time" can be given.
    for name, option in (("Time_s", True), ("stamp", "stamp")):
        frame = pd.DataFrame(make_rows()).rename(columns={"timestamp": name})
        frame.to_pickle(tmp_path / "renamed.pkl")
        again = load_braille(tmp_path / "renamed.pkl", kind="frame", letters=["A"],
                             bin_size=0.01, window=0.07, timestamps=option)
        assert first_a(again)[:, 3].tolist() == pytest.approx(expected, abs=1e-5)
    # datetime64 times are converted to seconds.
    rows = make_rows()
    for row in rows:
        row["timestamp"] = (np.datetime64("2022-05-01T10:00:00", "ns")
                            + (np.asarray(row["timestamp"]) * 1e9).astype("timedelta64[ns]")
                            - np.timedelta64(int(row["timestamp"][0] * 1e9), "ns"))
    pd.DataFrame(rows).to_pickle(tmp_path / "dated.pkl")
    dated = load_braille(tmp_path / "dated.pkl", kind="frame", letters=["A"], bin_size=0.01,
                         window=0.07)
    assert first_a(dated)[:, 3].tolist() == pytest.approx(expected, abs=1e-5)


def test_a_list_of_dicts_reads_as_the_table_does(table: Path, tmp_path: Path) -> None:
    path = tmp_path / "records.pkl"
    path.write_bytes(pickle.dumps(make_rows(), protocol=2))
    from_list = load_braille(path, kind="frame", letters="full")
    from_table = load_braille(table, kind="frame", letters="full")
    assert torch.equal(from_list.inputs, from_table.inputs)
    assert torch.equal(from_list.labels, from_table.labels)


def _event_records(letters: list[str]) -> list[dict]:
    return [{"letter": letter, "events": [[[0.01 * (k + 1)], []] for k in range(12)]}
            for letter in letters]


@pytest.mark.parametrize("letters", ["reduced", "full", ["y", "Space", "A"]])
def test_labels_and_splits_match_the_event_loader(
    tmp_path: Path, pd: Any, letters: Any
) -> None:
    rows = make_rows(4)
    table = tmp_path / "data_braille_letters_raw"
    pd.DataFrame(rows).to_pickle(table)
    events = tmp_path / "data_braille_letters_th10"
    events.write_bytes(pickle.dumps(_event_records([r["letter"] for r in rows])))
    spikes = load_braille(events, letters=letters)
    frames = load_braille(table, kind="frame", letters=letters)
    assert frames.classes == spikes.classes
    assert torch.equal(frames.labels, spikes.labels)
    ratios = (0.5, 0.25, 0.25)
    assert (stratified_split(frames.labels, ratios, seed=1).digest()
            == stratified_split(spikes.labels, ratios, seed=1).digest())


def test_arrays_give_the_same_dataset(table: Path) -> None:
    rows = [r for r in make_rows() if len(r["taxel_data"]) >= 50]  # one length, no known "A"
    frames = np.stack([r["taxel_data"][:50] for r in rows])
    names = [r["letter"] for r in rows]
    ds = braille_frames_from_array(frames, names, bin_size=0.01, window=1.0)
    assert ds.inputs.shape == (13, 100, 12) and ds.classes == BRAILLE_REDUCED_LETTERS
    assert ds.labels.tolist() == [0, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]
    # Reading 1 is at 25 ms: step 2 (20 ms) lies 80 % of the way from reading 0 to it.
    r0, r1 = frames[0, 0].astype(float), frames[0, 1].astype(float)
    assert ds.inputs[0, 2].numpy() == pytest.approx(r0 + 0.8 * (r1 - r0), abs=1e-4)
    reduced = frames[[i for i, name in enumerate(names) if name in BRAILLE_REDUCED_LETTERS]]
    by_index = braille_frames_from_array(torch.from_numpy(reduced), ds.labels, bin_size=0.01,
                                         window=1.0)
    assert torch.equal(by_index.inputs, ds.inputs) and torch.equal(by_index.labels, ds.labels)
    # At rate=20 Hz and 50 ms steps, step j is reading j.
    slow = braille_frames_from_array(reduced, ds.labels.numpy(), rate=20.0, bin_size=0.05,
                                     window=1.0)
    assert slow.inputs[3, 7].tolist() == reduced[3, 7].tolist()


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_table_holding_a_command_is_refused_unrun(tmp_path: Path, pd: Any) -> None:
    marker = tmp_path / "executed"
    rows = make_rows(1)
    rows[1]["taxel_data"] = _RunsCommand(marker)
    path = tmp_path / "evil.pkl"
    pd.DataFrame(rows).to_pickle(path)
    with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system"):
        load_braille(path, kind="frame")
    path.write_bytes(pickle.dumps(rows, protocol=2))
    with pytest.raises(DataError, match="refused"):
        load_braille(path, kind="frame")
    assert not marker.exists()


def _broken(rows: list[dict], change: str) -> Any:
    row = rows[5]
    if change == "no taxel_data":
        return [{k: v for k, v in r.items() if k != "taxel_data"} for r in rows]
    if change == "11 taxels":
        row["taxel_data"] = row["taxel_data"][:, :11]
    elif change == "nan":
        row["taxel_data"] = row["taxel_data"].astype(float)
        row["taxel_data"][4, 7] = np.nan
    elif change == "text readings":
        row["taxel_data"] = [["high"] * 12] * 3
    elif change == "unknown letter":
        row["letter"] = "Ä"
    elif change == "short timestamps":
        row["timestamp"] = row["timestamp"][:-1]
    elif change == "timestamps in ms":
        for r in rows:
            r["timestamp"] = np.asarray(r["timestamp"]) * 1000
    elif change == "time goes back":
        row["timestamp"] = row["timestamp"].copy()
        row["timestamp"][3] = row["timestamp"][1]
    return rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no taxel_data", r"lacks the column\(s\) \['taxel_data'\]"),
        ("11 taxels", r"record 5, column 'taxel_data': must be \[T, 12\].*\(\d+, 11\)"),
        ("nan", r"record 5, column 'taxel_data': values must be finite, found nan at "
                r"reading 4, taxel 7"),
        ("text readings", r"record 5, column 'taxel_data': must hold numbers"),
        ("unknown letter", r"record 5, column 'letter': unknown letter 'Ä'; letters are Space"),
        ("short timestamps", r"record 5, column 'timestamp': must hold one time per reading"),
        ("timestamps in ms", r"record 0, column 'timestamp': the median interval .* 25"
                             r".* must be in seconds"),
        ("time goes back", r"record 5, column 'timestamp': times must increase strictly"),
    ],
)
def test_malformed_tables_name_file_column_and_rule(
    tmp_path: Path, pd: Any, change: str, message: str
) -> None:
    path = tmp_path / "broken.pkl"
    pd.DataFrame(_broken(make_rows(1), change)).to_pickle(path)
    with pytest.raises(DataError, match=message) as info:
        load_braille(path, kind="frame", letters="full")
    assert str(info.value).startswith(str(path))


def test_ambiguous_or_absent_timestamps(tmp_path: Path, pd: Any) -> None:
    rows = make_rows(1)
    for row in rows:
        row["timestamp_host"] = row["timestamp"]
        row["time_received"] = row["timestamp"] * 1000  # "timestamp" names win over "time"
    path = tmp_path / "two.pkl"
    pd.DataFrame(rows).to_pickle(path)
    with pytest.raises(DataError, match=r"\['timestamp', 'timestamp_host'\].*timestamps="):
        load_braille(path, kind="frame")
    with pytest.raises(DataError, match="timestamps='clock' names no column"):
        load_braille(path, kind="frame", timestamps="clock")
    assert len(load_braille(path, kind="frame", timestamps="timestamp_host")) == 7
    with pytest.raises(DataError, match="'time_received': the median interval"):
        load_braille(path, kind="frame", timestamps="time_received")
    # Without a time column, reading k is at k / rate: as timestamps=False.
    pd.DataFrame([{k: r[k] for k in ("letter", "taxel_data")} for r in rows]).to_pickle(path)
    untimed = load_braille(path, kind="frame", letters=["A"], bin_size=0.01, window=0.03)
    assert first_a(untimed)[:, 3].tolist() == pytest.approx([0.0, 3.2, 6.4], abs=1e-5)


@pytest.mark.parametrize(
    ("frames", "labels", "message"),
    [
        (np.zeros((7, 5, 11)), list(BRAILLE_REDUCED_LETTERS), r"frames: must be \[N, T, 12\]"),
        (np.full((7, 5, 12), np.inf), list(BRAILLE_REDUCED_LETTERS),
         r"frames: values must be finite, found inf in sample 0"),
        (np.zeros((7, 5, 12)), ["A"] * 6, r"labels: must be one per sample.*\(7,\)"),
        (np.zeros((7, 5, 12)), [0, 1, 2, 3, 4, 5, 7], r"class index 7 is outside 0\.\.6"),
        (np.zeros((7, 5, 12)), ["Space", "A", "E", "I", "O", "U", "y"],
         r"labels\[6\]: unknown letter 'y'"),
        (np.zeros((7, 5, 12)), np.arange(7.0), "letter names or integer class indices"),
        (np.zeros((7, 5, 12)), [0, 0, 1, 2, 3, 4, 5], r"no samples of letter\(s\) \['Y'\]"),
    ],
)
def test_bad_arrays_raise_data_error(frames: np.ndarray, labels: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        braille_frames_from_array(frames, labels)


@pytest.mark.parametrize(
    ("options", "field", "rule"),
    [
        ({"kind": "frame", "channels": "merged"}, "channels", "only to kind='events'"),
        ({"kind": "frame", "threshold": 1}, "threshold", "only to kind='events'"),
        ({"kind": "frame", "preset": "nir"}, "preset", "only to kind='events'"),
        ({"scale": 2.0}, "scale", "only to kind='frame'"),
        ({"timestamps": False}, "timestamps", "only to kind='frame'"),
        ({"kind": "frame", "rate": 0}, "rate", "must be > 0"),
        ({"kind": "frame", "timestamps": ""}, "timestamps", "a column name"),
        ({"kind": "frames"}, "kind", ""),
    ],
)
def test_options_of_the_other_kind_are_refused(
    table: Path, options: dict, field: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_braille(table, **options)
    problem = info.value.problems[0]
    assert problem.field == field and rule in problem.rule


def test_directory_cache_and_archive_lookup(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(load_braille(table.parent, kind="frame")) == 14  # the directory holding it
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds none of data_braille_letters_raw"):
        load_braille(empty, kind="frame")
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    (cache / "braille").mkdir(parents=True)
    archive = cache / "braille" / "reading_braille_data.zip"
    with pytest.raises(DataError, match=r"download=False.*pass path= to the frame table"):
        load_braille(kind="frame", download=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("data/data_braille_letters_th_1.pkl", b"events, not frames")
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match=r"no member matching.*not confirmed.*path="):
        load_braille(kind="frame", download=False)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("data/data_braille_letters_raw", table.read_bytes())
    assert len(load_braille(kind="frame", download=False)) == 14
    assert (cache / "braille" / "data_braille_letters_raw").is_file()

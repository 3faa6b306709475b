"""The Braille loader on generated fixture files, the cache and download path, the NIR split,
and (where ../shared/data is present) the real threshold-10 file."""

from __future__ import annotations

import functools
import http.server
import io
import os
import pickle
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import spiketune.data._braille as braille_module
from spiketune.data import (
    BRAILLE_LETTERS,
    BRAILLE_REDUCED_LETTERS,
    CACHE_ENV,
    BrailleLoader,
    RemoteFile,
    load_braille,
    load_nir_braille,
    read_braille_events,
    stratified_split,
)
from spiketune.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_FILE = SHARED / "braille" / "data_braille_letters_th10"


def make_records(per_letter: int = 3, letters: tuple[str, ...] = BRAILLE_LETTERS) -> list[dict]:
    """Records in the published layout: 12 taxels of [on_times, off_times], seconds."""
    rng = np.random.default_rng(7)
    records = []
    for i in range(per_letter):
        for letter in letters:
            events = [
                [
                    sorted(rng.uniform(0, 1.3, rng.integers(0, 4)).round(4).tolist()),
                    sorted(rng.uniform(0, 1.3, rng.integers(0, 4)).round(4).tolist()),
                ]
                for _ in range(12)
            ]
            if letter == "A" and i == 0:
                events[3] = [[0.0123], [0.5]]  # a sample with known events
            records.append({"letter": letter, "events": events})
    return records


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "data_braille_letters_th10"
    path.write_bytes(pickle.dumps(make_records(), protocol=2))
    return path


def test_reduced_split_defaults(event_file: Path) -> None:
    ds = load_braille(event_file)
    assert ds.classes == BRAILLE_REDUCED_LETTERS
    assert (len(ds), ds.n_steps, ds.n_inputs, ds.dt) == (21, 270, 24, 0.005)
    assert ds.inputs.shape == (21, 270, 24) and ds.inputs.dtype == torch.float32
    assert ds.labels.dtype == torch.int64
    assert ds.class_counts() == dict.fromkeys(BRAILLE_REDUCED_LETTERS, 3)
    assert set(ds.inputs.unique().tolist()) <= {0.0, 1.0}
    assert ds.info.name == "braille_th10_reduced_split"
    assert ds.info.duration == pytest.approx(1.35)


def test_known_events_land_in_the_right_bins(event_file: Path) -> None:
    records = make_records()
    first_a = next(i for i, r in enumerate(records) if r["letter"] == "A")
    ds = load_braille(event_file, letters=["A"], clip=False)
    x = ds.inputs[0]  # the first "A" in file order
    assert records[first_a]["events"][3] == [[0.0123], [0.5]]
    assert x[2, 3] == 1  # ON of taxel 3 at 12.3 ms: bin 2, channel 3
    assert x[100, 12 + 3] == 1  # OFF of taxel 3 at 0.5 s: bin 100, channel 15
    assert x[:, 3].sum() == 1 and x[:, 15].sum() == 1


def test_merged_channels_counts_and_windows(event_file: Path) -> None:
    split = load_braille(event_file, clip=False)
    merged = load_braille(event_file, channels="merged", clip=False)
    assert merged.n_inputs == 12
    assert torch.equal(merged.inputs, split.inputs[:, :, :12] + split.inputs[:, :, 12:])
    assert load_braille(event_file, window=1.28).n_steps == 256  # the NIR recipe
    coarse = load_braille(event_file, bin_size=0.01, clip=False)
    assert coarse.n_steps == 135 and coarse.dt == 0.01
    assert coarse.inputs.sum() == split.inputs.sum()  # no event is lost or doubled


def test_letters_full_and_explicit(event_file: Path) -> None:
    full = load_braille(event_file, letters="full", channels="merged")
    assert full.classes == BRAILLE_LETTERS and len(full) == 81
    mine = load_braille(event_file, letters=["y", "Space", "A"])
    assert mine.classes == ("Y", "Space", "A")
    assert mine.info.name.endswith("_custom_split")
    # File order is Space, A, ..., Y in each repetition; labels follow the requested order.
    assert mine.labels[:3].tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    ("options", "field", "rule"),
    [
        ({"letters": ["A", "Ä"]}, "letters", "unknown letter"),
        ({"letters": ["A", "a"]}, "letters", "listed twice"),
        ({"letters": "vowels"}, "letters", "'reduced', 'full'"),
        ({"letters": []}, "letters", "non-empty"),
        ({"threshold": 3}, "threshold", ""),
        ({"bin_size": 0.0}, "bin_size", "must be > 0"),
        ({"channels": "both"}, "channels", ""),
        ({"window": 0.001}, "<options>", "at least one bin_size"),
    ],
)
def test_bad_options_raise_config_error_naming_field(
    options: dict, field: str, rule: str, event_file: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        load_braille(event_file, **options)
    problem = info.value.problems[0]
    assert problem.field == field
    assert rule in problem.rule


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="bins"):
        BrailleLoader(bins=3)


def test_path_may_be_a_directory_with_any_published_name(tmp_path: Path) -> None:
    (tmp_path / "data_braille_letters_th_2.pkl").write_bytes(pickle.dumps(make_records(1)))
    assert len(load_braille(tmp_path, threshold=2)) == 7
    with pytest.raises(DataError, match="holds none of"):
        load_braille(tmp_path, threshold=5)
    with pytest.raises(DataError, match="does not exist"):
        load_braille(tmp_path / "nowhere")


def test_an_event_file_named_for_another_threshold_is_refused(tmp_path: Path) -> None:
    """The four encodings' files look alike inside; only the name tells threshold 10 from 1,
    so a file whose name contradicts the threshold asked for is an error, not other data."""
    th10 = tmp_path / "data_braille_letters_th10"
    th10.write_bytes(pickle.dumps(make_records(1)))
    assert braille_module.braille_file_threshold(th10) == 10
    assert braille_module.braille_file_threshold(tmp_path / "data_braille_letters_th_2.pkl") == 2
    assert braille_module.braille_file_threshold(tmp_path / "few.pkl") is None
    assert len(load_braille(th10, threshold=10)) == 7
    with pytest.raises(DataError, match=r"th10: its name says sigma-delta threshold 10, and "
                                        r"threshold=1 was asked"):
        load_braille(th10, preset="nir")
    other = tmp_path / "letters.pkl"  # a name that gives no threshold is read as asked
    other.write_bytes(pickle.dumps(make_records(1)))
    assert len(load_braille(other, preset="nir")) == 7


def test_missing_letter_and_malformed_records(tmp_path: Path) -> None:
    path = tmp_path / "few.pkl"
    path.write_bytes(pickle.dumps(make_records(1, letters=("A", "B"))))
    with pytest.raises(DataError, match=r"no samples of letter\(s\) \['Space', 'E'"):
        load_braille(path)
    path.write_bytes(pickle.dumps([{"letter": "A"}]))
    with pytest.raises(DataError, match="record 0"):
        load_braille(path, letters=["A"])
    path.write_bytes(pickle.dumps({"letter": "A"}))
    with pytest.raises(DataError, match="expected a list"):
        load_braille(path, letters=["A"])


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_crafted_and_truncated_files_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pkl"
    records = make_records(1)
    records[0]["events"] = _RunsCommand(marker)
    evil.write_bytes(pickle.dumps(records, protocol=2))
    with pytest.raises(DataError, match="refused"):
        load_braille(evil)
    assert not marker.exists()
    truncated = tmp_path / "truncated.pkl"
    data = pickle.dumps(make_records(), protocol=2)
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_braille(truncated)


def test_pandas_table_gives_the_same_tensors(tmp_path: Path, event_file: Path) -> None:
    pd = pytest.importorskip("pandas")
    records = make_records()
    table = pd.DataFrame(
        {"letter": [r["letter"] for r in records], "events": [r["events"] for r in records]}
    )
    path = tmp_path / "data_braille_letters_th_10.pkl"
    table.to_pickle(path)
    from_table = load_braille(path)
    from_list = load_braille(event_file)
    assert torch.equal(from_table.inputs, from_list.inputs)
    assert torch.equal(from_table.labels, from_list.labels)
    letters, _ = read_braille_events(path)
    assert letters[:3] == ["Space", "A", "B"]


def test_dataset_feeds_a_dataloader(event_file: Path) -> None:
    ds = load_braille(event_file)
    x, y = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert x.shape == (4, 270, 24) and y.shape == (4,)
    train, val, test = ds.split(stratified_split(ds.labels, (0.34, 0.33, 0.33), seed=0))
    assert len(train) + len(val) + len(test) == len(ds)


def _archive_bytes(member: str = "data/data_braille_letters_th_10.pkl") -> bytes:
    """The fixture archive, the same bytes on every call: its members carry a fixed date (a
    member named by a string alone is stamped with the clock, and the server's copy and the
    checksum are made at different moments)."""
    members = {member: pickle.dumps(make_records(2), protocol=4),
               "data/data_braille_letters_th_1.pkl": b"another threshold"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2022, 9, 1, 0, 0, 0))
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_the_fixture_archive_does_not_follow_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    first = _archive_bytes()
    later = time.time() + 3600.0
    monkeypatch.setattr(time, "time", lambda: later)
    assert _archive_bytes() == first


def test_archive_placed_by_hand_in_the_cache_is_used_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    (tmp_path / "braille").mkdir()
    (tmp_path / "braille" / "reading_braille_data.zip").write_bytes(_archive_bytes())
    ds = load_braille(download=False)
    assert len(ds) == 14
    assert (tmp_path / "braille" / "data_braille_letters_th10.pkl").is_file()
    # Next time the extracted file is read directly, even without the archive.
    (tmp_path / "braille" / "reading_braille_data.zip").unlink()
    assert len(load_braille(download=False)) == 14


def test_no_data_and_no_download_says_where_to_put_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(DataError) as info:
        load_braille(download=False)
    message = str(info.value)
    assert str(tmp_path / "braille" / "reading_braille_data.zip") in message
    assert "zenodo.org/records/7050094" in message


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "served"
    served.mkdir()
    (served / "reading_braille_data.zip").write_bytes(_archive_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_extract_and_load_end_to_end(
    archive_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    md5 = hashlib.md5(_archive_bytes()).hexdigest()
    remote = RemoteFile(
        url=f"{archive_server}/reading_braille_data.zip?download=1",
        filename="reading_braille_data.zip",
        md5=md5,
    )
    monkeypatch.setattr(braille_module, "BRAILLE_ARCHIVE", remote)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    ds = load_braille(progress=False)
    assert len(ds) == 14
    assert (tmp_path / "cache" / "braille" / "reading_braille_data.zip").is_file()


def test_published_archive_record_is_described() -> None:
    archive = braille_module.BRAILLE_ARCHIVE
    assert archive.url == (
        "https://zenodo.org/records/7050094/files/reading_braille_data.zip?download=1"
    )
    assert archive.filename == "reading_braille_data.zip"
    # The published md5 has not been verified yet: it must stay unset rather than guessed.
    assert archive.md5 == braille_module.BRAILLE_ARCHIVE_MD5


def _save_nir_split(directory: Path, n: int = 5, steps: int = 256) -> None:
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val", "test"):
        inputs = (torch.rand(n, steps, 12, generator=generator) < 0.1).float()
        labels = torch.arange(n) % 7
        torch.save(TensorDataset(inputs, labels), directory / f"ds_{split}.pt")


def test_nir_preprocessed_split_loads(tmp_path: Path) -> None:
    _save_nir_split(tmp_path)
    splits = load_nir_braille(tmp_path)
    assert set(splits) == {"train", "val", "test"}
    test = splits["test"]
    assert (len(test), test.n_steps, test.n_inputs, test.dt) == (5, 256, 12, 0.005)
    assert test.classes == BRAILLE_REDUCED_LETTERS
    assert test.labels.dtype == torch.int64


def test_nir_loader_refuses_anything_but_tensor_datasets(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    torch.save(_RunsCommand(marker), tmp_path / "ds_train.pt")
    with pytest.raises(DataError, match="refused or unreadable") as err:
        load_nir_braille(tmp_path, splits=["train"])
    assert not marker.exists()
    assert "it asks to build" in str(err.value)
    assert "weights_only" not in str(err.value)  # never torch's advice to load it unsafely
    torch.save({"x": torch.zeros(2)}, tmp_path / "ds_val.pt")
    with pytest.raises(DataError, match="expected a TensorDataset"):
        load_nir_braille(tmp_path, splits=["val"])
    with pytest.raises(DataError, match="does not exist"):
        load_nir_braille(tmp_path, splits=["test"])
    data = (tmp_path / "ds_val.pt").read_bytes()
    (tmp_path / "ds_val.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        load_nir_braille(tmp_path, splits=["val"])


requires_real_data = pytest.mark.skipif(
    not REAL_FILE.is_file(),
    reason=f"real Braille data not found at {REAL_FILE} (../shared/data beside the clone)",
)


@requires_real_data
def test_real_file_holds_5400_samples_of_27_letters() -> None:
    letters, events = read_braille_events(REAL_FILE)
    assert len(letters) == 5400
    assert sorted(set(letters)) == sorted(BRAILLE_LETTERS)
    assert all(letters.count(name) == 200 for name in BRAILLE_LETTERS)
    assert all(len(e) == 12 for e in events)


@requires_real_data
def test_real_file_reduced_task() -> None:
    ds = load_braille(REAL_FILE, clip=False)
    assert ds.inputs.shape == (1400, 270, 24)
    assert ds.class_counts() == dict.fromkeys(BRAILLE_REDUCED_LETTERS, 200)
    letters, events = read_braille_events(REAL_FILE)
    total = sum(
        len(ts)
        for letter, sample in zip(letters, events, strict=True)
        if letter in BRAILLE_REDUCED_LETTERS
        for polarities in sample
        for ts in polarities
    )
    assert ds.inputs.sum() == total  # every event of the reduced letters, none dropped
    split = stratified_split(ds.labels, (0.8, 0.1, 0.1), seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (1120, 140, 140)


@requires_real_data
def test_real_file_full_task_merged() -> None:
    ds = load_braille(REAL_FILE, letters="full", channels="merged", bin_size=0.05)
    assert ds.inputs.shape == (5400, 27, 12)
    assert ds.class_counts() == dict.fromkeys(BRAILLE_LETTERS, 200)


def test_an_event_file_of_another_shape_names_the_file_and_the_record(tmp_path: Path) -> None:
    """A record with 11 taxels among 12-taxel ones, or every record with 11 (which would
    pass for 22 channels), is named with the file and its place in the file."""
    from test_data_braille_pool import th1_records

    from spiketune.data import load_braille

    records = th1_records(per_letter=2)
    reduced = {"Space", "A", "E", "I", "O", "U", "Y"}
    odd = next(i for i, r in enumerate(records) if r["letter"] == "I")
    records[odd]["events"] = records[odd]["events"][:11]
    path = tmp_path / "data_braille_letters_th1"
    path.write_bytes(pickle.dumps(records, protocol=2))
    with pytest.raises(DataError, match=rf"{path}: record {odd} \(I\) has 11 taxels"):
        load_braille(path, preset="nir", progress=False)
    short = [dict(r, events=r["events"][:11]) for r in th1_records(per_letter=2)
             if r["letter"] in reduced]
    path.write_bytes(pickle.dumps(short, protocol=2))
    with pytest.raises(DataError, match="have 11 taxels; the Braille sensor has 12"):
        load_braille(path, preset="nir", progress=False)


"""The reduced threshold-1 Braille encoding: TensorDataset files (``load_braille_pool``), the
``"nir"`` preset of the event-file loader giving the same form, and (where ../shared/data holds
it) the real pool."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from spiketune.data import (
    BRAILLE_PRESETS,
    BRAILLE_REDUCED_LETTERS,
    BRAILLE_TASK_DEFAULTS,
    Dataset,
    DatasetInfo,
    load_braille,
    load_braille_encoding,
    load_braille_pool,
    stratified_split,
)
from spiketune.data._braille_task import is_braille_pool
from spiketune.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
POOL_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"
POOL_DIR = Path(os.environ.get(POOL_ENV) or REPO.parent / "shared" / "data" / "braille_th1")
POOL_FILE = POOL_DIR / "braille_reduced_th1_pool.pt" if POOL_DIR.is_dir() else POOL_DIR
#: Samples per class of the real pool, as its README states.
POOL_COUNTS = {"Space": 147, "A": 152, "E": 148, "I": 158, "O": 148, "U": 151, "Y": 140}


def th1_records(per_letter: int = 4) -> list[dict]:
    """Records in the published layout (12 taxels of [on_times, off_times], seconds), dense
    enough that ON and OFF events share bins, with events after 1.28 s."""
    rng = np.random.default_rng(11)
    records = []
    for _ in range(per_letter):
        for letter in ("Space", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            events = [
                [sorted(rng.uniform(0, 1.34, 12).round(4).tolist()),
                 sorted(rng.uniform(0, 1.34, 12).round(4).tolist())]
                for _ in range(12)
            ]
            records.append({"letter": letter, "events": events})
    # ON and OFF in the nearest 5 ms bins 2 (10.1, 12.0 ms) and 9 (44.9 ms); 1.279 s is
    # nearest to bin 256, past the window (floor bins would be 2, 8 and 255)
    records[0]["events"][2] = [[0.0101, 0.0449], [0.0120, 1.279]]
    return records


@pytest.fixture
def th1_file(tmp_path: Path) -> Path:
    path = tmp_path / "data_braille_letters_th1"
    path.write_bytes(pickle.dumps(th1_records(), protocol=2))
    return path


def save_pool(path: Path, inputs: torch.Tensor, labels: torch.Tensor) -> Path:
    torch.save(TensorDataset(inputs, labels), path)
    return path


def pool_like(n: int = 14, steps: int = 256, channels: int = 12) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    inputs = (torch.rand(n, steps, channels, generator=g) < 0.05).float()
    return inputs, torch.arange(n) % 7


def test_pool_file_loads_with_the_reduced_classes(tmp_path: Path) -> None:
    inputs, labels = pool_like()
    path = save_pool(tmp_path / "pool.pt", inputs, labels)
    ds = load_braille_pool(path)
    assert ds.classes == BRAILLE_REDUCED_LETTERS == ("Space", "A", "E", "I", "O", "U", "Y")
    assert (len(ds), ds.n_steps, ds.n_inputs, ds.dt) == (14, 256, 12, 0.005)
    assert ds.info.duration == pytest.approx(1.28) and ds.info.name == "pool"
    assert torch.equal(ds.inputs, inputs) and torch.equal(ds.labels, labels)
    # counts are accepted; the steps are the file's own
    counts = save_pool(tmp_path / "counts.pt", inputs[:, :100] * 3, labels)
    assert load_braille_pool(counts).n_steps == 100


@pytest.mark.parametrize(
    ("inputs", "labels", "rule"),
    [
        (torch.zeros(7, 256, 24), torch.arange(7), r"\[N, T, 12\].*\(7, 256, 24\)"),
        (torch.zeros(7, 256), torch.arange(7), r"inputs must be \[N, T, C\]"),
        (torch.full((7, 256, 12), 0.5), torch.arange(7), "0/1 spikes or non-negative.*0.5"),
        (-torch.ones(7, 256, 12), torch.arange(7), "non-negative event counts.*-1.0"),
        (torch.zeros(7, 256, 12), torch.arange(7) + 1, r"labels must lie in 0..6.*found 1..7"),
        (torch.zeros(7, 256, 12), torch.arange(7)[:, None],
         r"one integer per sample \(\[N\]\), got shape \(7, 1\)"),
        (torch.zeros(7, 256, 12), torch.full((7,), 0.5), r"torch.float32 values such as 0.5"),
        (torch.zeros(7, 256, 12, dtype=torch.complex64), torch.arange(7),
         "inputs must be real spike counts, got torch.complex64"),
        (torch.zeros(0, 256, 12), torch.zeros(0, dtype=torch.int64), "must hold samples"),
    ],
)
def test_pool_file_breaking_a_rule_names_file_and_rule(
    tmp_path: Path, inputs: torch.Tensor, labels: torch.Tensor, rule: str
) -> None:
    path = save_pool(tmp_path / "bad.pt", inputs, labels)
    with pytest.raises(DataError, match=rule) as info:
        load_braille_pool(path)
    assert str(path) in str(info.value)


def test_pool_loader_refuses_other_objects_and_finds_the_file_in_a_directory(
    tmp_path: Path,
) -> None:
    torch.save({"inputs": torch.zeros(1)}, tmp_path / "dict.pt")
    with pytest.raises(DataError, match="expected a TensorDataset"):
        load_braille_pool(tmp_path / "dict.pt")
    torch.save(TensorDataset(torch.zeros(7, 8, 12), torch.arange(7), torch.zeros(7)),
               tmp_path / "three.pt")
    with pytest.raises(DataError, match=r"a TensorDataset of 2 tensors .*got 3"):
        load_braille_pool(tmp_path / "three.pt")
    with pytest.raises(DataError, match=r"braille_reduced_th1_pool\.pt does not exist"):
        load_braille_pool(tmp_path)
    save_pool(tmp_path / "braille_reduced_th1_pool.pt", *pool_like())
    assert len(load_braille_pool(tmp_path)) == 14
    # read as what it is not: an event file, or at another window than the one it holds
    pool = tmp_path / "braille_reduced_th1_pool.pt"
    copy = tmp_path / "pool_without_suffix"
    copy.write_bytes(pool.read_bytes())
    for path in (pool, copy):
        with pytest.raises(DataError, match=r"is a TensorDataset file .* not an event file"):
            load_braille(path, preset="nir", progress=False)
    options = {**BRAILLE_TASK_DEFAULTS, "threshold": 1, "channels": "merged"}
    with pytest.raises(DataError, match=r"window=1\.35: the pool file .* holds 1\.28 s"):
        load_braille_encoding({**options, "window": 1.35}, pool)
    assert load_braille_encoding({**options, "window": 1.28}, pool).inputs.shape[1] == 64


def test_pool_files_as_users_save_them(tmp_path: Path) -> None:
    """Sparse spikes, torch's older format under any name: read as the same pool; bool labels
    and pickle protocol 4 refused, saying why."""
    inputs, labels = pool_like()
    dense = load_braille_pool(save_pool(tmp_path / "dense.pt", inputs, labels))
    sparse = tmp_path / "sparse.pt"
    torch.save(TensorDataset(inputs.to_sparse(), labels), sparse)
    assert torch.equal(load_braille_pool(sparse).inputs, dense.inputs)
    legacy = tmp_path / "heldout"  # no .pt, not a zip: torch's format before 1.6
    torch.save(TensorDataset(inputs, labels), legacy, _use_new_zipfile_serialization=False)
    assert is_braille_pool(legacy)
    options = {**BRAILLE_TASK_DEFAULTS, "threshold": 1, "channels": "merged", "bin_size": 0.005,
               "clip": True}
    assert torch.equal(load_braille_encoding(options, legacy).inputs, dense.inputs)
    torch.save(TensorDataset(inputs, labels.bool()), tmp_path / "bool.pt")
    with pytest.raises(DataError, match=r"labels must be integer class indices, got torch\.bool"):
        load_braille_pool(tmp_path / "bool.pt")
    torch.save(TensorDataset(inputs, labels), tmp_path / "p4.pt", pickle_protocol=4)
    with pytest.raises(DataError, match="pickled with protocol 4 or 5"):
        load_braille_pool(tmp_path / "p4.pt")


def test_nir_preset_is_the_explicit_options(th1_file: Path) -> None:
    assert BRAILLE_PRESETS["nir"] == {
        "threshold": 1, "letters": "reduced", "channels": "merged", "clip": True,
        "bin_size": 0.005, "window": 1.28, "binning": "nearest",
    }
    by_name = load_braille(th1_file, preset="nir")
    explicit = load_braille(th1_file, threshold=1, letters="reduced", channels="merged",
                            bin_size=0.005, window=1.28, binning="nearest")
    assert torch.equal(by_name.inputs, explicit.inputs)
    assert torch.equal(by_name.labels, explicit.labels) and by_name.info == explicit.info
    # given options win over the preset's
    assert load_braille(th1_file, preset="nir", window=0.64).n_steps == 128
    assert load_braille(th1_file, preset="nir", clip=False).inputs.max() > 1
    with pytest.raises(ConfigError, match="preset"):
        load_braille(th1_file, preset="snn")  # type: ignore[arg-type]


def test_archive_path_and_pool_have_the_same_form_and_conventions(
    th1_file: Path, tmp_path: Path
) -> None:
    archive = load_braille(th1_file, preset="nir")
    # a pool-style file, written as the published pool is: a TensorDataset of the tensors
    pool = load_braille_pool(save_pool(tmp_path / "pool.pt", *pool_like()))
    assert archive.inputs.shape == (7 * 4, 256, 12)
    assert archive.inputs.shape[1:] == pool.inputs.shape[1:]
    assert archive.inputs.dtype == pool.inputs.dtype == torch.float32
    assert archive.labels.dtype == pool.labels.dtype == torch.int64
    assert set(archive.inputs.unique().tolist()) == set(pool.inputs.unique().tolist()) == {0, 1}
    assert archive.classes == pool.classes and archive.dt == pool.dt == 0.005
    assert archive.n_steps == pool.n_steps == 256
    # channel c is taxel c, ON | OFF (OR, never 2), each event in its nearest bin, as the
    # archive's published loaders bin (round(t / 5 ms)); a bin past 255 is dropped
    first = archive.inputs[0, :, 2]
    assert first.nonzero().flatten().tolist() == [2, 9]
    floor = load_braille(th1_file, preset="nir", binning="floor").inputs[0, :, 2]
    assert floor.nonzero().flatten().tolist() == [2, 8, 255]
    # the file lists Space, A, B, ..., Z per round: labels follow Space, A, E, I, O, U, Y
    assert archive.labels[:7].tolist() == list(range(7))
    counts = load_braille(th1_file, preset="nir", clip=False)
    assert torch.equal(archive.inputs, counts.inputs.clamp(max=1))


@pytest.mark.skipif(
    not POOL_FILE.is_file(),
    reason=f"the threshold-1 pool is not at {POOL_FILE} (set ${POOL_ENV} to its file or "
    "directory)",
)
def test_real_pool_holds_1044_samples_in_the_nir_encoding() -> None:
    pool = load_braille_pool(POOL_FILE)
    assert pool.inputs.shape == (1044, 256, 12) and pool.dt == 0.005
    assert pool.class_counts() == POOL_COUNTS
    assert set(pool.inputs.unique().tolist()) == {0.0, 1.0}
    split = stratified_split(pool.labels, (0.8, 0.1, 0.1), seed=0)
    _, _, test = pool.split(split)
    assert len(test) == sum(round(n * 0.1) for n in POOL_COUNTS.values())


def paired_phases(inputs: torch.Tensor) -> set[tuple[int, int]]:
    """Pairs of 5 ms bin phases within the 25 ms reading period (bin index mod 5) that hold
    equally many spikes. Threshold-1 events of integer readings lie symmetrically within each
    period, so nearest bins pair phases 1 and 4 (2.5-7.5 ms and 17.5-22.5 ms), floor bins 1
    and 3 (5-10 ms and 15-20 ms)."""
    per_step = inputs.sum(dim=(0, 2))
    phase = [int(per_step[k::5].sum()) for k in range(5)]
    return {(i, j) for i in range(1, 5) for j in range(i + 1, 5) if phase[i] == phase[j]}


@pytest.mark.skipif(
    not POOL_FILE.is_file(),
    reason=f"the threshold-1 pool is not at {POOL_FILE} (set ${POOL_ENV} to its file or "
    "directory)",
)
def test_nir_preset_bins_events_as_the_real_pool_was_binned(tmp_path: Path) -> None:
    pool = paired_phases(load_braille_pool(POOL_FILE).inputs)
    assert (1, 4) in pool and (1, 3) not in pool  # the pool was binned to the nearest bin
    # events of one taxel placed symmetrically within each 25 ms reading period, as the
    # archive's are: at 0.15 and 0.85 of it once, 0.25 and 0.75 twice, 0.45 and 0.55 four
    # times (nearest phases 1, 4; 1, 4; 2, 3 -- floor phases 0, 4; 1, 3; 2, 2)
    period = 0.025
    fractions = (0.15, 0.85, *(0.25, 0.75) * 2, *(0.45, 0.55) * 4)
    times = sorted(k * period + f * period for k in range(40) for f in fractions)
    records = [{"letter": letter, "events": [[times, []]] + [[[], []]] * 11}
               for letter in BRAILLE_REDUCED_LETTERS]
    path = tmp_path / "data_braille_letters_th1"
    path.write_bytes(pickle.dumps(records, protocol=2))
    counts = {"clip": False}
    assert paired_phases(load_braille(path, preset="nir", **counts).inputs) == {(1, 4), (2, 3)}
    floor = load_braille(path, preset="nir", binning="floor", **counts).inputs
    assert paired_phases(floor) == {(1, 3)}


# ------------------------------------------------------------------------------ rebin
def five_ms(inputs: torch.Tensor, labels: torch.Tensor) -> Dataset:
    _, t, c = inputs.shape
    return Dataset(DatasetInfo("fine", BRAILLE_REDUCED_LETTERS, c, t, 0.005), inputs, labels)


def test_rebin_sums_whole_groups_of_steps_and_drops_a_partial_last_bin() -> None:
    inputs = torch.zeros(2, 10, 12)
    inputs[0, [0, 1, 3], 4] = 1.0  # steps 0, 1 (bin 0) and 3 (bin 1) of channel 4
    inputs[1, 9, 0] = 1.0  # step 9: in the partial last bin of 4 steps, dropped
    inputs[1, 8, 11] = 1.0  # step 8: the third 20 ms bin (dropped), the fifth 10 ms one
    labels = torch.tensor([3, 6])
    fine = five_ms(inputs, labels)

    by4 = fine.rebin(0.02)  # 10 steps of 5 ms -> 2 whole bins of 20 ms
    assert by4.inputs.shape == (2, 2, 12)
    assert (by4.n_steps, by4.dt, by4.info.duration) == (2, 0.02, pytest.approx(0.04))
    assert by4.inputs[0, :, 4].tolist() == [3.0, 0.0] and by4.inputs.sum() == 3.0
    assert torch.equal(by4.labels, labels) and by4.classes == fine.classes

    by2 = fine.rebin(0.01, clip=True)  # 5 whole bins of 10 ms, 0/1
    assert (by2.n_steps, by2.dt) == (5, 0.01)
    assert by2.inputs[0, :, 4].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert by2.inputs[1, 4].nonzero().flatten().tolist() == [0, 11]
    assert set(by2.inputs.unique().tolist()) == {0.0, 1.0}
    assert by2.inputs.dtype == torch.float32

    # the same sums as a hand-written loop over random counts, and the original untouched
    g = torch.Generator().manual_seed(3)
    counts = torch.randint(0, 3, (5, 23, 12), generator=g).float()
    original = counts.clone()
    rebinned = five_ms(counts, torch.arange(5)).rebin(0.015)
    expected = torch.stack([counts[:, 3 * k : 3 * k + 3].sum(1) for k in range(7)], 1)
    assert torch.equal(rebinned.inputs, expected) and torch.equal(counts, original)
    assert torch.equal(five_ms(counts, torch.arange(5)).rebin(0.005).inputs, counts)


@pytest.mark.parametrize(
    ("bin_size", "rule"),
    [
        (0.007, "whole multiple of dt=0.005"),
        (0.0025, "whole multiple of dt=0.005"),
        (0.0, "whole multiple"),
        (-0.01, "whole multiple"),
        (0.06, "must fit in the 10 steps"),
    ],
)
def test_rebin_refuses_a_bin_that_is_no_whole_multiple_or_too_long(
    bin_size: float, rule: str
) -> None:
    fine = five_ms(torch.zeros(1, 10, 12), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ConfigError, match=rule) as info:
        fine.rebin(bin_size)
    assert info.value.problems[0].field == "bin_size"
    assert fine.rebin(0.05).n_steps == 1  # one whole bin fits

"""The Braille template on threshold-1 data: pool files and the threshold-1 event file rebinned
to the searched ``bin_size``, the re-splits (``folds``) a trial is judged on, their lock-step
training, and (slow) the whole chain on a tiny pool file: trials over 2 folds, the chosen
configuration retrained with 2 seeds, and ``spiketune evaluate`` on the 5 ms pool file."""

from __future__ import annotations

import json
import pickle
import statistics
from pathlib import Path

import pytest
import torch
from test_braille_example import _load
from test_data_braille_pool import save_pool, th1_records
from torch.utils.data import TensorDataset

from spiketune import Outcome
from spiketune.data import (
    BRAILLE_REDUCED_LETTERS,
    Dataset,
    load_braille,
    load_braille_pool,
    stratified_split,
)
from spiketune.engine import ExperimentResults, chosen_trial, load_best_model
from spiketune.errors import DataError
from spiketune.snn import History, RecurrentSNN, SNNConfig, TrainConfig, Trainer, train_folds

pytestmark = pytest.mark.usefixtures("one_thread")

#: Samples per class of the tiny pools: 8 train, 1 validation, 1 test each.
PER_CLASS = 10
ID_BITS = 12


def id_pool(per_class: int = PER_CLASS, steps: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A pool in the published form (5 ms, 0/1, 12 channels) whose samples can be told apart:
    step 0 holds the sample's index in binary and steps 1-3 are empty, so the first bin of any
    rebinning up to 20 ms still reads it. Class k also fires taxel k every other step (from
    step 4 on: two events in each 10 or 20 ms bin), so the classes can be learnt."""
    n = 7 * per_class
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 7
    inputs = (torch.rand(n, steps, 12, generator=g) < 0.05).float()
    inputs[:, :4] = 0.0
    inputs[:, 0] = ((torch.arange(n)[:, None] >> torch.arange(ID_BITS)) & 1).float()
    inputs[torch.arange(n), 4::2, labels] = 1.0
    return inputs, labels


def ids(ds: Dataset) -> list[int]:
    """The indices (in the pool) of the samples of ``ds``, read from their first bin."""
    return ((ds.inputs[:, 0] > 0).long() * (1 << torch.arange(ID_BITS))).sum(1).tolist()


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return save_pool(tmp_path / "braille_reduced_th1_pool.pt", *id_pool())


@pytest.fixture
def setup_hpo():
    return _load("setup_hpo")


def pool_options(setup_hpo, **changes: object) -> dict[str, object]:
    return {**setup_hpo.data_options({}, pool=True), **changes}


def _same(a: Dataset, b: Dataset) -> bool:
    return torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)


# ------------------------------------------------------------------------------ options
def test_pool_data_are_told_from_event_files(setup_hpo, pool: Path, tmp_path: Path) -> None:
    assert setup_hpo.is_pool(pool) and setup_hpo.is_pool(pool.parent)  # file or directory
    assert setup_hpo.is_pool(save_pool(tmp_path / "any_name.pt", *id_pool(per_class=2)))
    events = tmp_path / "events"
    events.mkdir()
    (events / "data_braille_letters_th1").write_bytes(pickle.dumps(th1_records(1)))
    assert not setup_hpo.is_pool(events) and not setup_hpo.is_pool(events / "x")
    assert not setup_hpo.is_pool(events / "data_braille_letters_th1")
    assert not setup_hpo.is_pool(tmp_path / "missing.pt") and not setup_hpo.is_pool(None)

    assert setup_hpo.data_options({}) == setup_hpo.DATA_DEFAULTS == {
        "threshold": 10, "channels": "split", "bin_size": 0.02, "letters": "reduced",
        "clip": False,
    }
    assert setup_hpo.data_options({}, pool=True) == {
        "threshold": 1, "channels": "merged", "bin_size": 0.02, "letters": "reduced",
        "clip": False,
    }
    trial = {"bin_size": 0.01, "clip": True, "lr": 0.003, "n_rec": 128}
    assert setup_hpo.data_options(trial, pool=True) == {
        "threshold": 1, "channels": "merged", "bin_size": 0.01, "letters": "reduced",
        "clip": True,
    }


# ------------------------------------------------------------------------------ loading
@pytest.mark.parametrize(("bin_size", "clip"), [(0.01, True), (0.02, False), (0.005, False)])
def test_a_pool_is_rebinned_then_split(
    setup_hpo, pool: Path, bin_size: float, clip: bool
) -> None:
    options = pool_options(setup_hpo, bin_size=bin_size, clip=clip)
    data = setup_hpo.load_data(options, pool)
    whole = load_braille_pool(pool).rebin(bin_size, clip=clip)
    split = stratified_split(whole.labels, (0.8, 0.1, 0.1), seed=0)
    for part, expected in zip((data.train, data.val, data.test), whole.split(split), strict=True):
        assert _same(part, expected)
    assert (data.info.dt, data.info.n_steps) == (bin_size, round(1.28 / bin_size))
    assert data.info.classes == BRAILLE_REDUCED_LETTERS and data.info.n_inputs == 12
    assert data.split_digest == split.digest()
    assert (data.train.inputs.max() > 1) == (not clip and bin_size > 0.005)  # counts or 0/1
    by_directory = setup_hpo.load_data(options, pool.parent)
    assert by_directory.split_digest == data.split_digest and _same(by_directory.test, data.test)


@pytest.mark.parametrize(
    ("key", "value", "wanted"),
    [("threshold", 10, 1), ("channels", "split", "merged"), ("letters", "all", "reduced")],
)
def test_a_pool_with_another_encoding_asked_is_refused_by_option(
    setup_hpo, pool: Path, key: str, value: object, wanted: object
) -> None:
    with pytest.raises(DataError) as info:
        setup_hpo.load_data(pool_options(setup_hpo, **{key: value}), pool)
    message = str(info.value)
    assert f"{key}={value!r}" in message and f"{key} must be {wanted!r}" in message
    assert str(pool) in message


def test_the_threshold_1_event_file_gives_the_pools_tensors(setup_hpo, tmp_path: Path) -> None:
    """Threshold 1, merged, reduced from the archive: the 5 ms ``nir`` encoding rebinned as a
    pool is, so that both sources give the same tensors; split channels take the general
    loader."""
    events = tmp_path / "data_braille_letters_th1"
    events.write_bytes(pickle.dumps(th1_records(per_letter=PER_CLASS), protocol=2))
    options = {**setup_hpo.DATA_DEFAULTS, "threshold": 1, "channels": "merged",
               "bin_size": 0.02, "clip": False}
    from_events = setup_hpo.load_data(options, events, download=False)

    native = load_braille(events, preset="nir")
    assert (native.dt, native.n_steps) == (0.005, 256)
    expected = native.rebin(0.02)
    split = stratified_split(expected.labels, (0.8, 0.1, 0.1), seed=0)
    for part, wanted in zip((from_events.train, from_events.val, from_events.test),
                            expected.split(split), strict=True):
        assert _same(part, wanted)
    assert from_events.train.inputs.max() > 1  # counts of 5 ms events, not 0/1

    pool = save_pool(tmp_path / "pool.pt", native.inputs, native.labels)
    from_pool = setup_hpo.load_data(pool_options(setup_hpo, bin_size=0.02), pool)
    assert from_pool.split_digest == from_events.split_digest
    for a, b in ((from_pool.train, from_events.train), (from_pool.test, from_events.test)):
        assert _same(a, b)
    assert from_pool.info.dt == from_events.info.dt and from_pool.info.n_steps == 64

    split_channels = setup_hpo.load_data({**options, "channels": "split"}, events)
    assert (split_channels.info.n_inputs, split_channels.info.dt) == (24, 0.02)


def test_folds_resplit_train_and_validation_around_the_fixed_test_part(
    setup_hpo, pool: Path
) -> None:
    options = pool_options(setup_hpo)
    single = setup_hpo.load_data(options, pool)
    data = setup_hpo.load_data(options, pool, folds=3)
    assert len(single.folds) == 1 and all(
        _same(a, b) for a, b in zip(single.folds[0], (single.train, single.val), strict=True)
    )
    assert len(data.folds) == 3
    # the split itself is the same with folds, and it is the first re-split
    assert data.split_digest == single.split_digest
    for a, b in ((data.train, single.train), (data.val, single.val), (data.test, single.test)):
        assert _same(a, b)
    assert _same(data.folds[0][0], data.train) and _same(data.folds[0][1], data.val)

    everyone = set(range(7 * PER_CLASS))
    test = set(ids(data.test))
    assert len(test) == 7
    vals = []
    for train, val in data.folds:
        t, v = set(ids(train)), set(ids(val))
        assert len(t) == len(train) == 56 and len(v) == len(val) == 7
        assert t | v == everyone - test and not t & v
        assert val.labels.sort().values.tolist() == list(range(7))  # stratified
        vals.append(v)
    assert not (vals[0] & vals[1] or vals[0] & vals[2] or vals[1] & vals[2])  # disjoint


# ------------------------------------------------------------------------------ lock-step
def _without_seconds(history: History) -> list[dict[str, object]]:
    return [{k: v for k, v in m.as_dict().items() if k != "seconds"} for m in history.epochs]


def test_train_folds_advances_all_folds_one_epoch_at_a_time(setup_hpo, pool: Path) -> None:
    """Fold 0 stops early after 2 epochs, fold 1 runs 4: every epoch ``on_epoch`` gets each
    fold's latest metrics, and every fold trains as it would alone."""
    data = setup_hpo.load_data(pool_options(setup_hpo), pool, folds=2)
    configs = [
        TrainConfig(epochs=4, batch_size=14, lr=2e-2, min_delta=1.0, patience=1),
        TrainConfig(epochs=4, batch_size=14, lr=2e-2, seed=1),
    ]

    def built() -> list[tuple[RecurrentSNN, TrainConfig]]:
        return [(RecurrentSNN(SNNConfig(n_in=12, n_rec=8, n_out=7, dt=0.02), seed=i), c)
                for i, c in enumerate(configs)]

    nets = built()
    calls: list[tuple[int, list]] = []
    trainers, histories = train_folds(
        nets, data.folds, lambda epoch, latest: calls.append((epoch, list(latest)))
    )
    assert [t.net for t in trainers] == [net for net, _ in nets]
    assert [(e, [m.epoch for m in latest]) for e, latest in calls] == [
        (1, [1, 1]), (2, [2, 2]), (3, [2, 3]), (4, [2, 4])
    ]
    first, second = histories
    assert (first.stop_reason, second.stop_reason) == ("early_stopping", "completed")
    for _, latest in calls:
        assert latest[0] is first.epochs[latest[0].epoch - 1]
        assert latest[1] is second.epochs[latest[1].epoch - 1]

    for (alone, config), (net, _), history, (train, val) in zip(
        built(), nets, histories, data.folds, strict=True
    ):
        expected = Trainer(alone, config).fit(train.tensor_dataset(), val.tensor_dataset())
        assert _without_seconds(history) == _without_seconds(expected)
        assert history.best_epoch == expected.best_epoch
        assert torch.equal(net.w_in, alone.w_in) and torch.equal(net.w_rec, alone.w_rec)


# ------------------------------------------------------------------------------ the chain
@pytest.mark.slow
def test_pool_smoke_run_with_folds_and_retraining(
    pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main.py --smoke --folds 2 --retrain-seeds 0 1`` on a tiny pool file: each trial is
    judged by the mean of its 2 folds, the chosen configuration is retrained with seeds 0 and
    1 into ``chosen/seed<k>/``, and ``spiketune evaluate`` scores a retrained 10 or 20 ms
    checkpoint on the 5 ms pool file as the run scored it."""
    from typer.testing import CliRunner

    from spiketune.cli import app
    from spiketune.engine import load_retrained
    from spiketune.snn import load_checkpoint

    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
    main = _load("main")
    results = main.run(["--smoke", "--folds", "2", "--retrain-seeds", "0", "1",
                        "--experiment-dir", str(tmp_path / "experiments"), "--data", str(pool),
                        "--no-report", "-q"])
    raw = load_braille_pool(pool)
    split = stratified_split(raw.labels, (0.8, 0.1, 0.1), seed=0)
    assert results.config["trial_command"].startswith("python3 main_hpo.py --folds 2 ")
    assert results.config["trial_command"].endswith(f"--data {pool.resolve()}")

    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        m = rec.metrics
        assert m["default"] == pytest.approx(statistics.fmean([m["val_fold0"], m["val_fold1"]]))
        assert len(rec.intermediate) == 1
        assert rec.intermediate[0]["default"] == pytest.approx(m["default"])
        extra = load_checkpoint(rec.trial_dir / "best_model.pt").extra
        bin_size = rec.parameters["bin_size"]
        assert extra["folds"] == 2 and extra["pool"] is True
        assert extra["data"] == {"threshold": 1, "channels": "merged", "bin_size": bin_size,
                                 "letters": "reduced", "clip": rec.parameters["clip"]}
        assert extra["n_steps"] == round(1.28 / bin_size) and extra["split_digest"] == (
            split.digest())
        written = json.loads((rec.trial_dir / "result.json").read_text(encoding="utf-8"))
        assert written["split_digest"] == split.digest()
        assert written["default"] == pytest.approx(m["default"])

    best = chosen_trial(results)  # the kept model's trial (ties: fewer spikes)
    assert best is not None and _kept_trial(results) == best.number
    retrained = load_retrained(results.directory)
    assert retrained is not None
    assert [r.seed for r in retrained.runs] == [0, 1]
    assert retrained.trial == best.number and retrained.parameters == best.parameters
    assert retrained.split_digest == split.digest() and retrained.metric == "test"
    assert retrained.mean == pytest.approx(statistics.fmean(r.metrics["test"]
                                                            for r in retrained.runs))
    assert "--folds 1" in (retrained.command or "")

    # the test part of the 5 ms pool file, as its own data file
    _, _, test = raw.split(split)
    test_file = tmp_path / "test_part.pt"
    torch.save(TensorDataset(test.inputs, test.labels), test_file)
    runner = CliRunner()
    weights = []
    for run in retrained.runs:
        assert run.checkpoint == f"chosen/seed{run.seed}/best_model.pt"
        checkpoint = results.directory / run.checkpoint
        assert checkpoint.is_file()
        saved = load_checkpoint(checkpoint)
        assert saved.extra["folds"] == 1 and saved.config.dt == best.parameters["bin_size"]
        result = json.loads((checkpoint.parent / "result.json").read_text(encoding="utf-8"))
        assert result["parameters"]["seed"] == run.seed and "val_fold0" not in result
        assert result["test"] == run.metrics["test"]
        weights.append(saved.network.w_in)

        on_pool = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(pool), "--json"])
        assert on_pool.exit_code == 0, on_pool.output
        scored = json.loads(on_pool.output)
        assert scored["total"] == 7 * PER_CLASS
        assert scored["classes"] == list(BRAILLE_REDUCED_LETTERS)
        on_test = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(test_file),
                                      "--json"])
        assert on_test.exit_code == 0, on_test.output
        assert json.loads(on_test.output)["accuracy"] == pytest.approx(run.metrics["test"])
    assert not torch.equal(weights[0], weights[1])  # each seed draws its own weights


def _kept_trial(results: ExperimentResults) -> int:
    """The trial whose model the experiment kept: the one retrained (ties: fewer spikes)."""
    assert results.directory is not None
    kept = load_best_model(results.directory)
    assert kept is not None and kept.trial_id is not None
    chosen = chosen_trial(results)
    assert chosen is not None and str(chosen.number) == str(kept.trial_id)
    return chosen.number

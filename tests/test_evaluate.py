"""A checkpoint on a data file of its encoding: ``evaluate_checkpoint`` and
``spiketune evaluate``, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from spiketune.cli import app
from spiketune.data import (
    BRAILLE_REDUCED_LETTERS,
    Dataset,
    DatasetInfo,
    load_braille_pool,
    split_parts,
)
from spiketune.errors import DataError
from spiketune.snn import (
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    Trainer,
    evaluate_checkpoint,
    load_checkpoint,
    predict,
    save_checkpoint,
)

STEPS = 40


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_data(n: int = 21, steps: int = STEPS, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Class k fires taxel k (and, for the rest, random sparse events): easy to learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 7
    inputs = (torch.rand(n, steps, 12, generator=g) < 0.03).float()
    inputs[torch.arange(n), ::2, labels] = 1.0
    return inputs, labels


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint trained for two epochs, and a data file of its encoding."""
    inputs, labels = tiny_data()
    net = RecurrentSNN(SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.005, loss_steps=20), seed=0)
    Trainer(net, TrainConfig(epochs=2, batch_size=7, lr=0.01)).fit((inputs, labels))
    checkpoint = save_checkpoint(tmp_path / "net.pt", net,
                                 extra={"classes": list(BRAILLE_REDUCED_LETTERS)})
    data = tmp_path / "data.pt"
    torch.save(TensorDataset(*tiny_data(seed=1)), data)
    return checkpoint, data


def test_evaluate_checkpoint_counts_every_prediction(files: tuple[Path, Path]) -> None:
    checkpoint, data = files
    ds = load_braille_pool(data)
    score = evaluate_checkpoint(checkpoint, ds, batch_size=4)
    net = load_checkpoint(checkpoint).network
    with torch.no_grad():
        guess = predict(net.simulate(ds.inputs).readout, 20)
    assert score.classes == BRAILLE_REDUCED_LETTERS
    assert score.matrix.shape == (7, 7) and score.matrix.dtype == torch.int64
    assert score.matrix.sum(1).tolist() == [3] * 7  # rows: true classes
    assert score.matrix.sum(0).tolist() == torch.bincount(guess, minlength=7).tolist()
    assert score.correct == int((guess == ds.labels).sum()) and score.total == 21
    assert score.accuracy == pytest.approx(score.correct / 21)
    # batches of 4: the positions are of the whole data, not of a batch
    assert list(score.mistakes) == torch.nonzero(guess != ds.labels).flatten().tolist()
    assert len(score.mistakes) == 21 - score.correct


def test_what_cannot_be_scored_is_refused(files: tuple[Path, Path]) -> None:
    """A bad batch size, an empty data set, or tensors without an encoding to check: an error
    naming it, not a torch traceback or an accuracy of 0."""
    from spiketune.errors import ConfigError

    checkpoint, data = files
    ds = load_braille_pool(data)
    for size in (0, -2, 2.5):
        with pytest.raises(ConfigError, match="batch_size"):
            evaluate_checkpoint(checkpoint, ds, batch_size=size)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="empty data set"):
        evaluate_checkpoint(checkpoint, ds.subset([]))
    with pytest.raises(DataError, match=r"spiketune\.data\.Dataset.*got TensorDataset"):
        evaluate_checkpoint(checkpoint, TensorDataset(*tiny_data()))  # type: ignore[arg-type]


def test_mismatched_encoding_lists_every_difference(tmp_path: Path) -> None:
    net = RecurrentSNN(SNNConfig(n_in=24, n_rec=4, n_out=7, dt=0.02, loss_steps=300), seed=0)
    checkpoint = save_checkpoint(tmp_path / "net.pt", net,
                                 extra={"n_steps": 64, "classes": list("ABCDEFG")})
    data = tmp_path / "data.pt"
    torch.save(TensorDataset(*tiny_data()), data)
    with pytest.raises(DataError) as info:
        evaluate_checkpoint(checkpoint, load_braille_pool(data))
    message = str(info.value)
    for part in ("channels: the network has 24 inputs, the data 12",
                 "dt: the network steps 0.02 s, the data 0.005 s",
                 "readout window is 300 steps, the data have 40",
                 "trained on 64 steps", "class order"):
        assert part in message


def test_cli_prints_accuracy_and_confusion_matrix(files: tuple[Path, Path]) -> None:
    checkpoint, data = files
    score = evaluate_checkpoint(checkpoint, load_braille_pool(data))
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f"accuracy {score.accuracy:.4f} ({score.correct}/21)" in result.output
    assert "rows: true class" in result.output
    for name, row in zip(BRAILLE_REDUCED_LETTERS, score.matrix.tolist(), strict=True):
        line = next(ln for ln in result.output.splitlines() if ln.startswith(f"│ {name} "))
        assert [int(v) for v in line.replace("│", " ").split()[1:]] == row

    as_json = CliRunner().invoke(app, ["evaluate", str(checkpoint), "--data", str(data),
                                       "--json"])
    assert as_json.exit_code == 0, as_json.output
    out = json.loads(as_json.output)
    assert out["classes"] == list(BRAILLE_REDUCED_LETTERS)
    assert (out["correct"], out["total"]) == (score.correct, 21)
    assert out["confusion_matrix"] == score.matrix.tolist()


def test_cli_mismatch_and_missing_files_are_one_error(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, _ = files
    runner = CliRunner()
    longer = tmp_path / "short.pt"
    torch.save(TensorDataset(*tiny_data(steps=10)), longer)
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(longer)])
    assert result.exit_code == 1
    assert "error: " in result.output and "readout window is 20 steps" in result.output
    assert "Traceback" not in result.output

    split = tmp_path / "split.pt"
    torch.save(TensorDataset(torch.zeros(7, STEPS, 24), torch.arange(7)), split)
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(split)])
    assert result.exit_code == 1 and "[N, T, 12]" in result.output

    result = runner.invoke(app, ["evaluate", str(tmp_path / "none.pt"), "--data", str(split)])
    assert result.exit_code == 1 and "no such checkpoint file" in result.output
    result = runner.invoke(app, ["evaluate", str(checkpoint)])
    assert result.exit_code == 2 and "--data" in result.output


# ------------------------------------------------------------------------------ finer bins
def five_ms(seed: int, steps: int = 4 * STEPS) -> Dataset:
    inputs, labels = tiny_data(steps=steps, seed=seed)
    return Dataset(DatasetInfo("fine", BRAILLE_REDUCED_LETTERS, 12, steps, 0.005), inputs, labels)


def coarse_checkpoint(path: Path, *, clip: bool, extra: dict[str, Any] | None = None) -> Path:
    """A 20 ms network trained on 5 ms data rebinned to 20 ms (``clip`` as recorded)."""
    trained_on = five_ms(seed=0).rebin(0.02, clip=clip)
    net = RecurrentSNN(SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.02, loss_steps=20), seed=0)
    Trainer(net, TrainConfig(epochs=2, batch_size=7, lr=0.01)).fit(
        (trained_on.inputs, trained_on.labels)
    )
    recorded = {"data": {"bin_size": 0.02, "clip": clip}, "n_steps": trained_on.n_steps,
                "classes": list(BRAILLE_REDUCED_LETTERS)}
    return save_checkpoint(path, net, extra=recorded if extra is None else extra)


@pytest.mark.parametrize("clip", [True, False])
def test_finer_bins_are_rebinned_as_the_checkpoint_records(tmp_path: Path, clip: bool) -> None:
    """5 ms data on a 20 ms network score as the same data rebinned to 20 ms beforehand, with
    the recorded ``clip``: another clip would score otherwise on these data."""
    checkpoint = coarse_checkpoint(tmp_path / "net.pt", clip=clip)
    fine = five_ms(seed=1)
    score = evaluate_checkpoint(checkpoint, fine)
    as_recorded = evaluate_checkpoint(checkpoint, fine.rebin(0.02, clip=clip))
    other_clip = evaluate_checkpoint(checkpoint, fine.rebin(0.02, clip=not clip))
    assert torch.equal(score.matrix, as_recorded.matrix) and score.total == 21
    assert not torch.equal(score.matrix, other_clip.matrix)
    assert fine.n_steps == 4 * STEPS and fine.dt == 0.005  # the data given are left as they are

    # the CLI too, from a 5 ms data file
    data = tmp_path / "fine.pt"
    torch.save(TensorDataset(fine.inputs, fine.labels), data)
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["confusion_matrix"] == score.matrix.tolist()


def test_a_file_already_in_the_network_s_bins_is_refused_saying_it_was_rebinned(
    tmp_path: Path,
) -> None:
    """A file in 20 ms bins is read as 5 ms bins (the pool's encoding) and rebinned: the
    error's step counts are then the rebinned data's, and it says so."""
    checkpoint = coarse_checkpoint(tmp_path / "net.pt", clip=True)
    coarse = five_ms(seed=1).rebin(0.02, clip=True)  # 20 ms bins, read as 5 ms ones
    wrong = Dataset(DatasetInfo("coarse", BRAILLE_REDUCED_LETTERS, 12, coarse.n_steps, 0.005),
                    coarse.inputs, coarse.labels)
    with pytest.raises(DataError, match=(
            rf"the data's {coarse.n_steps} steps of 5 ms, rebinned to the network's 20 ms "
            rf"bins, give {coarse.n_steps // 4} steps")):
        evaluate_checkpoint(checkpoint, wrong)


@pytest.mark.parametrize(
    ("extra", "data_dt"),
    [
        ({}, 0.005),  # no bin size recorded
        ({"data": {"bin_size": 0.01, "clip": True}}, 0.005),  # recorded, but not the net's dt
        ({"data": {"bin_size": 0.02, "clip": True}}, 0.04),  # data coarser than the network
        ({"data": {"bin_size": 0.02, "clip": True}}, 0.003),  # no whole multiple
    ],
    ids=["unrecorded", "other-bin-size", "coarser-data", "no-whole-multiple"],
)
def test_other_step_lengths_stay_a_dt_mismatch(
    tmp_path: Path, extra: dict[str, Any], data_dt: float
) -> None:
    checkpoint = coarse_checkpoint(tmp_path / "net.pt", clip=True, extra=extra)
    inputs, labels = tiny_data(steps=160)
    data = Dataset(DatasetInfo("other", BRAILLE_REDUCED_LETTERS, 12, 160, data_dt), inputs,
                   labels)
    with pytest.raises(DataError, match=f"dt: the network steps 0.02 s, the data {data_dt:g} s"):
        evaluate_checkpoint(checkpoint, data)


def test_cli_compares_several_checkpoints_sample_by_sample(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every retrained seed at once: each one's accuracy and mistakes, their mean ± std, and
    the samples all of them miss."""
    checkpoint, data = files
    inputs, labels = tiny_data()
    net = RecurrentSNN(SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.005, loss_steps=20), seed=1)
    Trainer(net, TrainConfig(epochs=1, batch_size=7, lr=0.01, seed=1)).fit((inputs, labels))
    other = save_checkpoint(tmp_path / "other.pt", net,
                            extra={"classes": list(BRAILLE_REDUCED_LETTERS)})
    ds = load_braille_pool(data)
    scores = [evaluate_checkpoint(c, ds) for c in (checkpoint, other)]
    both = sorted(set(scores[0].mistakes) & set(scores[1].mistakes))
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(checkpoint), str(other), "--data", str(data),
                                 "--mistakes"])
    assert result.exit_code == 0, result.output
    for c, score in zip((checkpoint, other), scores, strict=True):
        assert f"accuracy {score.accuracy:.4f} ({score.correct}/21) of {c}" in result.output
        listed = ", ".join(map(str, score.mistakes)) or "none"
        assert f"misclassified samples: {listed}" in result.output
    mean = (scores[0].accuracy + scores[1].accuracy) / 2
    assert f"2 checkpoints: accuracy {mean:.4f} ± " in result.output
    assert f"misclassified by all 2: {', '.join(map(str, both)) or 'none'}" in result.output
    plain = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(data)])
    assert "misclassified" not in plain.output  # only with --mistakes

    as_json = json.loads(runner.invoke(app, ["evaluate", str(checkpoint), str(other), "--data",
                                             str(data), "--json"]).output)
    assert [row["checkpoint"] for row in as_json["checkpoints"]] == [str(checkpoint), str(other)]
    assert [row["mistakes"] for row in as_json["checkpoints"]] == [list(s.mistakes)
                                                                   for s in scores]
    assert as_json["missed_by_all"] == both
    assert as_json["mean_accuracy"] == pytest.approx(mean)


# ------------------------------------------------------------------------------ --part
def test_cli_scores_one_part_of_the_fixed_split(tmp_path: Path) -> None:
    """``--part test`` scores exactly the test part the example's trials never see (named by
    its digest), not the whole file; a checkpoint trained around another split is warned of."""
    inputs, labels = tiny_data(n=70, seed=1)  # 10 per class: a test part of 7
    data = tmp_path / "pool.pt"
    torch.save(TensorDataset(inputs, labels), data)
    parts = split_parts(load_braille_pool(data))
    net = RecurrentSNN(SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.005, loss_steps=20), seed=0)
    Trainer(net, TrainConfig(epochs=1, batch_size=7, lr=0.01)).fit(tiny_data())
    extra = {"classes": list(BRAILLE_REDUCED_LETTERS), "split_digest": parts.split_digest}
    checkpoint = save_checkpoint(tmp_path / "net.pt", net, extra=extra)
    runner = CliRunner()
    for name in ("test", "val", "train"):
        part = getattr(parts, name)
        expected = evaluate_checkpoint(checkpoint, part)
        result = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(data),
                                     "--part", name, "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert (out["part"], out["split_digest"]) == (name, parts.split_digest)
        assert out["total"] == len(part.labels) < 70
        assert out["confusion_matrix"] == expected.matrix.tolist()
        assert out["mistakes"] == list(expected.mistakes)  # positions within the part
    text = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(data), "--part",
                               "test"]).output
    assert f"(test part, 7 samples, split {parts.split_digest[:16]}…)" in text
    assert "warning" not in text
    whole = json.loads(runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(data),
                                           "--json"]).output)
    assert (whole["part"], whole["split_digest"], whole["total"]) == ("all", None, 70)

    other = save_checkpoint(tmp_path / "other.pt", net,
                            extra={**extra, "split_digest": "0" * 64})
    warned = runner.invoke(app, ["evaluate", str(other), "--data", str(data), "--part", "test"])
    assert warned.exit_code == 0, warned.output
    assert "warning: " in warned.output
    assert "trained around split 0000000000000000…" in warned.output
    bad = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(data),
                              "--part", "tst"])
    assert bad.exit_code == 2 and "--part" in bad.output
    # A file too small to have a test part is refused, not scored at 0 % of no samples.
    small = tmp_path / "small.pt"
    torch.save(TensorDataset(inputs[:3], labels[:3]), small)
    empty = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(small),
                                "--part", "test"])
    assert empty.exit_code == 1 and "accuracy" not in empty.output
    assert "its test part holds no samples (the file has 3" in " ".join(empty.output.split())


def test_cli_encodes_an_event_file_as_each_checkpoint_records(tmp_path: Path) -> None:
    """``--data`` may be a Braille event file: each checkpoint's recorded encoding
    (``extra["data"]``: threshold, channels, bins) makes its tensors, so a network of the
    24-channel split encoding is scored on the archive's own file, by part of the fixed split
    as its training saw it; a checkpoint that does not record its encoding is refused."""
    import pickle

    from test_data_braille_pool import th1_records

    from spiketune.data import BRAILLE_TASK_DEFAULTS, load_braille_encoding

    events = tmp_path / "data_braille_letters_th1"
    events.write_bytes(pickle.dumps(th1_records(per_letter=10), protocol=2))
    runner = CliRunner()
    for channels, n_in in (("split", 24), ("merged", 12)):
        options = {**BRAILLE_TASK_DEFAULTS, "threshold": 1, "channels": channels}
        encoded = load_braille_encoding(options, events, download=False)
        parts = split_parts(encoded)
        net = RecurrentSNN(SNNConfig(n_in=n_in, n_rec=16, n_out=7, dt=0.02), seed=0)
        Trainer(net, TrainConfig(epochs=1, batch_size=7, lr=0.01)).fit(
            (parts.train.inputs, parts.train.labels))
        checkpoint = save_checkpoint(
            tmp_path / f"{channels}.pt", net,
            extra={"data": options, "split_digest": parts.split_digest,
                   "classes": list(encoded.classes)})
        expected = evaluate_checkpoint(checkpoint, parts.test)
        result = runner.invoke(app, ["evaluate", str(checkpoint), "--data", str(events),
                                     "--part", "test", "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["split_digest"] == parts.split_digest
        assert out["total"] == len(parts.test.labels) == 7
        assert out["confusion_matrix"] == expected.matrix.tolist()
        assert "warning" not in result.output
    both = runner.invoke(app, ["evaluate", str(tmp_path / "split.pt"),
                               str(tmp_path / "merged.pt"), "--data", str(events), "--json"])
    assert both.exit_code == 0, both.output
    assert [r["total"] for r in json.loads(both.output)["checkpoints"]] == [70, 70]

    bare = save_checkpoint(tmp_path / "bare.pt", net)
    refused = runner.invoke(app, ["evaluate", str(bare), "--data", str(events)])
    assert refused.exit_code == 2
    assert "--data" in refused.output and "extra['data']" in refused.output
    # a recorded encoding that lacks keys (a template's own options only) is one error
    partial = save_checkpoint(tmp_path / "partial.pt", net,
                              extra={"data": {"task": "full", "bin_size": 0.02, "clip": False}})
    refused = runner.invoke(app, ["evaluate", str(partial), "--data", str(events)])
    assert refused.exit_code == 1, refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert "error: --data" in refused.output and "lacks threshold, channels, letters" in (
        " ".join(refused.output.split()))

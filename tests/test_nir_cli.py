"""`spiketune export-model --format nir --for ...`, in-process: the importer profile, the
refusal naming the approximation, and the accuracy of the model next to its export's."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from spiketune.cli import app
from spiketune.nir import read
from spiketune.snn import RecurrentSNN, SNNConfig, save_checkpoint

torch.set_num_threads(1)


def _experiment(tmp_path: Path, **kw: Any) -> Path:
    exp = tmp_path / "exp"
    (exp / "best_model").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"name": "nir-cli"}))
    # Steps of 5 ms, as the test file's (the check runs the model on data of its encoding).
    cfg = SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.005, tau_mem=10e-3, tau_out=15e-3,
                    gain_in=3.0, **kw)
    save_checkpoint(exp / "best_model" / "best_model.pt", RecurrentSNN(cfg, seed=4))
    return exp


def _test_file(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(21, 30, 12, generator=g) < 0.2).float()
    path = tmp_path / "test.pt"
    torch.save(TensorDataset(x, torch.arange(21) % 7), path)
    return path


def test_export_for_an_importer_reports_both_accuracies(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, reset="subtract")
    runner = CliRunner()
    out = tmp_path / "rp.nir"
    refused = runner.invoke(app, ["export-model", str(exp), "--for", "rockpool", "-o", str(out)])
    assert refused.exit_code != 0 and "approximate" in refused.output and not out.exists()
    result = runner.invoke(app, [
        "export-model", str(exp), "--for", "rockpool", "-o", str(out), "--approximate",
        "synapse", "--approximate", "reset", "--data", str(_test_file(tmp_path)),
    ])
    assert result.exit_code == 0, result.output
    assert read(out).metadata["target"] == "rockpool"
    assert "approximations: synaptic current" in result.output
    assert "accuracy on 21 samples: model" in result.output and "--for rockpool" in result.output
    exact = runner.invoke(app, ["export-model", str(exp), "-o", str(tmp_path / "g.nir"),
                                "--data", str(_test_file(tmp_path))])
    assert exact.exit_code == 0, exact.output
    assert "same prediction on 100.0%" in exact.output and "approximations: none" in exact.output


@pytest.mark.parametrize("importer", ["snntorch", "norse"])
def test_export_for_zero_reset_importers(tmp_path: Path, importer: str) -> None:
    exp = _experiment(tmp_path, reset="zero")
    out = tmp_path / f"{importer}.nir"
    result = CliRunner().invoke(app, ["export-model", str(exp), "--for", importer, "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = read(out).metadata
    assert meta["target"] == importer and meta["approximations"] == "none"
    assert float(meta["dt"]) == {"snntorch": 1e-4, "norse": 1e-3}[importer]
    usage = CliRunner().invoke(app, ["export-model", str(exp), "--for", "loihi"])
    assert usage.exit_code == 2


_SUMMARY = re.compile(
    r"accuracy on (\d+) samples: model ([\d.]+), exported --for (\w+) ([\d.]+) "
    r"\(same prediction on ([\d.]+)%; approximations: (.*)\)$",
    re.MULTILINE,
)


def _printed(output: str) -> tuple[int, str, str, str, str, str]:
    """The figures of the check's summary line, as printed."""
    found = _SUMMARY.search(output)
    assert found is not None, output
    n, model, target, exported, agreement, approximations = found.groups()
    return int(n), model, target, exported, agreement, approximations


def _export(exp: Path, out: Path, data: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(out), "--data",
                                      str(data), *args])
    assert result.exit_code == 0, result.output
    return result


def test_checked_exports_are_recorded_for_the_report(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, reset="zero", refractory_steps=2)
    data = _test_file(tmp_path)
    generic = _export(exp, tmp_path / "g.nir", data, "--approximate", "refractory")
    exports = exp / "best_model" / "exports.json"
    assert f"recorded the check in {exports}" in generic.output.replace("\n", "")
    records = json.loads(exports.read_text(encoding="utf-8"))
    assert len(records) == 1
    rec = records[0]
    n, model, target, exported, agreement, approximations = _printed(generic.output)
    assert rec["file"] == str((tmp_path / "g.nir").resolve())
    assert rec["data"] == str(data.resolve())
    assert (rec["target"], rec["samples"], rec["approximations"]) == (target, n, approximations)
    assert rec["target"] == "generic" and rec["samples"] == 21
    assert "refractory period of 2 step(s) dropped" in rec["approximations"]
    assert f"{rec['model_accuracy']:.4f}" == model
    assert f"{rec['export_accuracy']:.4f}" == exported
    assert f"{100 * rec['agreement']:.1f}" == agreement
    checked = datetime.fromisoformat(rec["checked_at"])
    assert checked.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - checked) < timedelta(minutes=10)

    snn = _export(exp, tmp_path / "s.nir", data, "--for", "snntorch", "--approximate",
                  "refractory")
    records = json.loads(exports.read_text(encoding="utf-8"))
    assert [r["target"] for r in records] == ["generic", "snntorch"]
    assert records[0] == rec  # the first record is kept as it was
    assert f"{records[1]['export_accuracy']:.4f}" == _printed(snn.output)[3]
    assert records[1]["file"] == str((tmp_path / "s.nir").resolve())

    # the same file written again: its record is replaced, not duplicated
    _export(exp, tmp_path / "g.nir", data, "--approximate", "refractory")
    records = json.loads(exports.read_text(encoding="utf-8"))
    assert [Path(r["file"]).name for r in records] == ["s.nir", "g.nir"]
    assert not [p.name for p in exports.parent.iterdir() if p.name.endswith(".tmp")]


def test_an_export_without_data_records_nothing(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(tmp_path / "g.nir")])
    assert result.exit_code == 0, result.output
    assert not (exp / "best_model" / "exports.json").exists()


def test_a_bad_data_file_is_refused_before_the_export_is_written(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    out = tmp_path / "g.nir"
    out.write_bytes(b"an earlier export")
    result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(out), "--data",
                                      str(tmp_path / "missing.pt")])
    assert result.exit_code == 1 and "missing.pt" in result.output
    assert "wrote" not in result.output
    assert out.read_bytes() == b"an earlier export"  # left as it was


def test_export_check_data_are_encoded_as_the_model_was_trained(tmp_path: Path) -> None:
    """A model trained on 10 ms bins is checked on the 5 ms file rebinned as it was trained
    (the accuracy ``spiketune evaluate`` gives); a file of another encoding is refused,
    naming --data and the difference, before the export is written."""
    from spiketune.data import load_braille_pool
    from spiketune.snn import evaluate_checkpoint

    exp = tmp_path / "exp"
    (exp / "best_model").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"name": "nir-cli"}))
    cfg = SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.01, tau_mem=20e-3, tau_out=30e-3,
                    gain_in=3.0)
    checkpoint = save_checkpoint(exp / "best_model" / "best_model.pt",
                                 RecurrentSNN(cfg, seed=4),
                                 extra={"data": {"bin_size": 0.01, "clip": False},
                                        "n_steps": 15})
    data = _test_file(tmp_path)  # 30 steps of 5 ms
    _, model, *_ = _printed(_export(exp, tmp_path / "g.nir", data).output)
    assert model == f"{evaluate_checkpoint(checkpoint, load_braille_pool(data)).accuracy:.4f}"

    other = tmp_path / "ten_channels.pt"
    torch.save(TensorDataset(torch.zeros(7, 30, 10), torch.arange(7)), other)
    out = tmp_path / "keep.nir"
    out.write_bytes(b"an earlier export")
    refused = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(out), "--data",
                                       str(other)])
    assert refused.exit_code == 1, refused.output
    assert f"--data {other}" in refused.output and "channels" in refused.output
    assert out.read_bytes() == b"an earlier export"


@pytest.mark.parametrize("text", ["[{broken", '{"file": "g.nir"}', "[1, 2]", "\xff\xfe"])
def test_a_corrupt_record_file_is_moved_aside_not_lost(tmp_path: Path, text: str) -> None:
    exp = _experiment(tmp_path)
    exports = exp / "best_model" / "exports.json"
    exports.write_bytes(text.encode("latin-1"))
    result = _export(exp, tmp_path / "g.nir", _test_file(tmp_path))
    assert "warning:" in result.output and "could not be parsed" in result.output
    aside = list(exports.parent.glob("exports.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == text.encode("latin-1")
    assert re.fullmatch(r"exports\.json\.corrupt-\d{8}T\d{6}Z", aside[0].name)
    records = json.loads(exports.read_text(encoding="utf-8"))
    assert [r["target"] for r in records] == ["generic"]


def test_a_failed_write_keeps_the_old_records(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from spiketune.nir import ExportCheck
    from spiketune.nir import _export as export_module

    check = ExportCheck(target="generic", model_accuracy=0.5, export_accuracy=0.5,
                        agreement=1.0, samples=4, approximations="none")
    exports, moved = export_module.record_export_check(tmp_path, check, tmp_path / "a.nir",
                                                       tmp_path / "d.pt")
    assert moved is None
    before = exports.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module.os, "replace", fail)
    with pytest.raises(OSError):
        export_module.record_export_check(tmp_path, check, tmp_path / "b.nir", tmp_path / "d.pt")
    assert exports.read_bytes() == before
    assert sorted(p.name for p in exports.parent.iterdir()) == ["exports.json", "exports.json.lock"]


def test_checks_recorded_at_once_are_all_kept(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two export commands finishing together: each reads the list, adds its record and writes
    it back. The reads are slowed so that, without the lock, every writer would read the list
    before any other wrote, and all but one record would be lost."""
    import threading
    import time

    from spiketune.nir import ExportCheck
    from spiketune.nir import _export as export_module

    parse = export_module._parse_export_checks

    def slow_parse(path: Path) -> Any:
        records = parse(path)
        time.sleep(0.05)
        return records

    monkeypatch.setattr(export_module, "_parse_export_checks", slow_parse)
    check = ExportCheck(target="generic", model_accuracy=0.5, export_accuracy=0.5,
                        agreement=1.0, samples=4, approximations="none")
    writers = [threading.Thread(target=export_module.record_export_check,
                                args=(tmp_path, check, tmp_path / f"{i}.nir", tmp_path / "d.pt"))
               for i in range(6)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    records = export_module.load_export_checks(tmp_path)
    assert sorted(Path(r["file"]).name for r in records) == [f"{i}.nir" for i in range(6)]


def test_an_export_replaces_an_earlier_export_and_nothing_else(tmp_path: Path) -> None:
    """``-o`` onto the experiment's own checkpoint, or onto a user's file, used to replace it
    with the export: the trained model or the file was lost. Only a NIR file is replaced."""
    exp = _experiment(tmp_path)
    checkpoint = exp / "best_model" / "best_model.pt"
    before = checkpoint.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for target in (checkpoint, notes):
        result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(target)])
        assert result.exit_code == 1, result.output
        assert "exists and is not a NIR file" in result.output and "wrote" not in result.output
    assert checkpoint.read_bytes() == before and notes.read_text() == "mine"
    again = tmp_path / "g.nir"
    for _ in range(2):  # exporting again replaces the earlier export
        result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(again)])
        assert result.exit_code == 0, result.output
    assert read(again).nodes


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--dt", "0", "must be a number of seconds > 0 (got 0)"),
    ("--dt", "nan", "must be a number of seconds > 0 (got nan)"),
    ("--approximate", "bogus", "'bogus': not one of adaptation"),
])
def test_a_bad_option_value_is_a_usage_error(tmp_path: Path, option: str, value: str,
                                             message: str) -> None:
    exp = _experiment(tmp_path)
    result = CliRunner().invoke(app, ["export-model", str(exp), "-o", str(tmp_path / "g.nir"),
                                      option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output and message in " ".join(result.output.split())
    assert not (tmp_path / "g.nir").exists()

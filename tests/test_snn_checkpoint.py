"""Checkpoints rebuild the network exactly and refuse other architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spiketune.errors import CheckpointError
from spiketune.snn import (
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def config(**kw: object) -> SNNConfig:
    params: dict[str, object] = {
        "n_in": 4, "n_rec": 8, "n_out": 3, "neuron": "alif", "tau_mem": 0.03, "feedback": "random",
    }
    params.update(kw)
    return SNNConfig(**params)


def test_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    net = RecurrentSNN(config(), seed=4)
    x = (torch.rand(2, 20, 4) < 0.4).float()
    y = torch.tensor([0, 2])
    history = Trainer(net, TrainConfig(epochs=1, batch_size=2)).fit((x, y))
    path = save_checkpoint(tmp_path / "net.pt", net, train_config=TrainConfig(epochs=1),
                           history=history, extra={"letters": ["A", "E"]})
    raw = torch.load(path, weights_only=True)  # loadable without executing anything
    assert raw["format"] == "spiketune.snn/1"
    ck = load_checkpoint(path)
    assert ck.config == net.config and ck.train_config == TrainConfig(epochs=1)
    assert ck.extra == {"letters": ["A", "E"]} and ck.history[0]["epoch"] == 1
    with torch.no_grad():
        assert torch.equal(ck.network.simulate(x).y, net.simulate(x).y)
    assert torch.equal(ck.network.feedback, net.feedback)


def test_different_architecture_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "net.pt", RecurrentSNN(config(), seed=0))
    other = RecurrentSNN(config(n_rec=9, neuron="lif"), seed=0)
    with pytest.raises(CheckpointError) as info:
        load_weights(other, path)
    assert "n_rec: checkpoint has 8, network has 9" in str(info.value)
    assert "neuron: checkpoint has 'alif', network has 'lif'" in str(info.value)
    with pytest.raises(CheckpointError, match="recurrent"):
        load_checkpoint(path, expect=config(recurrent=False))
    # same architecture, other time constants: the weights load, the dynamics stay the net's
    same = RecurrentSNN(config(tau_mem=0.05), seed=1)
    load_weights(same, path)
    assert same.config.tau_mem == 0.05


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a spiketune SNN checkpoint"):
        load_checkpoint(plain)


def test_float64_checkpoint_keeps_its_dtype(tmp_path: Path) -> None:
    net = RecurrentSNN(config(), seed=0, dtype=torch.float64)
    ck = load_checkpoint(save_checkpoint(tmp_path / "n.pt", net))
    assert ck.network.w_in.dtype == torch.float64


class _RunsCode:
    """Pickles as a call of os.system: what a malicious checkpoint holds."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("true",))


def test_a_refused_file_is_never_met_with_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "spiketune.snn/1", "config": _RunsCode()}, evil)
    module = tmp_path / "module.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, module)
    for path, asked_for in ((evil, "system"), (module, "torch.nn.modules.linear.Linear")):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "refused" in message and asked_for in message and str(path) in message
        assert "weights_only" not in message  # torch's advice to set it to False is dropped
        with pytest.raises(CheckpointError) as err:
            load_weights(RecurrentSNN(config(), seed=0), path)
        assert "weights_only" not in str(err.value)


def test_extra_values_that_would_not_load_back_are_refused_before_saving(tmp_path: Path) -> None:
    """A NumPy number or a path in ``extra`` would write a file that ``load_checkpoint``
    refuses, and the weights with it: refused when saving, each value named by its place."""
    import numpy as np

    from spiketune.errors import ConfigError

    net = RecurrentSNN(config(), seed=0)
    path = tmp_path / "net.pt"
    with pytest.raises(ConfigError) as info:
        save_checkpoint(path, net, extra={"acc": np.float64(0.9), "files": [Path("a")],
                                          "ok": {"x": 1.0}})
    assert [p.field for p in info.value.problems] == ["extra.acc", "extra.files[0]"]
    assert "numpy.float64" in str(info.value) and "float(x)" in str(info.value)
    assert not path.exists()
    kept = {"ok": (1, 2.0, "a", None, True), 3: [torch.ones(2)], "nested": {"k": ["v"]}}
    loaded = load_checkpoint(save_checkpoint(path, net, extra=kept)).extra
    assert loaded["ok"] == kept["ok"] and loaded["nested"] == kept["nested"]
    assert torch.equal(loaded[3][0], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"directory .*missing.* does not exist"):
        save_checkpoint(tmp_path / "missing" / "net.pt", net)


def test_a_training_record_of_the_wrong_type_is_refused_by_name(tmp_path: Path) -> None:
    from spiketune.errors import ConfigError

    net = RecurrentSNN(config(), seed=0)
    path = tmp_path / "net.pt"
    with pytest.raises(ConfigError) as info:
        save_checkpoint(path, net, train_config={"epochs": 1},  # type: ignore[arg-type]
                        history=[{"epoch": 1}])  # type: ignore[arg-type]
    assert [(p.field, p.value) for p in info.value.problems] == [
        ("train_config", "dict"), ("history", "list")]
    with pytest.raises(ConfigError, match=r"extra: a dict or None \(got 'list'\)"):
        save_checkpoint(path, net, extra=[1])  # type: ignore[arg-type]
    assert not path.exists()


def test_what_cannot_be_saved_or_loaded_back_is_refused_without_debris(tmp_path: Path) -> None:
    """A half-precision network would save a file that no load accepts, and a directory is
    not a file name: both refused, with nothing left behind."""
    from spiketune.errors import ConfigError

    net = RecurrentSNN(config(), seed=0)
    with pytest.raises(ConfigError, match=r"float32 or float64: convert it first"):
        save_checkpoint(tmp_path / "half.pt", net.half())
    taken = tmp_path / "taken"
    taken.mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        save_checkpoint(taken, RecurrentSNN(config(), seed=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

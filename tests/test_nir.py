"""spiketune.nir: export round trip through a file, reading back, spiketune's own NIR simulator,
and snnTorch."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from spiketune.errors import CheckpointError, ExportError, StorageError
from spiketune.nir import (
    APPROXIMATIONS,
    Simulation,
    export,
    export_best_model,
    read,
    simulate,
    to_graph,
)
from spiketune.snn import RecurrentSNN, SNNConfig, predict, save_checkpoint

torch.set_num_threads(1)


def _net(seed: int = 1, dtype: torch.dtype = torch.float64, **kw: object) -> RecurrentSNN:
    base = {"n_in": 5, "n_rec": 20, "n_out": 4, "tau_mem": 10e-3, "tau_out": 15e-3, "gain_in": 3.0}
    net = RecurrentSNN(SNNConfig(**{**base, **kw}), seed=seed, dtype=dtype)  # type: ignore[arg-type]
    if net.b_out is not None:
        with torch.no_grad():
            net.b_out.copy_(torch.linspace(-0.5, 0.5, net.config.n_out))
    return net


def _spikes_in(n: int = 8, steps: int = 60, channels: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, steps, channels, generator=g) < 0.3).to(torch.float64)


def _hidden_name(reset: str) -> str:
    return "hidden.spike" if reset == "subtract" else "hidden.lif"


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_file_round_trip_reproduces_spikes_and_readout(
    tmp_path: Path, reset: str, recurrent: bool, bias: bool
) -> None:
    net = _net(reset=reset, recurrent=recurrent, readout_bias=bias)
    x = _spikes_in()
    with torch.no_grad():
        tr = net.simulate(x)
    assert 0.05 < float(tr.z.mean()) < 0.6  # the check means something: neurons do fire
    path = export(net, tmp_path / "net.nir")
    graph = read(path)
    names = {"hidden.membrane", "hidden.spike"} if reset == "subtract" else {"hidden.lif"}
    if not recurrent and reset == "zero":
        names = {"hidden"}
    run = simulate(graph, x, record=names)
    z = run.records[
        "hidden.spike" if reset == "subtract" else ("hidden.lif" if recurrent else "hidden")
    ]
    assert np.array_equal(z, tr.spikes.numpy())
    np.testing.assert_allclose(run.output, tr.readout.numpy(), rtol=0, atol=1e-9)
    assert torch.equal(predict(torch.from_numpy(run.output)), predict(tr.readout))
    if reset == "subtract":  # the membrane itself matches, reset by subtraction included
        np.testing.assert_allclose(run.records["hidden.membrane"], tr.v.transpose(0, 1), atol=1e-9)


def test_graph_layout_and_parameter_mapping() -> None:
    net = _net(reset="zero", tau_mem=20e-3, tau_out=5e-3, dt=1e-3)
    g = to_graph(net)
    assert list(g.nodes) == ["input", "w_in", "hidden", "w_out", "readout", "output"]
    assert isinstance(g.nodes["w_in"], nir.Linear) and isinstance(g.nodes["w_out"], nir.Affine)
    hidden = g.nodes["hidden"]
    assert isinstance(hidden, nir.NIRGraph)
    assert set(hidden.edges) == {
        ("input", "lif"),
        ("lif", "w_rec"),
        ("w_rec", "lif"),
        ("lif", "output"),
    }
    lif = hidden.nodes["lif"]
    alpha = net.config.decay_mem
    # forward Euler at dt: v <- v + dt/tau (-v + r I) == alpha v + I
    np.testing.assert_allclose(1 - 1e-3 / lif.tau, alpha, rtol=1e-12)
    np.testing.assert_allclose(lif.r * 1e-3 / lif.tau, 1.0, rtol=1e-12)
    assert np.all(lif.v_reset == 0) and np.all(lif.v_leak == 0) and np.all(lif.v_threshold == 1)
    np.testing.assert_allclose(
        hidden.nodes["w_rec"].weight, net.recurrent_weight().detach().numpy()
    )
    li = g.nodes["readout"]
    np.testing.assert_allclose(1 - 1e-3 / li.tau, net.config.decay_out, rtol=1e-12)
    assert float(g.metadata["dt"]) == 1e-3 and g.metadata["reset"] == "zero"


def test_dt_rescales_time_constants_but_not_the_dynamics(tmp_path: Path) -> None:
    net = _net()
    x = _spikes_in(n=4, steps=40)
    a = simulate(to_graph(net), x)
    graph = nir.read(export(net, tmp_path / "fine.nir", dt=1e-4))
    assert float(graph.metadata["dt"]) == 1e-4
    b = simulate(graph, x)  # dt from the metadata
    np.testing.assert_allclose(a.output, b.output, atol=1e-9)
    with pytest.raises(ExportError, match="dt"):
        to_graph(net, dt=0.0)


def test_unexpressible_models_are_refused_with_the_way_out() -> None:
    with pytest.raises(ExportError) as err:
        to_graph(_net(neuron="alif", tau_adapt=0.2))
    assert "adaptation" in str(err.value) and "ALIF" in str(err.value)
    with pytest.raises(ExportError) as err:
        to_graph(_net(refractory_steps=2))
    assert "refractory" in str(err.value) and "refractory_steps=2" in str(err.value)
    with pytest.raises(ExportError, match="no NIR converter"):
        to_graph(torch.nn.Linear(3, 2))
    with pytest.raises(ExportError, match="unknown approximation"):
        to_graph(_net(), approximate={"everything"})
    assert set(APPROXIMATIONS) == {"adaptation", "refractory", "reset", "synapse"}


def test_approximate_none_means_none_and_other_values_are_refused() -> None:
    """``approximate=None`` (an optional setting passed on) is no approximation at all; a value
    that is not names of approximations is refused naming ``approximate``, not a TypeError."""
    net = _net(reset="zero")
    assert to_graph(net, approximate=None).metadata["approximations"] == "none"
    with pytest.raises(ExportError, match="reset"):
        to_graph(_net(reset="subtract"), target="snntorch", approximate=None)
    for bad in (5, [1, 2]):
        with pytest.raises(ExportError, match=r"approximate=.*expected names of approximations"):
            to_graph(net, approximate=bad)  # type: ignore[arg-type]


def test_approximations_write_the_simpler_network() -> None:
    x = _spikes_in(n=4, steps=40)
    plain = simulate(to_graph(_net(reset="zero")), x).output
    alif = _net(reset="zero", neuron="alif", tau_adapt=0.2)
    g = to_graph(alif, approximate={"adaptation"})
    assert "adaptive threshold" in g.metadata["approximations"]
    np.testing.assert_allclose(simulate(g, x).output, plain, atol=1e-12)
    refr = to_graph(_net(reset="zero", refractory_steps=3), approximate=["refractory"])
    np.testing.assert_allclose(simulate(refr, x).output, plain, atol=1e-12)
    # subtract written as a LIF node resetting to 0: identical to the zero-reset network
    as_lif = to_graph(_net(reset="subtract"), approximate={"reset"})
    assert isinstance(as_lif.nodes["hidden"].nodes["lif"], nir.LIF)
    np.testing.assert_allclose(simulate(as_lif, x).output, plain, atol=1e-12)
    exact = simulate(to_graph(_net(reset="subtract")), x).output
    assert not np.allclose(exact, plain)  # and the two resets really differ


def test_simulator_semantics_on_a_hand_made_graph() -> None:
    # one LIF neuron, constant input: v = 0.5, 0.75, 0.875, ... with alpha 0.5 and r dt/tau = 1
    dt, tau = 1e-3, 2e-3
    lif = nir.LIF(
        tau=np.array([tau]),
        r=np.array([tau / dt]),
        v_leak=np.zeros(1),
        v_threshold=np.array([0.8]),
        v_reset=np.zeros(1),
    )
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1])),
            "lif": lif,
            "output": nir.Output(output_type=np.array([1])),
        },
        edges=[("input", "lif"), ("lif", "output")],
    )
    out = simulate(g, np.full((1, 6, 1), 0.5), dt=dt).output[0, :, 0]
    assert out.tolist() == [0, 0, 1, 0, 0, 1]  # 0.5, 0.75, 0.875 -> fire, reset, again
    with pytest.raises(ExportError, match="dt"):
        simulate(g, np.zeros((1, 2, 1)))  # no dt in metadata, none given


def test_cuba_lif_is_simulated_with_its_synapse() -> None:
    dt = 1e-3
    cuba = nir.CubaLIF(
        tau_syn=np.array([2e-3]),
        tau_mem=np.array([2e-3]),
        r=np.array([2.0]),
        v_leak=np.zeros(1),
        v_threshold=np.array([10.0]),
        w_in=np.array([2.0]),
    )
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1])),
            "n": cuba,
            "output": nir.Output(output_type=np.array([1])),
        },
        edges=[("input", "n"), ("n", "output")],
    )
    x = np.zeros((1, 3, 1))
    x[0, 0, 0] = 1.0
    run = simulate(g, x, dt=dt, record=["n"])
    # syn: 1.0, 0.5, 0.25; v: 0.5*(0+2*1)=1.0, 0.5*1+0.5*1=1.0, 0.5+0.25=0.75 -> no spike
    assert run.output.sum() == 0


def test_snntorch_reads_the_graph_and_agrees(tmp_path: Path) -> None:
    pytest.importorskip("nirtorch")
    snn_import = pytest.importorskip("snntorch.import_nir")
    net = _net(reset="zero", dtype=torch.float32)
    x = _spikes_in().float()
    with torch.no_grad():
        tr = net.simulate(x)
    # snnTorch's importer assumes a step of 1e-4 s: export the same dynamics at that dt
    graph = nir.read(export(net, tmp_path / "snntorch.nir", dt=1e-4))
    li = graph.nodes["readout"]
    # snnTorch 1.0 maps no nir.LI node: run it up to the readout's Affine, then the LI node's
    # own forward-Euler equation on snnTorch's output
    del graph.nodes["readout"]
    graph.edges = [e for e in graph.edges if "readout" not in e] + [("w_out", "output")]
    with contextlib.redirect_stdout(io.StringIO()):
        module = snn_import.import_from_nir(graph)
    state = None
    currents, spikes = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = module(x[:, t]) if state is None else module(x[:, t], state)
            currents.append(out)
            spikes.append(state["hidden"]["lif_prev_output"])
    z = torch.stack(spikes, 1)
    assert float(z.mean()) > 0.05
    assert torch.equal(z, tr.spikes)
    decay = 1 - 1e-4 / li.tau
    gain = li.r * 1e-4 / li.tau
    u = torch.stack(currents, 1).double().numpy()
    y = np.zeros_like(u)
    for t in range(u.shape[1]):
        y[:, t] = (decay * y[:, t - 1] if t else 0.0) + gain * u[:, t]
    np.testing.assert_allclose(y, tr.readout.double().numpy(), atol=1e-4)
    assert torch.equal(predict(torch.from_numpy(y)), predict(tr.readout))


def test_export_best_model_finds_the_experiment_by_name_as_the_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "experiments"
    exp = root / "braille-1a2b3c4d"
    (exp / "best_model").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps(
        {"id": "braille-1a2b3c4d", "name": "braille", "created": "2026-12-08T00:00:00"}))
    save_checkpoint(exp / "best_model" / "best_model.pt", _net(dtype=torch.float32))
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(root))
    for ref in ("braille", "braille-1a2b", "braille-1a2b3c4d"):
        out = export_best_model(ref, tmp_path / f"{ref}.nir")
        assert read(out).nodes
    with pytest.raises(StorageError, match="no experiment 'nothing'"):
        export_best_model("nothing", tmp_path / "n.nir")


def test_export_best_model(tmp_path: Path) -> None:
    net = _net(dtype=torch.float32)
    exp = tmp_path / "exp"
    (exp / "best_model").mkdir(parents=True)
    save_checkpoint(exp / "best_model" / "best_model.pt", net)
    out = export_best_model(exp, tmp_path / "best.nir")
    x = _spikes_in(n=3, steps=30).float()
    with torch.no_grad():
        ref = net.simulate(x).readout.double().numpy()
    np.testing.assert_allclose(simulate(out, x).output, ref, atol=1e-4)
    with pytest.raises(ExportError, match="format"):
        export_best_model(exp, tmp_path / "x.onnx", format="onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no best model"):
        export_best_model(tmp_path / "empty", tmp_path / "y.nir")
    # an export replaces an earlier export, never another file: not the checkpoint it
    # reads, not a file of the user's own
    checkpoint = exp / "best_model" / "best_model.pt"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for other in (checkpoint, notes):
        before = other.read_bytes()
        with pytest.raises(ExportError, match="exists and is not a NIR file"):
            export_best_model(exp, other)
        assert other.read_bytes() == before
    assert export_best_model(exp, out) == out  # exporting again replaces its own file


def test_read_and_write_failures_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        read(tmp_path / "missing.nir")
    with pytest.raises(ExportError, match="is a directory"):
        read(tmp_path)
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not an HDF5 file")
    with pytest.raises(ExportError, match="not a readable NIR file"):
        read(junk)
    with pytest.raises(ExportError, match=r"junk\.nir"):
        simulate(junk, np.zeros((1, 2, 5)))
    # a file where the directory should be: one ExportError naming the path, no OSError
    with pytest.raises(ExportError, match="cannot write") as err:
        export(_net(), junk / "net.nir")
    assert str(junk) in str(err.value)


def test_simulate_returns_a_simulation(tmp_path: Path) -> None:
    path = export(_net(), tmp_path / "net.nir")
    run = simulate(path, _spikes_in(n=2, steps=5), record=["hidden.spike"])
    assert isinstance(run, Simulation)
    assert run.output.shape == (2, 5, 4) and run.records["hidden.spike"].shape == (2, 5, 20)

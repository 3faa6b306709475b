"""spiketune's NIR exports loaded whole by the real importers (snnTorch, Rockpool, Norse) and
run on the same input: the same spikes and readout as spiketune's network where the profile is
exact, the documented approximation where it is not.

Each importer's test is skipped, naming the package, when that package is absent."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
import torch

from spiketune.errors import ConfigError, ExportError
from spiketune.nir import check_export, export, read, simulate, to_graph, to_network
from spiketune.nir._profiles import PROFILES
from spiketune.snn import L2MU, RecurrentSNN, SNNConfig, predict

torch.set_num_threads(1)


def _net(seed: int = 1, **kw: Any) -> RecurrentSNN:
    base = {"n_in": 5, "n_rec": 20, "n_out": 4, "tau_mem": 10e-3, "tau_out": 15e-3, "gain_in": 3.0}
    net = RecurrentSNN(SNNConfig(**{**base, **kw}), seed=seed, dtype=torch.float32)
    if net.b_out is not None:
        with torch.no_grad():
            net.b_out.copy_(torch.linspace(-0.5, 0.5, net.config.n_out))
    return net


def _spikes_in(n: int = 6, steps: int = 50, channels: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, steps, channels, generator=g) < 0.3).float()


def _importer(module: str) -> Any:
    try:
        return pytest.importorskip(module, reason=f"{module} is not installed (pip install "
                                   "-e '.[dev]' installs it)")
    except ImportError as err:  # pragma: no cover - a broken install, not an absent one
        pytest.skip(f"{module} cannot be imported: {err}")


# ------------------------------------------------------------------------------ snnTorch
def _run_snntorch(path: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden spikes and readout membrane, (B, T, n), of the file as snnTorch runs it."""
    snn_import = _importer("snntorch.import_nir")
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints as it goes
        module = snn_import.import_from_nir(read(path))
    state = None
    spikes, readout = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = module(x[:, t]) if state is None else module(x[:, t], state)
            spikes.append(state["hidden"]["lif_prev_output"].clone())
            readout.append(module.readout.mem.clone())
    return torch.stack(spikes, 1), torch.stack(readout, 1)


@pytest.mark.parametrize("bias", [True, False])
def test_snntorch_imports_the_export_whole_and_agrees_exactly(tmp_path: Path, bias: bool) -> None:
    net = _net(reset="zero", readout_bias=bias)
    x = _spikes_in()
    path = export(net, tmp_path / "net.nir", target="snntorch")
    assert float(read(path).metadata["dt"]) == 1e-4
    z, y = _run_snntorch(path, x)
    with torch.no_grad():
        tr = net.simulate(x)
    assert 0.05 < float(tr.spikes.mean()) < 0.6
    assert torch.equal(z, tr.spikes)
    torch.testing.assert_close(y, tr.readout, rtol=0, atol=1e-5)
    assert torch.equal(predict(y), predict(tr.readout))


def test_snntorch_subtract_reset_is_refused_then_approximated(tmp_path: Path) -> None:
    net = _net(reset="subtract")
    with pytest.raises(ExportError, match=r"approximate=\{'reset'\}"):
        export(net, tmp_path / "refused.nir", target="snntorch")
    with pytest.raises(ExportError, match=r"assumes dt = 0\.0001 s"):
        to_graph(_net(reset="zero"), target="snntorch", dt=1e-3)
    x = _spikes_in()
    path = export(net, tmp_path / "net.nir", target="snntorch", approximate={"reset"})
    z, y = _run_snntorch(path, x)
    # the documented approximation: the same weights with a reset to zero
    zero = _net(reset="zero")
    with torch.no_grad():
        tr, exact = zero.simulate(x), net.simulate(x)
    assert torch.equal(z, tr.spikes)
    torch.testing.assert_close(y, tr.readout, rtol=0, atol=1e-5)
    assert not torch.equal(z, exact.spikes)  # and it is an approximation


# ------------------------------------------------------------------------------ Norse
def test_norse_imports_the_export_whole_and_agrees_exactly(tmp_path: Path) -> None:
    norse = _importer("norse.torch")
    net = _net(reset="zero")
    x = _spikes_in()
    path = export(net, tmp_path / "net.nir", target="norse")
    graph = read(path)
    dt = float(graph.metadata["dt"])
    assert dt == 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse.from_nir(graph, dt=dt)
    state = None
    spikes, readout = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = module(x[:, t], state)
            spikes.append(state.cache["hidden"].clone())
            readout.append(state.state["readout"][0].v.clone())
        tr = net.simulate(x)
    assert torch.equal(torch.stack(spikes, 1), tr.spikes)
    torch.testing.assert_close(torch.stack(readout, 1), tr.readout, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------ Rockpool
def _run_rockpool(path: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rp_nir = _importer("rockpool.nn.modules.torch.nir")
    module = rp_nir.from_nir(read(path))
    for name in ("hidden", "readout"):
        getattr(module, name)._record = True  # LIFTorch keeps its traces when asked
    with torch.no_grad():
        module(x)
    z = module.hidden._record_dict["spikes"].detach()
    y = module.readout._record_dict["vmem"].detach()
    return z, y


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_rockpool_imports_the_export_whole_within_the_documented_approximation(
    tmp_path: Path, reset: str
) -> None:
    net = _net(reset=reset, gain_in=1.5)
    with pytest.raises(ExportError, match="synapse"):
        export(net, tmp_path / "refused.nir", target="rockpool")
    with pytest.raises(ExportError, match="reset"):
        export(net, tmp_path / "refused.nir", target="rockpool", approximate={"synapse"})
    x = _spikes_in()
    path = export(net, tmp_path / "net.nir", target="rockpool", approximate={"synapse", "reset"})
    z, y = _run_rockpool(path, x)
    assert 0.05 < float((z > 0).float().mean()) < 0.6  # neurons fire, not all the time
    assert float(z.max()) >= 2  # Rockpool's several spikes in one step: part of the approximation
    # the documented dynamics (RockpoolProfile.readout_trace) are what Rockpool runs
    reference = PROFILES["rockpool"].readout_trace(read(path), x.double().numpy())
    np.testing.assert_allclose(y.double().numpy(), reference, rtol=0, atol=1e-4)
    # and the readout is exact given the spikes: kappa y[t-1] + W_out z[t] + b
    with torch.no_grad():
        y_exact = net.readout(z.transpose(0, 1).to(net.w_out.dtype)).transpose(0, 1)
    torch.testing.assert_close(y, y_exact, rtol=0, atol=1e-4)


def test_rockpool_readout_is_exact_on_spiketune_spikes(tmp_path: Path) -> None:
    """The readout alone (a never-firing CubaLIF) reproduces the LI readout: fed through
    Rockpool's LinearTorch + LIFTorch, spiketune's own hidden spikes give its readout."""
    _importer("rockpool")
    net = _net(reset="subtract")
    x = _spikes_in()
    with torch.no_grad():
        tr = net.simulate(x)
    graph = to_graph(net, target="rockpool", approximate={"synapse", "reset"})
    from rockpool.nn.modules.torch.nir import _convert_nir_to_rockpool_torch as convert

    w_out, readout = convert(graph.nodes["w_out"]), convert(graph.nodes["readout"])
    readout._record = True
    with torch.no_grad():
        readout(w_out(tr.spikes))
    torch.testing.assert_close(readout._record_dict["vmem"], tr.readout, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------ accuracy
def test_check_export_scores_model_and_export(tmp_path: Path) -> None:
    net = _net(reset="subtract")
    x = _spikes_in(n=30, steps=40)
    labels = torch.arange(30) % 4
    exact = check_export(net, to_graph(net), (x, labels))
    with torch.no_grad():
        ours = predict(net.simulate(x).readout)
    assert exact.model_accuracy == float((ours == labels).float().mean())
    assert exact.export_accuracy == exact.model_accuracy and exact.agreement == 1.0
    assert exact.approximations == "none" and exact.samples == 30
    path = export(net, tmp_path / "rp.nir", target="rockpool", approximate=["synapse", "reset"])
    approx = check_export(net, path, (x, labels))
    theirs = predict(torch.from_numpy(
        PROFILES["rockpool"].readout_trace(read(path), x.double().numpy())))
    assert approx.export_accuracy == float((theirs == labels).float().mean())
    assert approx.agreement == float((theirs == ours).float().mean())
    assert "synaptic current" in approx.approximations
    assert "model" in approx.summary() and "rockpool" in approx.summary()
    with pytest.raises(ExportError, match="data"):
        check_export(net, path, object())


def test_check_export_refuses_a_graph_of_another_network_and_data_that_do_not_fit() -> None:
    """A graph of another network (other sizes, reset or model kind) would be scored without
    complaint and its agreement mean nothing; labels that do not match the inputs, an empty
    set and batch_size=0 used to end in torch's errors. NumPy data is scored as tensors are."""
    net = _net(reset="subtract")
    x, labels = _spikes_in(n=8, steps=20), torch.arange(8) % 4
    graph = to_graph(net)
    other = to_graph(_net(n_rec=9, n_out=2, reset="zero"))
    with pytest.raises(ExportError, match=r"not an export of this model: hidden neurons 9 in "
                                          r"the graph, 20 in the model; classes 2 in the graph, "
                                          r"4 in the model; reset zero in the graph, subtract"):
        check_export(net, other, (x, labels))
    with pytest.raises(ExportError, match=r"inputs 3 in the graph, 5 in the model"):
        check_export(net, to_graph(_net(n_in=3)), (x, labels))
    l2mu = L2MU(5, 4, order=2, theta=0.1, dt=1e-3, hidden_size=4)
    with pytest.raises(ExportError, match=r"model: check_export scores a RecurrentSNN.*L2MU"):
        check_export(l2mu, graph, (x, labels))  # type: ignore[arg-type]
    with pytest.raises(ExportError, match=r"data: labels of shape \(5,\) for 8 inputs"):
        check_export(net, graph, (x, labels[:5]))
    with pytest.raises(ConfigError, match=r"batch_size: an integer >= 1 \(got 0\)"):
        check_export(net, graph, (x, labels), batch_size=0)
    as_numpy = check_export(net, graph, (x.numpy(), labels.numpy()), batch_size=3)
    assert as_numpy == check_export(net, graph, (x, labels))
    empty = check_export(net, graph, (x[:0], labels[:0]))
    assert empty.samples == 0 and np.isnan(empty.model_accuracy) and np.isnan(empty.agreement)


@pytest.mark.parametrize("target", ["generic", "snntorch", "norse"])
def test_spiketune_simulator_runs_every_euler_profile_exactly(target: str) -> None:
    """The generic, snnTorch and Norse profiles are NIR's own semantics: spiketune's simulator
    reproduces the network from each (readout from the membrane where it is a LIF)."""
    net = _net(reset="zero")
    x = _spikes_in(n=3, steps=30)
    graph = to_graph(net, target=target)
    y = PROFILES[target].readout_trace(graph, x.double().numpy())
    with torch.no_grad():
        ref = net.simulate(x).readout.double().numpy()
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)
    z = simulate(graph, x, record=["hidden.lif"]).records["hidden.lif"]
    with torch.no_grad():
        assert np.array_equal(z, net.simulate(x).spikes.numpy())


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ExportError, match="unknown importer; known: generic, snntorch"):
        to_graph(_net(), target="loihi")


# ------------------------------------------------------------------------------ CubaLIF
def _cuba(**kw: Any) -> RecurrentSNN:
    return _net(**{"reset": "zero", "neuron": "cuba_lif", "tau_syn": 5e-3, "rule": "bptt",
                   "gain_in": 1.0, "gain_rec": 0.3, **kw})


def test_cuba_lif_round_trips_through_a_generic_graph_with_identical_spikes(
    tmp_path: Path,
) -> None:
    net = _cuba()
    x = _spikes_in()
    path = export(net, tmp_path / "cuba.nir")
    graph = read(path)
    assert isinstance(graph.nodes["hidden"].nodes["lif"], nir.CubaLIF)
    with torch.no_grad():
        tr = net.simulate(x)
    assert 0.05 < float(tr.spikes.mean()) < 0.6
    run = simulate(graph, x, record=["hidden.lif"], record_state=["hidden.lif"])
    assert np.array_equal(run.records["hidden.lif"], tr.spikes.double().numpy())
    np.testing.assert_allclose(run.output, tr.readout.double().numpy(), rtol=0, atol=1e-4)
    back = to_network(path)  # read back: a trainable CubaLIF network with the same dynamics
    assert back.config.neuron == "cuba_lif" and back.config.rule == "bptt"
    assert back.config.decay_syn == pytest.approx(net.config.decay_syn, rel=1e-12)
    with torch.no_grad():
        again = back.simulate(x)
    assert torch.equal(again.z, tr.z)
    torch.testing.assert_close(again.y, tr.y, rtol=0, atol=1e-5)
    with pytest.raises(ExportError, match=r"approximate=\{'reset'\}"):
        to_graph(_cuba(reset="subtract"))


def test_snntorch_imports_a_cuba_lif_export_whole_and_agrees_exactly(tmp_path: Path) -> None:
    net = _cuba()
    x = _spikes_in()
    path = export(net, tmp_path / "cuba.nir", target="snntorch")
    z, y = _run_snntorch(path, x)
    with torch.no_grad():
        tr = net.simulate(x)
    assert torch.equal(z, tr.spikes)
    torch.testing.assert_close(y, tr.readout, rtol=0, atol=1e-4)


def test_norse_imports_a_cuba_lif_export_whole_and_agrees_exactly(tmp_path: Path) -> None:
    norse = _importer("norse.torch")
    net = _cuba()
    x = _spikes_in()
    graph = read(export(net, tmp_path / "cuba.nir", target="norse"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse.from_nir(graph, dt=float(graph.metadata["dt"]))
    state = None
    spikes = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = module(x[:, t], state)
            spikes.append(state.cache["hidden"].clone())
        tr = net.simulate(x)
    assert torch.equal(torch.stack(spikes, 1), tr.spikes)


def test_rockpool_imports_a_cuba_lif_export_with_only_its_reset_approximated(
    tmp_path: Path,
) -> None:
    net = _cuba()
    with pytest.raises(ExportError, match="reset"):
        export(net, tmp_path / "refused.nir", target="rockpool")
    with pytest.raises(ExportError, match="alpha_syn = 0"):
        export(_cuba(tau_syn=None, alpha_syn=0.0), tmp_path / "r.nir", target="rockpool",
               approximate={"reset"})
    x = _spikes_in()
    path = export(net, tmp_path / "cuba.nir", target="rockpool", approximate={"reset"})
    z, y = _run_rockpool(path, x)
    assert 0.05 < float((z > 0).float().mean()) < 0.8
    reference = PROFILES["rockpool"].readout_trace(read(path), x.double().numpy())
    np.testing.assert_allclose(y.double().numpy(), reference, rtol=0, atol=1e-3)
    assert read(path).metadata["approximations"] != "none"


def _chip(**kw: Any) -> RecurrentSNN:
    """Xylo's neuron: CubaLIF, reset by subtraction at the spike, several spikes per step."""
    base = {"neuron": "cuba_lif", "rule": "bptt", "alpha_syn": 0.5, "reset": "subtract_at_spike",
            "max_spikes": None, "gain_in": 3.0, "gain_rec": 0.3, "v_th": 0.5}
    return _net(**{**base, **kw})


def test_rockpool_imports_the_chip_neuron_exactly(tmp_path: Path) -> None:
    """A network trained with Rockpool's own neuron needs no approximation: Rockpool's LIFTorch
    gives its spikes (several per step included) and its readout."""
    net = _chip()
    x = _spikes_in()
    path = export(net, tmp_path / "chip.nir", target="rockpool")
    assert read(path).metadata["approximations"] == "none"
    z, y = _run_rockpool(path, x)
    with torch.no_grad():
        tr = net.simulate(x)
    assert float(tr.z.max()) >= 2  # several spikes in one step happen, and match
    torch.testing.assert_close(z, tr.spikes, rtol=0, atol=0)
    torch.testing.assert_close(y, tr.readout, rtol=0, atol=1e-4)
    check = check_export(net, path, (x, torch.arange(6) % 4))
    assert check.agreement == 1.0 and check.approximations == "none"


@pytest.mark.parametrize("target", ["generic", "snntorch", "norse"])
def test_the_chip_neuron_is_refused_by_importers_without_it(tmp_path: Path, target: str) -> None:
    with pytest.raises(ExportError, match=r"subtract_at_spike.*--for rockpool"):
        export(_chip(), tmp_path / "chip.nir", target=target)


def test_rockpool_export_of_a_capped_or_lif_chip_neuron_names_what_differs(
    tmp_path: Path,
) -> None:
    with pytest.raises(ExportError, match="max_spikes=3"):
        export(_chip(max_spikes=3), tmp_path / "c.nir", target="rockpool")
    lif = _chip(neuron="lif", alpha_syn=None)
    with pytest.raises(ExportError, match=r"approximate=\{'synapse'\}"):
        export(lif, tmp_path / "l.nir", target="rockpool")
    graph = to_graph(lif, target="rockpool", approximate={"synapse"})
    assert "reset" not in graph.metadata["approximations"]

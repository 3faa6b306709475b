"""spiketune.nir reading other writers' graphs: small graphs written by hand from the NIR spec
in the shapes snnTorch, Norse and Rockpool write, one per node type spiketune's simulator
claims; the missing-dt option; graphs NIR's type check rejects; to_network."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
import torch

from spiketune.errors import ExportError
from spiketune.nir import GraphTypeWarning, read, simulate, to_graph, to_network
from spiketune.nir._simulate import _SIM_NODES
from spiketune.snn import RecurrentSNN, SNNConfig

torch.set_num_threads(1)
DT = 1e-3


def _chain(*nodes: tuple[str, Any], n_in: int = 1, n_out: int = 1, **kw: Any) -> nir.NIRGraph:
    """input -> nodes... -> output, in order."""
    names = ["input", *(n for n, _ in nodes), "output"]
    all_nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        **dict(nodes),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    return nir.NIRGraph(nodes=all_nodes, edges=list(itertools.pairwise(names)), **kw)


def _a(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float64)


def _run(graph: nir.NIRGraph, x: list[float], **kw: Any) -> Any:
    return simulate(graph, np.array(x, dtype=np.float64).reshape(1, -1, 1), dt=DT, **kw)


# one graph per node type, each in the shape one exporter writes, with the hand-computed
# output under NIR's forward-Euler semantics at DT
CASES: dict[str, tuple[nir.NIRGraph, list[float], list[float]]] = {
    # snnTorch writes LIF with r = tau/dt: v <- 0.5 v + I, fire above 0.8, reset to 0
    "LIF": (
        _chain(("lif", nir.LIF(tau=_a(2e-3), r=_a(2.0), v_leak=_a(0), v_threshold=_a(0.8),
                               v_reset=_a(0)))),
        [0.5] * 6, [0, 0, 1, 0, 0, 1],
    ),
    # Norse writes r = 1 and leaves the input scaling to the weights: Linear 2.0 -> same LIF
    "Linear": (
        _chain(("w", nir.Linear(weight=np.array([[2.0]]))),
               ("lif", nir.LIF(tau=_a(2e-3), r=_a(1.0), v_leak=_a(0), v_threshold=_a(0.8),
                               v_reset=_a(0)))),
        [0.5] * 6, [0, 0, 1, 0, 0, 1],
    ),
    # Affine with a bias, then Scale: 3 * (2 x + 1)
    "Affine": (
        _chain(("w", nir.Affine(weight=np.array([[2.0]]), bias=_a(1.0))),
               ("s", nir.Scale(scale=_a(3.0)))),
        [0.0, 1.0, -0.5], [3.0, 9.0, 0.0],
    ),
    "Scale": (_chain(("s", nir.Scale(scale=_a(-2.0)))), [1.0, 0.5], [-2.0, -1.0]),
    # Threshold is strict: 1.0 does not pass 1.0
    "Threshold": (_chain(("t", nir.Threshold(threshold=_a(1.0)))), [0.5, 1.0, 1.5], [0, 0, 1]),
    # LI: tau = 2 dt, r = 2: y <- 0.5 y + x
    "LI": (_chain(("li", nir.LI(tau=_a(2e-3), r=_a(2.0), v_leak=_a(0)))),
           [1.0, 0.0, 0.0], [1.0, 0.5, 0.25]),
    # I: v <- v + dt r x, r = 1/dt: a running sum
    "I": (_chain(("i", nir.I(r=_a(1 / DT)))), [1.0, 2.0, -0.5], [1.0, 3.0, 2.5]),
    # IF: the running sum, fire above 0.8, reset to 0
    "IF": (_chain(("f", nir.IF(r=_a(1 / DT), v_threshold=_a(0.8)))),
           [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]),
    # CubaLI (Norse's synapse + leaky membrane): tau_syn = dt passes w_in x within the step;
    # tau_mem = 2 dt, r = 1: v <- 0.5 v + 0.5 * 2 x
    "CubaLI": (
        _chain(("c", nir.CubaLI(tau_syn=_a(1e-3), tau_mem=_a(2e-3), r=_a(1.0), v_leak=_a(0),
                                w_in=_a(2.0)))),
        [1.0, 0.0, 0.0], [1.0, 0.5, 0.25],
    ),
    # CubaLIF in Rockpool's recurrent-subgraph shape (r = tau_mem/dt - 1 written by Rockpool's
    # convention; read here by NIR's): syn <- syn + 0.5 (x - syn), v <- v + 0.5 (-v + syn)
    "CubaLIF": (
        _chain(("layer", nir.NIRGraph(
            nodes={
                "input": nir.Input(input_type=np.array([1])),
                "lif": nir.CubaLIF(tau_syn=_a(2e-3), tau_mem=_a(2e-3), r=_a(1.0), v_leak=_a(0),
                                   v_threshold=_a(0.3), w_in=_a(1.0)),
                "w_rec": nir.Linear(weight=np.array([[0.0]])),
                "output": nir.Output(output_type=np.array([1])),
            },
            edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        ))),
        # syn: 0.5, 0.75, 0.875; v: 0.25, 0.5 -> fire, reset 0; then 0.4375 -> fire
        [1.0, 1.0, 1.0], [0, 1, 1],
    ),
}


def test_the_cases_cover_every_node_type_the_simulator_claims() -> None:
    covered = set()
    for graph, _, _ in CASES.values():
        stack = [graph]
        while stack:
            g = stack.pop()
            for node in g.nodes.values():
                (stack.append(node) if isinstance(node, nir.NIRGraph) else covered.add(type(node)))
    assert covered == set(_SIM_NODES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_node_type_through_a_file(tmp_path: Path, case: str) -> None:
    graph, x, expected = CASES[case]
    path = tmp_path / f"{case}.nir"
    nir.write(path, graph)
    run = _run(read(path), x)
    np.testing.assert_allclose(run.output[0, :, 0], expected, rtol=0, atol=1e-12)


def test_membrane_and_synaptic_current_are_recordable() -> None:
    run = _run(CASES["LIF"][0], [0.5] * 4, record_state=["lif"])
    np.testing.assert_allclose(run.states["lif"]["v"][0, :, 0], [0.5, 0.75, 0.0, 0.5])
    cuba = _run(CASES["CubaLIF"][0], [1.0] * 3, record_state=["layer.lif"])
    np.testing.assert_allclose(cuba.states["layer.lif"]["i"][0, :, 0], [0.5, 0.75, 0.875])
    np.testing.assert_allclose(cuba.states["layer.lif"]["v"][0, :, 0], [0.25, 0.0, 0.0])
    with pytest.raises(ExportError, match="has no state"):
        _run(CASES["Scale"][0], [1.0], record_state=["s"])
    with pytest.raises(ExportError, match="no such node"):
        _run(CASES["Scale"][0], [1.0], record_state=["nope"])


def test_a_graph_without_dt_names_the_option() -> None:
    graph = CASES["LI"][0]
    with pytest.raises(ExportError, match=r"no 'dt'.*pass dt=") as err:
        simulate(graph, np.zeros((1, 2, 1)))
    assert err.value.__cause__ is None and err.value.__context__ is None
    net_graph = to_graph(_net("zero"))
    net_graph.metadata = {}
    with pytest.raises(ExportError, match=r"no 'dt'.*pass dt="):
        to_network(net_graph)
    assert to_network(net_graph, dt=1e-3).config.dt == 1e-3


def test_input_that_is_not_batch_steps_channels_numbers_is_refused_naming_x() -> None:
    """No steps, text, ragged lists or too few dimensions: an ExportError naming ``x`` and the
    shape it needs, where a run of no steps used to end in a KeyError and text in NumPy's
    ValueError."""
    graph = CASES["LI"][0]
    rule = r"x must be numbers of shape \(batch, steps >= 1, channels\)"
    with pytest.raises(ExportError, match=rule + r"; got shape \(2, 0, 1\)"):
        simulate(graph, np.zeros((2, 0, 1)), dt=DT)
    for bad in ("abc", [[[1.0], [2.0]], [[3.0]]], np.zeros((2, 3))):
        with pytest.raises(ExportError, match=rule):
            simulate(graph, bad, dt=DT)  # type: ignore[arg-type]
    assert simulate(graph, np.zeros((0, 2, 1)), dt=DT).output.shape == (0, 2, 1)


def test_a_graph_nir_rejects_on_its_type_check_is_read_with_a_warning(tmp_path: Path) -> None:
    # Rockpool 3.1 writes a 3-neuron population's output type as [[1]]
    lif = nir.CubaLIF(tau_syn=_a(2e-3, 2e-3, 2e-3), tau_mem=_a(4e-3, 4e-3, 4e-3),
                      r=_a(3.0, 3.0, 3.0), v_leak=_a(0, 0, 0), v_threshold=_a(1, 1, 1),
                      w_in=_a(1, 1, 1))
    lif.output_type = {"output": np.array([[1]])}
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])), "lif": lif,
               "output": nir.Output(output_type=np.array([[1, 1, 1]]))},
        edges=[("input", "lif"), ("lif", "output")], type_check=False,
    )
    path = tmp_path / "rockpool_lif.nir"
    nir.write(path, graph)
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(path)
    mismatch = r"type mismatch: lif\.output: .* -> output\.input: \[\[\[1 1 1\]\]\]"
    with pytest.warns(GraphTypeWarning, match=mismatch):
        back = read(path)
    run = simulate(back, np.ones((2, 4, 3)), dt=1e-3)
    assert run.output.shape == (2, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file reads without a warning
        nir.write(tmp_path / "clean.nir", CASES["LI"][0])
        read(tmp_path / "clean.nir")


# ------------------------------------------------------------------------------ to_network
def _net(reset: str, **kw: Any) -> RecurrentSNN:
    cfg = SNNConfig(n_in=5, n_rec=20, n_out=4, tau_mem=10e-3, tau_out=15e-3, gain_in=3.0,
                    reset=reset, **kw)
    net = RecurrentSNN(cfg, seed=2, dtype=torch.float64)
    with torch.no_grad():
        net.b_out.copy_(torch.linspace(-0.5, 0.5, 4))  # type: ignore[union-attr]
    return net


@pytest.mark.parametrize(("reset", "target"), [("zero", "generic"), ("subtract", "generic"),
                                                ("zero", "snntorch"), ("zero", "norse")])
def test_to_network_reads_each_profile_back_exactly(reset: str, target: str) -> None:
    net = _net(reset)
    back = to_network(to_graph(net, target=target), dtype=torch.float64, rule="bptt")
    assert back.config.reset == reset and back.config.rule == "bptt"
    # its own step too, where snnTorch's importer fixes the graph's at 1e-4 s: rates in Hz
    # and windows in seconds stay the model's
    assert back.config.dt == net.config.dt
    x = (torch.rand(4, 40, 5, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    with torch.no_grad():
        a, b = net.simulate(x), back.simulate(x)
    assert float(a.spikes.mean()) > 0.05
    assert torch.equal(a.spikes, b.spikes)
    torch.testing.assert_close(a.readout, b.readout, rtol=0, atol=1e-9)


def test_to_network_reads_an_instant_synapse_as_lif_and_a_real_one_as_cuba_lif() -> None:
    n = 3
    def graph(tau_syn: float) -> nir.NIRGraph:
        cuba = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, 4e-3),
                           r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                           w_in=np.full(n, 2.0))
        return _chain(("w_in", nir.Linear(weight=np.eye(n, 2))), ("hidden", cuba),
                      ("w_out", nir.Linear(weight=np.ones((2, n)))),
                      ("readout", nir.LI(tau=np.full(2, 2e-3), r=np.full(2, 2.0),
                                         v_leak=np.zeros(2))),
                      n_in=2, n_out=2, metadata={"dt": DT})
    net = to_network(graph(DT), dtype=torch.float64)
    assert net.config.reset == "zero" and not net.config.recurrent
    assert net.config.decay_mem == pytest.approx(0.75)
    # input gain w_in * r * dt / tau_mem = 2 * 2 * 0.25 = 1: the weights are read unchanged
    torch.testing.assert_close(net.w_in, torch.eye(n, 2, dtype=torch.float64))
    x = torch.rand(2, 20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ours = net.simulate(x).readout.numpy()
    np.testing.assert_allclose(simulate(graph(DT), x).output, ours, atol=1e-12)
    assert net.config.neuron == "lif"
    cuba = to_network(graph(5e-3), dtype=torch.float64)  # its own synapse: a CubaLIF layer
    assert cuba.config.neuron == "cuba_lif" and cuba.config.rule == "bptt"
    assert cuba.config.decay_syn == pytest.approx(1 - DT / 5e-3)
    with torch.no_grad():
        ours = cuba.simulate(x).readout.numpy()
    np.testing.assert_allclose(simulate(graph(5e-3), x).output, ours, atol=1e-12)
    with pytest.raises(ExportError, match=r"tau="):
        to_network(graph(DT / 2))  # a synapse faster than the step: no forward-Euler decay


def test_to_network_refuses_what_spiketune_has_no_counterpart_for() -> None:
    g = to_graph(_net("zero"))
    g.nodes["hidden"].nodes["lif"].tau[0] *= 2
    with pytest.raises(ExportError, match="tau differs between neurons"):
        to_network(g)
    g = to_graph(_net("zero"))
    np.fill_diagonal(g.nodes["hidden"].nodes["w_rec"].weight, 0.1)
    with pytest.raises(ExportError, match="self-connections"):
        to_network(g)
    with pytest.raises(ExportError, match="input -> Linear -> hidden"):
        to_network(CASES["LI"][0], dt=DT)


def test_a_step_that_is_not_a_number_of_seconds_above_zero_is_refused() -> None:
    """simulate refuses what to_network and export refuse: a zero, negative or NaN step (given,
    or written in the graph) would run and give output without meaning."""
    graph = CASES["LI"][0]
    for dt in (0.0, -0.01, float("nan"), float("inf")):
        with pytest.raises(ExportError, match="the integration step must be a number of "
                                              "seconds > 0"):
            simulate(graph, np.zeros((1, 2, 1)), dt=dt)
    written = to_graph(_net("zero"))
    written.metadata = {"dt": -0.01}
    for run in (lambda: simulate(written, np.zeros((1, 2, 5))), lambda: to_network(written)):
        with pytest.raises(ExportError, match=r"dt=-0\.01"):
            run()


def test_weights_that_do_not_fit_their_layers_are_refused_by_node() -> None:
    """A graph edited by hand: weights cut to fewer rows than the readout has neurons, or fewer
    columns than the input has channels, or holding NaN. simulate and to_network name the node
    and the sizes, where simulate used to fail inside NumPy and to_network to cut the readout
    down silently."""
    x = np.zeros((2, 5, 5))
    cut = to_graph(_net("zero"))
    cut.nodes["w_out"].weight = cut.nodes["w_out"].weight[:3]
    cut.nodes["w_out"].bias = cut.nodes["w_out"].bias[:3]
    with pytest.raises(ExportError, match=r"edge 'w_out' -> 'readout': 'w_out' puts out 3 "
                                          r"values and 'readout' takes 4"):
        simulate(cut, x)
    with pytest.raises(ExportError, match=r"node 'w_out': puts out 3 values, but 'readout' has "
                                          r"4 neurons"):
        to_network(cut)
    narrow = to_graph(_net("zero"))
    narrow.nodes["w_in"].weight = narrow.nodes["w_in"].weight[:, :3]
    with pytest.raises(ExportError, match=r"x has 5 channels, but node 'w_in', which the input "
                                          r"feeds, takes 3: x must be \(batch, steps, 3\)"):
        simulate(narrow, x)
    with pytest.raises(ExportError, match=r"x has 12 channels.*takes 5"):
        simulate(to_graph(_net("zero")), np.zeros((2, 5, 12)))
    bad = to_graph(_net("zero"))
    bad.nodes["w_in"].weight[0, 0] = np.nan
    with pytest.raises(ExportError, match="node 'w_in': its weights hold non-finite values"):
        to_network(bad)


def test_edited_time_constants_shapes_and_ends_are_refused_by_node() -> None:
    """A graph edited by hand or written by another tool: a time constant of 0, weights that are
    not a matrix, an Input declaring other channels than its Linear takes, a chain that does not
    end in an Output. Each is an ExportError naming the node, where they used to escape as
    ZeroDivisionError, IndexError or torch's RuntimeError, or be read silently."""
    def edited(edit: Any) -> nir.NIRGraph:
        g = to_graph(_net("zero"))
        edit(g)
        return g

    def zero_tau(node: Any) -> None:
        node.tau = np.zeros_like(node.tau)

    with pytest.raises(ExportError, match=r"node 'readout': tau=0 s; a time constant must be"):
        to_network(edited(lambda g: zero_tau(g.nodes["readout"])))
    with pytest.raises(ExportError, match=r"node 'hidden': tau=0 s"):
        to_network(edited(lambda g: zero_tau(g.nodes["hidden"].nodes["lif"])))
    with pytest.raises(ExportError, match=r"node 'w_out': weight of shape \[20\]; weights"):
        to_network(edited(lambda g: setattr(g.nodes["w_out"], "weight", np.ones(20))))
    with pytest.raises(ExportError, match=r"node 'w_in': weight of shape \[20, 5, 2\]"):
        to_network(edited(lambda g: setattr(g.nodes["w_in"], "weight", np.ones((20, 5, 2)))))
    with pytest.raises(ExportError, match=r"node 'hidden': recurrent weight of shape \[20\]"):
        to_network(edited(lambda g: setattr(g.nodes["hidden"].nodes["w_rec"], "weight",
                                            np.zeros(20))))
    with pytest.raises(ExportError, match=r"node 'input': its input_type declares 7 values, "
                                          r"but 'w_in' takes 5"):
        to_network(edited(lambda g: setattr(g.nodes["input"], "input_type",
                                            {"input": np.array([7])})))
    with pytest.raises(ExportError, match=r"node 'output': its output_type declares 3 values, "
                                          r"but 'w_out' puts out 4"):
        to_network(edited(lambda g: setattr(g.nodes["output"], "output_type",
                                            {"output": np.array([3])})))

    def no_output(g: nir.NIRGraph) -> None:
        g.nodes["scale"] = nir.Scale(scale=np.ones(4))
        del g.nodes["output"]
        g.edges = [(a, "scale" if b == "output" else b) for a, b in g.edges]

    with pytest.raises(ExportError, match=r"-> readout \(LI\) -> scale \(Scale\)$"):
        to_network(edited(no_output))

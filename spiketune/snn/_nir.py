"""NIR export of trained networks, and a small NIR-graph simulator to check what was written.

NIR (the Neuromorphic Intermediate Representation, ``nir`` on PyPI) describes neurons as
continuous-time ODEs, e.g. the LIF node ``tau dv/dt = (v_leak - v) + r I``, spike when
``v > v_threshold``, then ``v = v_reset``. spiketune's neurons are discrete (DESIGN.md section 3)::

    v[t] = alpha v[t-1] + W_in x[t] + W_rec z[t-1] - v_th z[t-1]      (reset "subtract")
    v[t] = alpha v[t-1] (1 - z[t-1]) + W_in x[t] + W_rec z[t-1]        (reset "zero")
    z[t] = H(v[t] - v_th),   y[t] = kappa y[t-1] + W_out z[t] + b

**Parameter mapping.** A reader simulates the ODE with forward Euler at a step ``dt`` (seconds):
``v <- v + dt/tau (v_leak - v + r I)``. Choosing ``tau = dt / (1 - alpha)`` and ``r = tau / dt``
makes that update exactly ``v <- alpha v + I``: the discrete model is reproduced to the last bit
a float allows. (For ``tau_mem >> dt`` the exported ``tau`` is ``tau_mem + dt/2`` to first order;
an exact-exponential integrator would see ``exp(-(1 - alpha))`` instead of ``alpha`` per step.)
``dt`` defaults to the model's own step; pass the step a reader assumes (snnTorch's importer
assumes 1e-4 s) and the time constants are rescaled so the per-step dynamics stay the same.
The graph's ``metadata`` records ``dt``.

**Nodes written** (a table from model type to converter; anything else raises ExportError):

- ``input`` -> ``w_in`` (``nir.Linear``) -> ``hidden`` -> ``w_out`` (``nir.Affine``, or
  ``nir.Linear`` without readout bias) -> ``readout`` (``nir.LI``, the leaky integrator, whose
  ``v`` is the readout ``y``) -> ``output``.
- ``hidden``, reset "zero": a subgraph ``input -> lif (nir.LIF, v_reset 0) -> output`` with the
  recurrent edge ``lif -> w_rec (nir.Linear) -> lif``: the usual NIR form of a recurrent layer.
- ``hidden``, reset "subtract": NIR's LIF node resets to a fixed ``v_reset``, so a reset by
  subtraction is written exactly as what it is, a self-connection of weight ``-v_th``: a
  subgraph ``input -> membrane (nir.LI) -> spike (nir.Threshold) -> output`` with the edges
  ``spike -> w_rec -> membrane`` and ``spike -> reset (nir.Scale, -v_th) -> membrane``.
  Readers that need a LIF node get one with ``approximate={"reset"}`` (reset to zero instead:
  the membrane restarts from 0 rather than from ``v - v_th``).
- Without recurrent weights the ``w_rec`` node is left out.

NIR cannot express an adaptive threshold (ALIF) or a refractory period: both are refused, unless
the caller accepts the approximation by name: ``approximate={"adaptation"}`` writes an ALIF layer
as LIF with its base threshold ``v_th`` (the adaptation is dropped), ``approximate={"refractory"}``
drops the refractory period.

**Time-step semantics of a graph with cycles** (how :func:`simulate_nir` runs one): every step,
nodes are evaluated in a topological order of the graph without its back edges (found by a
depth-first walk from the inputs); a node's input is the sum of its sources' outputs, and a
source not yet evaluated in this step (the far end of a back edge) contributes its output of the
previous step. So a recurrent edge carries ``z[t-1]``, as in the equations above.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from spiketune.errors import CheckpointError, ExportError
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._neurons import ALIFParameters, LIFParameters

__all__ = [
    "APPROXIMATIONS",
    "NIRRun",
    "export_best_model",
    "export_nir",
    "simulate_nir",
    "to_nir_graph",
]

#: Names accepted by ``approximate=``: what the caller agrees to lose in the export.
APPROXIMATIONS: dict[str, str] = {
    "adaptation": "write an ALIF layer as LIF with threshold v_th (the adaptation is dropped)",
    "refractory": "drop the refractory period (NIR's neurons have none)",
    "reset": "write a subtract-reset layer as a nir.LIF that resets to 0 (for LIF-only readers)",
}


# --------------------------------------------------------------------------------- export
def to_nir_graph(
    model: torch.nn.Module, *, dt: float | None = None, approximate: Collection[str] = ()
) -> nir.NIRGraph:
    """The NIR graph of ``model`` (see the module docstring for the nodes and the mapping).

    ``dt``: the integration step in seconds the graph's time constants are expressed against
    (default: the model's ``config.dt``). ``approximate``: names from :data:`APPROXIMATIONS`.
    Raises ExportError for a model type or feature NIR cannot express.
    """
    accepted = _check_approximations(approximate)
    converter = _find_converter(model)
    return converter(model, dt, accepted)


def export_nir(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    dt: float | None = None,
    approximate: Collection[str] = (),
) -> Path:
    """Write ``model`` as a NIR file (HDF5) at ``path``; returns the path.

    See :func:`to_nir_graph` for ``dt`` and ``approximate``."""
    graph = to_nir_graph(model, dt=dt, approximate=approximate)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(out, graph)
    return out


def _check_approximations(approximate: Collection[str]) -> frozenset[str]:
    if isinstance(approximate, str):
        approximate = (approximate,)
    unknown = sorted(set(approximate) - set(APPROXIMATIONS))
    if unknown:
        raise ExportError(
            f"approximate={unknown!r}: unknown approximation; known: "
            + ", ".join(f"{k!r} ({v})" for k, v in APPROXIMATIONS.items())
        )
    return frozenset(approximate)


def _find_converter(model: object) -> Callable[[Any, float | None, frozenset[str]], nir.NIRGraph]:
    for kind, converter in _MODEL_CONVERTERS.items():
        if isinstance(model, kind):
            return converter
    known = ", ".join(k.__name__ for k in _MODEL_CONVERTERS)
    raise ExportError(
        f"no NIR converter for a {type(model).__name__}; models that can be exported: {known}"
    )


def _recurrent_snn_graph(
    net: RecurrentSNN, dt: float | None, approximate: frozenset[str]
) -> nir.NIRGraph:
    cfg = net.config
    step = cfg.dt if dt is None else dt
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise ExportError(f"dt={step!r}: the integration step must be a number of seconds > 0")
    p = net.neuron_params
    if p.refractory_steps > 0 and "refractory" not in approximate:
        raise ExportError(
            f"NIR has no refractory period, and this network has refractory_steps="
            f"{p.refractory_steps}: pass approximate={{'refractory'}} to export it without one "
            "(its spikes may then differ from the trained network's)"
        )
    neuron = _NEURON_CONVERTERS.get(type(p))
    if neuron is None:  # a neuron record this exporter does not know
        known = ", ".join(k.__name__ for k in _NEURON_CONVERTERS)
        raise ExportError(f"no NIR converter for neuron {type(p).__name__}; known: {known}")

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float64).numpy().copy()

    w_in = arr(net.w_in)
    w_rec_t = net.recurrent_weight()
    w_rec = None if w_rec_t is None else arr(w_rec_t)
    hidden, notes = neuron(p, cfg.n_rec, w_rec, step, approximate)

    kappa = cfg.decay_out
    tau_out = step / (1.0 - kappa)
    n_out = cfg.n_out
    w_out = arr(net.w_out)
    readout_w = (
        nir.Linear(weight=w_out)
        if net.b_out is None
        else nir.Affine(weight=w_out, bias=arr(net.b_out))
    )
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type=np.array([cfg.n_in])),
        "w_in": nir.Linear(weight=w_in),
        "hidden": hidden,
        "w_out": readout_w,
        "readout": nir.LI(
            tau=np.full(n_out, tau_out), r=np.full(n_out, tau_out / step), v_leak=np.zeros(n_out)
        ),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [
        ("input", "w_in"),
        ("w_in", "hidden"),
        ("hidden", "w_out"),
        ("w_out", "readout"),
        ("readout", "output"),
    ]
    metadata = {
        "source": "spiketune",
        "dt": float(step),
        "model_dt": float(cfg.dt),
        "neuron": cfg.neuron,
        "reset": cfg.reset,
        "approximations": ", ".join(notes) if notes else "none",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _lif_layer(
    p: LIFParameters, n: int, w_rec: np.ndarray | None, dt: float, approximate: frozenset[str]
) -> tuple[nir.NIRNode, list[str]]:
    """The ``n`` hidden neurons as a NIR node (a subgraph when they have feedback), and notes
    on what was approximated."""
    notes: list[str] = []
    if p.refractory_steps > 0:
        notes.append(f"refractory period of {p.refractory_steps} step(s) dropped")
    tau = dt / (1.0 - p.alpha)
    common = {"tau": np.full(n, tau), "r": np.full(n, tau / dt), "v_leak": np.zeros(n)}
    v_th = np.full(n, float(p.v_th))
    inner_in = nir.Input(input_type=np.array([n]))
    inner_out = nir.Output(output_type=np.array([n]))
    if p.reset == "subtract" and "reset" not in approximate:
        nodes: dict[str, nir.NIRNode] = {
            "input": inner_in,
            "membrane": nir.LI(**common),
            "spike": nir.Threshold(threshold=v_th),
            "reset": nir.Scale(scale=-v_th),
            "output": inner_out,
        }
        edges = [
            ("input", "membrane"),
            ("membrane", "spike"),
            ("spike", "output"),
            ("spike", "reset"),
            ("reset", "membrane"),
        ]
        if w_rec is not None:
            nodes["w_rec"] = nir.Linear(weight=w_rec)
            edges += [("spike", "w_rec"), ("w_rec", "membrane")]
        return nir.NIRGraph(nodes=nodes, edges=edges), notes
    if p.reset == "subtract":
        notes.append("reset by subtraction written as reset to 0")
    lif = nir.LIF(**common, v_threshold=v_th, v_reset=np.zeros(n))
    if w_rec is None:
        return lif, notes
    nodes = {"input": inner_in, "lif": lif, "w_rec": nir.Linear(weight=w_rec), "output": inner_out}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), notes


def _alif_layer(
    p: ALIFParameters, n: int, w_rec: np.ndarray | None, dt: float, approximate: frozenset[str]
) -> tuple[nir.NIRNode, list[str]]:
    if "adaptation" not in approximate:
        raise ExportError(
            "NIR has no adaptive-threshold neuron, and this network is ALIF (neuron='alif', "
            f"beta={p.beta}): pass approximate={{'adaptation'}} to write it as LIF with threshold "
            f"v_th={p.v_th} (the adaptation is dropped and its spikes will differ), or train a LIF "
            "network (neuron='lif')"
        )
    base = LIFParameters(
        alpha=p.alpha, v_th=p.v_th, reset=p.reset, refractory_steps=p.refractory_steps
    )
    node, notes = _lif_layer(base, n, w_rec, dt, approximate)
    return node, [f"adaptive threshold (beta={p.beta}) dropped", *notes]


#: model type -> converter to a whole NIR graph
_MODEL_CONVERTERS: dict[type, Callable[[Any, float | None, frozenset[str]], nir.NIRGraph]] = {
    RecurrentSNN: _recurrent_snn_graph,
}

#: neuron parameter record type -> converter of the hidden layer (looked up by exact type:
#: ALIFParameters subclasses LIFParameters)
_NEURON_CONVERTERS: dict[type, Callable[..., tuple[nir.NIRNode, list[str]]]] = {
    ALIFParameters: _alif_layer,
    LIFParameters: _lif_layer,
}


# ------------------------------------------------------------------------------ simulation
@dataclass(frozen=True)
class NIRRun:
    """What :func:`simulate_nir` produced, batch-first ``(B, T, n)`` float64 arrays.

    ``output``: the graph's (single) Output node; ``records``: the outputs of the nodes asked
    for by name (flattened names: ``"hidden.lif"``, ``"hidden.spike"``)."""

    output: np.ndarray
    records: dict[str, np.ndarray]


_PASS = "pass"  # an Input or Output node inside a subgraph: hands its input on


def simulate_nir(
    graph: nir.NIRGraph | str | os.PathLike[str],
    x: np.ndarray | Tensor,
    *,
    dt: float | None = None,
    record: Collection[str] = (),
) -> NIRRun:
    """Run a NIR graph with forward Euler at step ``dt`` (seconds) on batch-first input ``x``
    ``(B, T, n_in)``; all states start at zero.

    ``graph`` may be a path (read with ``nir.read``). ``dt`` defaults to the graph's
    ``metadata["dt"]`` (written by :func:`export_nir`). The per-step semantics (node order,
    back edges carrying the previous step's value) are in the module docstring. Supported
    nodes: Input, Output, Affine, Linear, Scale, Threshold, LI, LIF, IF, I, CubaLI, CubaLIF and
    subgraphs with one Input and one Output; anything else raises ExportError.
    """
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(graph)
    step = _graph_dt(graph) if dt is None else float(dt)
    nodes, edges = _flatten(graph, "")
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(
            f"simulate_nir runs graphs with one Input and one Output node; got inputs {inputs}, "
            f"outputs {outputs}"
        )
    missing = sorted(set(record) - set(nodes))
    if missing:
        raise ExportError(f"record={missing}: no such node; nodes: {', '.join(sorted(nodes))}")
    order = _schedule(nodes, edges, inputs[0])
    sources: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        sources[dst].append(src)

    xs = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    if xs.ndim != 3:
        raise ExportError(f"x must be (batch, steps, channels), got shape {xs.shape}")
    batch, n_steps, _ = xs.shape
    sims = {k: _Sim.of(nodes[k], step, batch) for k in order}
    out_now = {k: np.zeros((batch, sims[k].size)) for k in order}
    traces = {k: np.empty((batch, n_steps, sims[k].size)) for k in {*record, outputs[0]}}
    for t in range(n_steps):
        for k in order:
            if k == inputs[0]:
                value = xs[:, t]
            else:
                srcs = sources[k]
                value = sum((out_now[s] for s in srcs[1:]), out_now[srcs[0]]) if srcs else 0.0
            out_now[k] = sims[k].step(value)
        for k, trace in traces.items():
            trace[:, t] = out_now[k]
    return NIRRun(output=traces[outputs[0]], records={k: traces[k] for k in record})


def _graph_dt(graph: nir.NIRGraph) -> float:
    meta = getattr(graph, "metadata", None) or {}
    value = meta.get("dt")
    if value is None:
        raise ExportError("the graph's metadata has no 'dt': pass dt= (the step in seconds)")
    return float(np.asarray(value))


def _flatten(graph: nir.NIRGraph, prefix: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges with every subgraph inlined under ``name.``; a subgraph's own Input and
    Output become pass-through nodes, and edges to or from the subgraph go through them."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner, inner_edges = _flatten(node, full + ".")
            ins = [k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise ExportError(
                    f"subgraph {full!r}: one Input and one Output node are supported; got "
                    f"inputs {ins}, outputs {outs}"
                )
            for k in (f"{full}.{ins[0]}", f"{full}.{outs[0]}"):
                inner[k] = (_PASS, inner[k])
            nodes.update(inner)
            edges += inner_edges
            entry[full], exit_[full] = f"{full}.{ins[0]}", f"{full}.{outs[0]}"
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        s, d = prefix + src, prefix + dst
        edges.append((exit_.get(s, s), entry.get(d, d)))
    unknown = sorted({n for e in edges for n in e} - set(nodes))
    if unknown:
        raise ExportError(f"edges name nodes that do not exist: {unknown}")
    return nodes, edges


def _schedule(nodes: Mapping[str, Any], edges: list[tuple[str, str]], start: str) -> list[str]:
    """Nodes in the order of one step: reverse post-order of a depth-first walk from the input
    (a topological order of the graph without its back edges)."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        succ[src].append(dst)
    seen: set[str] = set()
    post: list[str] = []
    stack: list[tuple[str, int]] = [(start, 0)]
    seen.add(start)
    while stack:
        node, i = stack.pop()
        if i < len(succ[node]):
            stack.append((node, i + 1))
            nxt = succ[node][i]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, 0))
        else:
            post.append(node)
    unreached = sorted(set(nodes) - seen)
    if unreached:
        raise ExportError(f"nodes not reachable from the input: {unreached}")
    return post[::-1]


class _Sim:
    """One node's state and its forward-Euler step."""

    def __init__(self, size: int, update: Callable[[Any], np.ndarray]) -> None:
        self.size = size
        self.step = update

    @classmethod
    def of(cls, node: Any, dt: float, batch: int) -> _Sim:
        if isinstance(node, tuple) and node[0] == _PASS:
            return cls(
                _out_size(node[1]), lambda i: np.broadcast_to(i, (batch, _out_size(node[1])))
            )
        maker = _SIM_NODES.get(type(node))
        if maker is None:
            known = ", ".join(sorted(k.__name__ for k in _SIM_NODES))
            raise ExportError(
                f"simulate_nir has no rule for a nir.{type(node).__name__} node; known: {known}"
            )
        return maker(node, dt, batch)


def _out_size(node: Any) -> int:
    shape = node.output_type.get("output") if node.output_type else None
    if shape is None:
        shape = next(iter(node.output_type.values()))
    return int(np.prod(np.asarray(shape)))


def _f(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _sim_io(node: Any, dt: float, batch: int) -> _Sim:
    n = _out_size(node)
    return _Sim(n, lambda i: np.broadcast_to(np.asarray(i, dtype=np.float64), (batch, n)))


def _sim_linear(node: Any, dt: float, batch: int) -> _Sim:
    w = _f(node.weight)
    b = _f(node.bias) if isinstance(node, nir.Affine) else 0.0
    return _Sim(w.shape[0], lambda i: np.broadcast_to(i, (batch, w.shape[1])) @ w.T + b)


def _sim_scale(node: Any, dt: float, batch: int) -> _Sim:
    s = _f(node.scale)
    return _Sim(s.size, lambda i: np.broadcast_to(i, (batch, s.size)) * s)


def _sim_threshold(node: Any, dt: float, batch: int) -> _Sim:
    th = _f(node.threshold)
    return _Sim(th.size, lambda i: (np.broadcast_to(i, (batch, th.size)) > th).astype(np.float64))


def _sim_leaky(node: Any, dt: float, batch: int) -> _Sim:
    """LI, LIF, I and IF: one membrane, with a leak (tau) or without, spiking or not."""
    r = _f(node.r)
    n = r.size
    leak = _f(node.tau) if hasattr(node, "tau") else None
    v_leak = _f(node.v_leak) if hasattr(node, "v_leak") else 0.0
    v_th = _f(node.v_threshold) if hasattr(node, "v_threshold") else None
    v_reset = _f(node.v_reset) if v_th is not None else None
    v = np.zeros((batch, n))

    def update(i: Any) -> np.ndarray:
        nonlocal v
        drive = r * i
        v = v + (dt / leak) * (v_leak - v + drive) if leak is not None else v + dt * drive
        if v_th is None:
            return v.copy()
        z = v > v_th
        v = np.where(z, v_reset, v)
        return z.astype(np.float64)

    return _Sim(n, update)


def _sim_cuba(node: Any, dt: float, batch: int) -> _Sim:
    """CubaLI / CubaLIF: the synaptic current is updated first, then the membrane reads it."""
    tau_syn, tau_mem, r = _f(node.tau_syn), _f(node.tau_mem), _f(node.r)
    w_in, v_leak = _f(node.w_in), _f(node.v_leak)
    v_th = _f(node.v_threshold) if hasattr(node, "v_threshold") else None
    v_reset = _f(node.v_reset) if v_th is not None else None
    n = r.size
    syn = np.zeros((batch, n))
    v = np.zeros((batch, n))

    def update(i: Any) -> np.ndarray:
        nonlocal syn, v
        syn = syn + (dt / tau_syn) * (w_in * i - syn)
        v = v + (dt / tau_mem) * (v_leak - v + r * syn)
        if v_th is None:
            return v.copy()
        z = v > v_th
        v = np.where(z, v_reset, v)
        return z.astype(np.float64)

    return _Sim(n, update)


_SIM_NODES: dict[type, Callable[[Any, float, int], _Sim]] = {
    nir.Input: _sim_io,
    nir.Output: _sim_io,
    nir.Affine: _sim_linear,
    nir.Linear: _sim_linear,
    nir.Scale: _sim_scale,
    nir.Threshold: _sim_threshold,
    nir.LI: _sim_leaky,
    nir.LIF: _sim_leaky,
    nir.I: _sim_leaky,
    nir.IF: _sim_leaky,
    nir.CubaLI: _sim_cuba,
    nir.CubaLIF: _sim_cuba,
}


# -------------------------------------------------------------------- the CLI's export
def export_best_model(
    experiment_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    format: str = "nir",
    *,
    dt: float | None = None,
    approximate: Collection[str] = (),
) -> Path:
    """Write the experiment's best model (``<experiment_dir>/best_model/best_model.pt``, a
    checkpoint of :func:`spiketune.snn.save_checkpoint`) in ``format`` (only ``"nir"`` so far)
    at ``path``; returns the path written. ``dt`` and ``approximate`` as for :func:`export_nir`.
    """
    if format != "nir":
        raise ExportError(f"format={format!r}: unknown export format; known: 'nir'")
    checkpoint = Path(experiment_dir) / "best_model" / "best_model.pt"
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{experiment_dir}: no best model to export (expected {checkpoint}); the experiment's "
            "trials keep one with spiketune.trial.offer_best_model"
        )
    from spiketune.snn._checkpoint import load_checkpoint

    network = load_checkpoint(checkpoint).network
    return export_nir(network, path, dt=dt, approximate=approximate)

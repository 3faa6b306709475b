"""A small NIR-graph simulator, to check what :func:`spiketune.nir.export` wrote (and to run
graphs from other writers that use the same nodes).

**Time-step semantics of a graph with cycles.** Every step, nodes are evaluated in a
topological order of the graph without its back edges (found by a depth-first walk from the
input); a node's input is the sum of its sources' outputs, and a source not yet evaluated in
this step (the far end of a back edge) contributes its output of the previous step. So a
recurrent edge carries ``z[t-1]``, as in spiketune's own network. Every node integrates with
forward Euler at the step ``dt`` (seconds), and all states start at zero.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
from torch import Tensor

from spiketune.errors import ExportError
from spiketune.nir._read import graph_step, read

__all__ = ["Simulation", "simulate"]


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` produced, batch-first ``(B, T, n)`` float64 arrays.

    ``output``: the graph's (single) Output node; ``records``: the outputs of the nodes asked
    for by name (flattened names: ``"hidden.lif"``, ``"hidden.spike"``); ``states``: per node
    asked for in ``record_state``, its state variables after each step: ``"v"`` (membrane, after
    the reset) for LI, LIF, I, IF, CubaLI and CubaLIF, and ``"i"`` (synaptic current) for the
    current-based ones."""

    output: np.ndarray
    records: dict[str, np.ndarray]
    states: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


_PASS = "pass"  # an Input or Output node inside a subgraph: hands its input on


def simulate(
    graph: nir.NIRGraph | str | os.PathLike[str],
    x: np.ndarray | Tensor,
    *,
    dt: float | None = None,
    record: Collection[str] = (),
    record_state: Collection[str] = (),
) -> Simulation:
    """Run a NIR graph with forward Euler at step ``dt`` (seconds) on batch-first input ``x``
    ``(B, T, n_in)``; all states start at zero.

    ``graph`` may be a path (read with :func:`spiketune.nir.read`). ``dt`` defaults to the
    graph's ``metadata["dt"]`` (written by :func:`spiketune.nir.export`); a graph without one
    (most other writers') needs ``dt=``, and gets an ExportError saying so. ``record``: nodes
    whose output to keep (e.g. spikes); ``record_state``: nodes whose membrane (and synaptic
    current) to keep, see :class:`Simulation`. The per-step
    semantics (node order, back edges carrying the previous step's value) are in the module
    docstring. Supported nodes: Input, Output, Affine, Linear, Scale, Threshold, LI, LIF, IF,
    I, CubaLI, CubaLIF and subgraphs with one Input and one Output; anything else raises
    ExportError.
    """
    if not isinstance(graph, nir.NIRGraph):
        graph = read(graph)
    step = graph_step(graph, dt, what="the graph's time constants")
    nodes, edges = _flatten(graph, "")
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(
            f"simulate runs graphs with one Input and one Output node; got inputs {inputs}, "
            f"outputs {outputs}"
        )
    for what, names in (("record", record), ("record_state", record_state)):
        missing = sorted(set(names) - set(nodes))
        if missing:
            raise ExportError(
                f"{what}={missing}: no such node; nodes: {', '.join(sorted(nodes))}"
            )
    order = _schedule(nodes, edges, inputs[0])
    sources: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        sources[dst].append(src)

    xs = _input_array(x)
    batch, n_steps, channels = xs.shape
    sims = {k: _Sim.of(nodes[k], step, batch) for k in order}
    _check_sizes(nodes, edges, sims, inputs[0], channels)
    out_now = {k: np.zeros((batch, sims[k].size)) for k in order}
    traces: dict[str, np.ndarray] = {}
    for k in record_state:
        if sims[k].state is None:
            raise ExportError(
                f"record_state=[{k!r}]: a nir.{type(nodes[k]).__name__} node has no state"
            )
    states = {
        k: {v: np.empty((batch, n_steps, sims[k].size)) for v in sims[k].state()}  # type: ignore[misc]
        for k in record_state
    }
    for t in range(n_steps):
        for k in order:
            if k == inputs[0]:
                value = xs[:, t]
            else:
                srcs = sources[k]
                value = sum((out_now[s] for s in srcs[1:]), out_now[srcs[0]]) if srcs else 0.0
            out_now[k] = sims[k].step(value)
        if t == 0:  # sized by what the nodes put out: a written type may disagree (read's warning)
            traces = {
                k: np.empty((batch, n_steps, out_now[k].shape[-1])) for k in {*record, outputs[0]}
            }
        for k, trace in traces.items():
            trace[:, t] = out_now[k]
        for k, by_name in states.items():
            for v, now in sims[k].state().items():  # type: ignore[misc]
                by_name[v][:, t] = now
    return Simulation(
        output=traces[outputs[0]], records={k: traces[k] for k in record}, states=states
    )


def _input_array(x: Any) -> np.ndarray:
    """``x`` as a float64 array ``(batch, steps >= 1, channels)``; an ExportError naming ``x``
    and that shape for anything else (text, ragged lists, no steps): the output is sized at
    the first step, so a run of no steps has none to give."""
    rule = "x must be numbers of shape (batch, steps >= 1, channels)"
    try:
        xs = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x,
                        dtype=np.float64)
    except (TypeError, ValueError):
        raise ExportError(f"{rule}; got a {type(x).__name__} that is not an array of "
                          f"numbers: {x!r:.80}") from None
    if xs.ndim != 3 or xs.shape[1] < 1:
        raise ExportError(f"{rule}; got shape {xs.shape}")
    return xs


def _check_sizes(nodes: Mapping[str, Any], edges: list[tuple[str, str]],
                 sims: Mapping[str, _Sim], start: str, channels: int) -> None:
    """Every edge joins a node to one that takes as many values as it puts out, and the input
    has as many channels as the nodes it feeds take: an ExportError naming the nodes and
    sizes (a graph edited by hand, or input of another encoding), not NumPy's broadcast
    error in the middle of the run. Input and Output nodes (a subgraph's too) pass on what
    they get, whatever type is written on them (some writers get those wrong, see
    :class:`spiketune.nir.GraphTypeWarning`), so only the nodes around them are compared."""
    passing = {k for k, v in nodes.items()
               if isinstance(v, nir.Input | nir.Output) or (isinstance(v, tuple) and v[0] == _PASS)}
    for src, dst in edges:
        if dst in passing:
            continue
        if src == start:
            if channels != sims[dst].takes:
                raise ExportError(
                    f"x has {channels} channels, but node {dst!r}, which the input feeds, "
                    f"takes {sims[dst].takes}: x must be (batch, steps, {sims[dst].takes})")
        elif src not in passing and sims[src].size != sims[dst].takes:
            raise ExportError(
                f"edge {src!r} -> {dst!r}: {src!r} puts out {sims[src].size} values and "
                f"{dst!r} takes {sims[dst].takes}; the graph's nodes do not fit together")


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

    def __init__(
        self,
        size: int,
        update: Callable[[Any], np.ndarray],
        state: Callable[[], dict[str, np.ndarray]] | None = None,
        takes: int | None = None,
    ) -> None:
        self.size = size  # values it puts out per sample
        self.takes = size if takes is None else takes  # values it takes in per sample
        self.step = update
        self.state = state

    @classmethod
    def of(cls, node: Any, dt: float, batch: int) -> _Sim:
        if isinstance(node, tuple) and node[0] == _PASS:
            return _sim_io(node[1], dt, batch)
        maker = _SIM_NODES.get(type(node))
        if maker is None:
            known = ", ".join(sorted(k.__name__ for k in _SIM_NODES))
            raise ExportError(
                f"simulate has no rule for a nir.{type(node).__name__} node; known: {known}"
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
    """Input and Output nodes hand their input on as it is; the written type only sizes a node
    nothing feeds (it then puts out zeros)."""
    n = _out_size(node)

    def update(i: Any) -> np.ndarray:
        value = np.asarray(i, dtype=np.float64)
        return value if value.ndim else np.broadcast_to(value, (batch, n))

    return _Sim(n, update)


def _sim_linear(node: Any, dt: float, batch: int) -> _Sim:
    w = _f(node.weight)
    b = _f(node.bias) if isinstance(node, nir.Affine) else 0.0
    return _Sim(w.shape[0], lambda i: np.broadcast_to(i, (batch, w.shape[1])) @ w.T + b,
                takes=w.shape[1])


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
    fire = _firing(node)
    v = np.zeros((batch, n))

    def update(i: Any) -> np.ndarray:
        nonlocal v
        drive = r * i
        v = v + (dt / leak) * (v_leak - v + drive) if leak is not None else v + dt * drive
        out, v = fire(v)
        return out

    return _Sim(n, update, lambda: {"v": v})


def _sim_cuba(node: Any, dt: float, batch: int) -> _Sim:
    """CubaLI / CubaLIF: the synaptic current is updated first, then the membrane reads it."""
    tau_syn, tau_mem, r = _f(node.tau_syn), _f(node.tau_mem), _f(node.r)
    w_in, v_leak = _f(node.w_in), _f(node.v_leak)
    fire = _firing(node)
    n = r.size
    syn = np.zeros((batch, n))
    v = np.zeros((batch, n))

    def update(i: Any) -> np.ndarray:
        nonlocal syn, v
        syn = syn + (dt / tau_syn) * (w_in * i - syn)
        v = v + (dt / tau_mem) * (v_leak - v + r * syn)
        out, v = fire(v)
        return out

    return _Sim(n, update, lambda: {"v": v, "i": syn})


def _firing(node: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(output, membrane)`` of a membrane node from its updated membrane: without a
    threshold (LI, I, CubaLI) the membrane itself, unchanged; with one, a spike (1.0) where
    the membrane exceeds ``v_threshold``, and there the membrane set to ``v_reset``."""
    if not hasattr(node, "v_threshold"):
        return lambda v: (v.copy(), v)
    v_th, v_reset = _f(node.v_threshold), _f(node.v_reset)

    def fire(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = v > v_th
        return z.astype(np.float64), np.where(z, v_reset, v)

    return fire


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

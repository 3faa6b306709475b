"""A NIR graph as a trainable spiketune network: :func:`to_network`.

The graph must have the shape of one recurrent spiking layer with a leaky readout, as
spiketune, snnTorch and Norse write it::

    input -> Linear -> hidden -> Linear | Affine -> readout -> output

- ``hidden``: a ``LIF`` node or a ``CubaLIF`` node, alone or in the recurrent subgraph
  ``input -> n -> output`` with ``n -> Linear -> n``; or spiketune's exact subtract-reset
  subgraph (``LI -> Threshold`` with a ``Scale(-v_th)`` self-connection). A ``CubaLIF`` becomes
  a ``neuron="cuba_lif"`` layer with ``alpha_syn = 1 - dt/tau_syn`` (trained by BPTT:
  ``rule="bptt"`` unless given); one whose synapse passes its input on within the step
  (``tau_syn == dt``, ``alpha_syn = 0``) is read as the LIF it then is.
- ``readout``: an ``LI`` node, or a ``LIF`` that never fires (``v_threshold`` at least
  :data:`~spiketune.nir._profiles.NEVER_FIRES` / 2), read from its membrane.

Parameters are read with NIR's forward-Euler semantics at ``dt`` (seconds): ``alpha = 1 -
dt/tau``, and the input gain ``r dt/tau`` (times ``w_in dt/tau_syn`` for a CubaLIF) is folded
into the weights into the layer. Time constants and thresholds must be the same for every neuron
of a layer (time constants > 0), ``v_leak`` and ``v_reset`` zero, weights matrices that fit the
layers and the sizes the Input and Output nodes declare, and recurrent weights without
self-connections (spiketune's layer has none); anything else is refused with ExportError naming
the node and the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import torch

from spiketune.errors import ExportError
from spiketune.nir._profiles import NEVER_FIRES
from spiketune.nir._read import check_step, graph_step, read
from spiketune.snn import RecurrentSNN, SNNConfig

__all__ = ["to_network"]


@dataclass(frozen=True)
class _Neurons:
    alpha: float
    gain: float
    alpha_syn: float | None
    v_th: float | None
    reset: str
    w_rec: np.ndarray | None


def to_network(
    graph: nir.NIRGraph | str | os.PathLike[str],
    *,
    dt: float | None = None,
    dtype: torch.dtype = torch.float32,
    **config: Any,
) -> RecurrentSNN:
    """The :class:`~spiketune.snn.RecurrentSNN` that runs ``graph`` step for step (see the
    module docstring for the shapes accepted).

    ``dt``: the step in seconds the graph's time constants are read against (default: the
    graph's ``metadata["dt"]``; a graph without one needs it, and gets an ExportError saying
    so). The network's own ``dt`` is that step, or the ``model_dt`` that spiketune's exports
    for an importer with a fixed step of its own (snnTorch's 1e-4 s) record. ``config``:
    further :class:`~spiketune.snn.SNNConfig` fields, e.g. the learning rule for fine-tuning
    (``rule="bptt"``); the architecture and dynamics come from the graph.
    """
    if not isinstance(graph, nir.NIRGraph):
        graph = read(graph)
    step = graph_step(graph, dt)
    chain = _chain(graph)
    names = [name for name, _ in chain]
    kinds = [type(node).__name__ for _, node in chain]
    if (
        len(chain) != 6
        or not isinstance(chain[1][1], nir.Linear | nir.Affine)
        or not isinstance(chain[3][1], nir.Linear | nir.Affine)
        or not isinstance(chain[5][1], nir.Output)
    ):
        raise ExportError(
            "to_network reads input -> Linear -> hidden -> Linear/Affine -> readout -> output; "
            f"this graph is {' -> '.join(f'{n} ({k})' for n, k in zip(names, kinds, strict=True))}"
        )
    w_in_node, hidden_node, w_out_node, readout_node = (node for _, node in chain[1:5])
    if isinstance(w_in_node, nir.Affine) and np.any(np.asarray(w_in_node.bias) != 0):
        raise ExportError(f"node {names[1]!r}: a bias into the hidden layer has no counterpart")
    hidden = _hidden(names[2], hidden_node, step)
    kappa, out_gain = _readout(names[4], readout_node, step)
    w_in = _matrix(names[1], "weight", w_in_node.weight) * hidden.gain
    w_out = _matrix(names[3], "weight", w_out_node.weight) * out_gain
    b_out = (
        np.asarray(w_out_node.bias, dtype=np.float64).ravel() * out_gain
        if isinstance(w_out_node, nir.Affine)
        else None
    )
    _check_weights(names, w_in, hidden.w_rec, w_out, b_out,
                   hidden=_neuron_count(hidden_node), readout=_neuron_count(readout_node))
    _check_declared(names[0], "input_type", chain[0][1].input_type, names[1], "takes",
                    w_in.shape[1])
    _check_declared(names[5], "output_type", chain[5][1].output_type, names[3], "puts out",
                    w_out.shape[0])
    cfg = SNNConfig(
        **{
            **config,
            "n_in": w_in.shape[1],
            "n_rec": w_in.shape[0],
            "n_out": w_out.shape[0],
            "dt": _network_step(graph, dt, step),
            "alpha": hidden.alpha,
            "kappa": kappa,
            "v_th": 1.0 if hidden.v_th is None else hidden.v_th,
            "reset": hidden.reset,
            "recurrent": hidden.w_rec is not None,
            "readout_bias": b_out is not None,
            "neuron": "lif" if hidden.alpha_syn is None else "cuba_lif",
            **({} if hidden.alpha_syn is None else {
                "alpha_syn": hidden.alpha_syn, "rule": config.get("rule", "bptt"),
            }),
        }
    )
    net = RecurrentSNN(cfg, seed=0, dtype=dtype)
    with torch.no_grad():
        net.w_in.copy_(torch.from_numpy(w_in))
        net.w_out.copy_(torch.from_numpy(w_out))
        if b_out is not None and net.b_out is not None:
            net.b_out.copy_(torch.from_numpy(b_out))
        if hidden.w_rec is not None and net.w_rec is not None:
            net.w_rec.copy_(torch.from_numpy(hidden.w_rec * hidden.gain))
    return net


def _matrix(name: str, field: str, values: Any) -> np.ndarray:
    """A weight matrix ``[outputs, inputs]`` of numbers, or an ExportError naming the node
    and the shape: a vector or a 3-D array edited into a graph would otherwise fail inside
    NumPy or torch, far from the node that holds it."""
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExportError(f"node {name!r}: its {field} is not an array of numbers") from None
    if w.ndim != 2:
        raise ExportError(f"node {name!r}: {field} of shape {list(w.shape)}; weights between "
                          "layers are a matrix [outputs, inputs]")
    return w


def _check_declared(name: str, field: str, declared: Any, neighbour: str, verb: str,
                    size: int) -> None:
    """The size an Input or Output node declares is the size of the weights next to it: a
    graph whose Input says 5 channels and whose first Linear takes 3 is not one network, and
    reading it by its weights alone would hide that. Only a shape written as a vector is
    compared: writers that get these types wrong (see
    :class:`spiketune.nir.GraphTypeWarning`) write a matrix such as ``[[1]]`` instead."""
    shapes = list(declared.values()) if isinstance(declared, dict) else [declared]
    if len(shapes) != 1:
        return
    shape = np.asarray(shapes[0])
    if shape.ndim != 1 or shape.size == 0 or not np.issubdtype(shape.dtype, np.integer):
        return
    n = int(np.prod(shape))
    if n != size:
        raise ExportError(f"node {name!r}: its {field} declares {n} values, but {neighbour!r} "
                          f"{verb} {size}")


def _neuron_count(node: Any) -> int | None:
    """The neurons of a layer node (a subgraph: of its neuron node), by its per-neuron
    parameters; None where they are one value for all."""
    if isinstance(node, nir.NIRGraph):
        inner = [v for v in node.nodes.values() if hasattr(v, "r")]
        if not inner:
            return None
        node = inner[0]
    size = np.asarray(node.r).size
    return size if size > 1 else None


def _check_weights(names: list[str], w_in: np.ndarray, w_rec: np.ndarray | None,
                   w_out: np.ndarray, b_out: np.ndarray | None, *, hidden: int | None,
                   readout: int | None) -> None:
    """The weights fit the layers they join and hold numbers: a graph edited by hand must be
    refused, naming the node, rather than read into a network that is not the graph (a
    readout cut to the rows of its weights) or that computes NaN."""
    n_rec, n_out = w_in.shape[0], w_out.shape[0]
    checks = [
        (names[1], hidden is None or n_rec == hidden,
         f"puts out {n_rec} values, but {names[2]!r} has {hidden} neurons"),
        (names[2], w_rec is None or w_rec.shape == (n_rec, n_rec),
         f"recurrent weights of shape {None if w_rec is None else list(w_rec.shape)}; "
         f"{n_rec} neurons need [{n_rec}, {n_rec}]"),
        (names[3], w_out.shape[1] == n_rec,
         f"takes {w_out.shape[1]} values, but {names[2]!r} puts out {n_rec}"),
        (names[3], readout is None or n_out == readout,
         f"puts out {n_out} values, but {names[4]!r} has {readout} neurons"),
        (names[3], b_out is None or b_out.size == n_out,
         f"a bias of {None if b_out is None else b_out.size} values for {n_out} outputs"),
    ]
    for name, fits, problem in checks:
        if not fits:
            raise ExportError(f"node {name!r}: {problem}")
    for name, weights in ((names[1], w_in), (names[2], w_rec), (names[3], w_out),
                          (names[3], b_out)):
        if weights is not None and not np.all(np.isfinite(weights)):
            raise ExportError(f"node {name!r}: its weights hold non-finite values (NaN or "
                              "infinity)")


def _chain(graph: nir.NIRGraph) -> list[tuple[str, Any]]:
    """The nodes from the Input node along single edges; stops at a fork or the end."""
    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    starts = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(starts) != 1:
        raise ExportError(f"to_network needs one Input node; the graph has {starts}")
    chain = [(starts[0], graph.nodes[starts[0]])]
    while len(succ.get(chain[-1][0], [])) == 1 and len(chain) <= len(graph.nodes):
        nxt = succ[chain[-1][0]][0]
        chain.append((nxt, graph.nodes[nxt]))
    return chain


def _uniform(name: str, field: str, values: Any) -> float:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all(arr == arr[0]):
        raise ExportError(
            f"node {name!r}: {field} differs between neurons ({arr.min():g} to {arr.max():g}); "
            "a spiketune layer has one value"
        )
    return float(arr[0])


def _zero(name: str, field: str, values: Any) -> None:
    if np.any(np.asarray(values) != 0):
        raise ExportError(f"node {name!r}: {field} must be 0 (spiketune's neurons have none)")


def _network_step(graph: nir.NIRGraph, dt: float | None, step: float) -> float:
    """The network's own step: ``step``, the one the graph's time constants are read against,
    unless the graph is spiketune's export for an importer with a step of its own (snnTorch's
    1e-4 s), which records the model's step as ``model_dt``: the decays per step are the
    same either way, and the network's rates (Hz), loss window and regulariser in seconds
    are then the model's again, not 10 times off."""
    model_dt = (graph.metadata or {}).get("model_dt")
    if dt is not None or model_dt is None:
        return step
    try:
        return check_step(float(np.asarray(model_dt)))
    except (TypeError, ValueError):
        raise ExportError(f"the graph's metadata 'model_dt' = {model_dt!r} is not a number of "
                          "seconds") from None


def _tau(name: str, field: str, values: Any) -> float:
    """A layer's time constant: one value for all neurons and a finite number of seconds > 0
    (an edited graph's 0 would divide by zero in every formula of the mapping)."""
    tau = _uniform(name, field, values)
    if not (np.isfinite(tau) and tau > 0):
        raise ExportError(f"node {name!r}: {field}={tau:g} s; a time constant must be a finite "
                          "number of seconds > 0 (forward Euler needs it >= dt)")
    return tau


def _decay(name: str, tau: float, dt: float) -> float:
    alpha = 1.0 - dt / tau
    if not 0.0 <= alpha < 1.0:
        raise ExportError(
            f"node {name!r}: tau={tau:g} s gives a decay of {alpha:g} per step of dt={dt:g} s; "
            "forward Euler needs tau >= dt"
        )
    return alpha


def _hidden(name: str, node: Any, dt: float) -> _Neurons:
    w_rec = None
    if isinstance(node, nir.NIRGraph):
        inner = {k: v for k, v in node.nodes.items() if not isinstance(v, nir.Input | nir.Output)}
        kinds = {type(v) for v in inner.values()}
        if kinds == {nir.LI, nir.Threshold, nir.Scale} or kinds == {
            nir.LI, nir.Threshold, nir.Scale, nir.Linear,
        }:
            return _subtract_subgraph(name, inner, dt)
        neurons = [v for v in inner.values() if isinstance(v, nir.LIF | nir.CubaLIF)]
        weights = [v for v in inner.values() if isinstance(v, nir.Linear | nir.Affine)]
        if len(inner) != 2 or len(neurons) != 1 or len(weights) != 1:
            raise ExportError(
                f"subgraph {name!r}: expected one LIF or CubaLIF node and its recurrent "
                f"Linear; got {sorted(type(v).__name__ for v in inner.values())}"
            )
        if isinstance(weights[0], nir.Affine) and np.any(np.asarray(weights[0].bias) != 0):
            raise ExportError(f"subgraph {name!r}: a recurrent bias has no counterpart")
        w_rec = _matrix(name, "recurrent weight", weights[0].weight)
        if np.any(np.diag(w_rec) != 0):
            raise ExportError(
                f"subgraph {name!r}: recurrent self-connections (non-zero diagonal) have no "
                "counterpart: spiketune's recurrent layer has none"
            )
        node = neurons[0]
    alpha_syn: float | None = None
    if isinstance(node, nir.CubaLIF):
        tau_syn = _tau(name, "tau_syn", node.tau_syn)
        tau = _tau(name, "tau_mem", node.tau_mem)
        gain = _uniform(name, "w_in", node.w_in) * _uniform(name, "r", node.r) * dt / tau
        if not np.isclose(tau_syn, dt, rtol=1e-9, atol=0):
            alpha_syn = _decay(name, tau_syn, dt)  # its own synapse: a cuba_lif layer
            gain *= dt / tau_syn
        if node.v_reset is not None:
            _zero(name, "v_reset", node.v_reset)
        reset = "zero"
    elif isinstance(node, nir.LIF):
        tau = _tau(name, "tau", node.tau)
        gain = _uniform(name, "r", node.r) * dt / tau
        _zero(name, "v_reset", node.v_reset)
        reset = "zero"
    else:
        raise ExportError(
            f"node {name!r}: a nir.{type(node).__name__} hidden layer has no spiketune neuron; "
            "read: LIF, CubaLIF, spiketune's subtract-reset subgraph"
        )
    _zero(name, "v_leak", node.v_leak)
    v_th = _uniform(name, "v_threshold", node.v_threshold)
    return _Neurons(_decay(name, tau, dt), gain, alpha_syn, v_th, reset, w_rec)


def _subtract_subgraph(name: str, inner: dict[str, Any], dt: float) -> _Neurons:
    li = next(v for v in inner.values() if isinstance(v, nir.LI))
    th = next(v for v in inner.values() if isinstance(v, nir.Threshold))
    scale = next(v for v in inner.values() if isinstance(v, nir.Scale))
    linear = [v for v in inner.values() if isinstance(v, nir.Linear)]
    v_th = _uniform(name, "threshold", th.threshold)
    if not np.allclose(np.asarray(scale.scale), -v_th, rtol=1e-12, atol=0):
        raise ExportError(f"subgraph {name!r}: the reset Scale must be -v_th = {-v_th:g}")
    _zero(name, "v_leak", li.v_leak)
    tau = _tau(name, "tau", li.tau)
    w_rec = _matrix(name, "recurrent weight", linear[0].weight) if linear else None
    if w_rec is not None and np.any(np.diag(w_rec) != 0):
        raise ExportError(f"subgraph {name!r}: recurrent self-connections have no counterpart")
    gain = _uniform(name, "r", li.r) * dt / tau
    if not np.isclose(gain, 1.0, rtol=1e-9):
        raise ExportError(
            f"subgraph {name!r}: the subtract reset is read with r = tau/dt only (got an input "
            f"gain of {gain:g}), so that the reset subtracts exactly v_th"
        )
    return _Neurons(_decay(name, tau, dt), 1.0, None, v_th, "subtract", w_rec)


def _readout(name: str, node: Any, dt: float) -> tuple[float, float]:
    """``(kappa, gain)`` of the readout node."""
    if isinstance(node, nir.LIF) and np.all(np.asarray(node.v_threshold) >= NEVER_FIRES / 2):
        _zero(name, "v_leak", node.v_leak)
        tau = _tau(name, "tau", node.tau)
        return _decay(name, tau, dt), _uniform(name, "r", node.r) * dt / tau
    if isinstance(node, nir.LI):
        _zero(name, "v_leak", node.v_leak)
        tau = _tau(name, "tau", node.tau)
        return _decay(name, tau, dt), _uniform(name, "r", node.r) * dt / tau
    raise ExportError(
        f"node {name!r}: a nir.{type(node).__name__} readout has no spiketune counterpart; "
        "read: LI, or a LIF that never fires (v_threshold >= 1.7e38)"
    )

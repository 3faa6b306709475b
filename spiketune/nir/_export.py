"""NIR export of trained networks: :func:`to_graph`, :func:`export`, :func:`export_best_model`.

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

How :func:`spiketune.nir.simulate` runs a graph with cycles is in ``_simulate``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from spiketune.errors import CheckpointError, ExportError
from spiketune.snn import ALIFParameters, LIFParameters, RecurrentSNN, load_checkpoint

__all__ = ["APPROXIMATIONS", "export", "export_best_model", "to_graph"]

#: Names accepted by ``approximate=``: what the caller agrees to lose in the export.
APPROXIMATIONS: dict[str, str] = {
    "adaptation": "write an ALIF layer as LIF with threshold v_th (the adaptation is dropped)",
    "refractory": "drop the refractory period (NIR's neurons have none)",
    "reset": "write a subtract-reset layer as a nir.LIF that resets to 0 (for LIF-only readers)",
}


# --------------------------------------------------------------------------------- export
def to_graph(
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


def export(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    dt: float | None = None,
    approximate: Collection[str] = (),
) -> Path:
    """Write ``model`` as a NIR file (HDF5) at ``path``; returns the path.

    Missing parent directories are created. See :func:`to_graph` for ``dt`` and
    ``approximate``. Raises ExportError for what NIR cannot express, and when the file cannot
    be written (the message names the path and the reason).
    """
    graph = to_graph(model, dt=dt, approximate=approximate)
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        nir.write(out, graph)
    except OSError as err:  # h5py reports every file-system failure as an OSError
        raise ExportError(f"{out}: cannot write the NIR file ({_os_reason(err)})") from None
    return out


def _os_reason(err: OSError) -> str:
    """The operating system's words for ``err`` (``strerror``), else the exception's text."""
    return err.strerror or str(err) or type(err).__name__


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


# ------------------------------------------------------------------ an experiment's best model
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
    at ``path``; returns the path written. ``dt`` and ``approximate`` as for :func:`export`.
    """
    if format != "nir":
        raise ExportError(f"format={format!r}: unknown export format; known: 'nir'")
    checkpoint = Path(experiment_dir) / "best_model" / "best_model.pt"
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{experiment_dir}: no best model to export (expected {checkpoint}); the experiment's "
            "trials keep one with spiketune.trial.offer_best_model"
        )
    network = load_checkpoint(checkpoint).network
    return export(network, path, dt=dt, approximate=approximate)

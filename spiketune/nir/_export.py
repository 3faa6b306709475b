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
``input`` -> ``w_in`` (``nir.Linear``) -> ``hidden`` -> ``w_out`` (``nir.Affine``, or
``nir.Linear`` without readout bias) -> ``readout`` -> ``output``. What ``hidden`` and
``readout`` are depends on the importer the graph is written for (``target=``, one
:class:`~spiketune.nir._profiles.ImporterProfile` each, see ``_profiles``):

- ``"generic"`` (the default; NIR's own forward-Euler semantics, exact for every LIF network):
  reset "zero" is the usual recurrent subgraph ``input -> lif (nir.LIF, v_reset 0) -> output``
  with ``lif -> w_rec (nir.Linear) -> lif``; reset "subtract" is written exactly as what it is,
  a self-connection of weight ``-v_th``: ``input -> membrane (nir.LI) -> spike
  (nir.Threshold) -> output`` with ``spike -> w_rec -> membrane`` and ``spike -> reset
  (nir.Scale, -v_th) -> membrane``. The readout is a ``nir.LI`` node.
- ``"snntorch"``, ``"norse"``: LIF subgraphs only (their LIF resets to zero), the readout a LIF
  that never fires, read from its membrane; ``"rockpool"``: ``CubaLIF`` subgraphs.

NIR cannot express an adaptive threshold (ALIF) or a refractory period, and an importer may lack
a reset or a neuron: each is refused, unless the caller accepts the approximation by name
(:data:`APPROXIMATIONS`); the graph's ``metadata["approximations"]`` lists what was changed and
:func:`check_export` measures what it costs in accuracy.

How :func:`spiketune.nir.simulate` runs a graph with cycles is in ``_simulate``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from spiketune._lock import exclusive_lock
from spiketune.errors import CheckpointError, ConfigError, ExportError, Problem, StorageError
from spiketune.nir._profiles import PROFILES, ImporterProfile, get_profile
from spiketune.snn import ALIFParameters, LIFParameters, RecurrentSNN, load_checkpoint

__all__ = [
    "APPROXIMATIONS",
    "TARGETS",
    "ExportCheck",
    "check_export",
    "export",
    "export_best_model",
    "to_graph",
]

#: The importers a graph can be written for (``target=``, ``--for``).
TARGETS: tuple[str, ...] = tuple(PROFILES)

#: Names accepted by ``approximate=``: what the caller agrees to lose in the export.
APPROXIMATIONS: dict[str, str] = {
    "adaptation": "write an ALIF layer as LIF with threshold v_th (the adaptation is dropped)",
    "refractory": "drop the refractory period (NIR's neurons have none)",
    "reset": "write the layer with the importer's reset: a subtract reset as a reset to 0 "
    "(generic, snntorch, norse), any reset as Rockpool's subtraction at the spike (rockpool)",
    "synapse": "give each LIF neuron the synaptic current the importer's neuron always has "
    "(rockpool: half of it decays per step)",
}


# --------------------------------------------------------------------------------- export
def to_graph(
    model: torch.nn.Module,
    *,
    target: str = "generic",
    dt: float | None = None,
    approximate: Collection[str] | None = (),
) -> nir.NIRGraph:
    """The NIR graph of ``model`` (see the module docstring for the nodes and the mapping).

    ``target``: the importer the graph is for, one of :data:`TARGETS`. ``dt``: the integration
    step in seconds the graph's time constants are expressed against (default: the model's
    ``config.dt``; snnTorch's fixed 1e-4 s and Norse's default 1e-3 s for those targets).
    ``approximate``: names from :data:`APPROXIMATIONS` (None: none). Raises ExportError for a
    model type or feature the target cannot run exactly and that ``approximate`` does not
    accept.
    """
    profile = get_profile(target)
    accepted = _check_approximations(approximate)
    converter = _find_converter(model)
    return converter(model, profile, dt, accepted)


def export(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    target: str = "generic",
    dt: float | None = None,
    approximate: Collection[str] | None = (),
) -> Path:
    """Write ``model`` as a NIR file (HDF5) at ``path``; returns the path.

    Missing parent directories are created. An existing file at ``path`` is replaced only
    when it is a NIR file (an earlier export): a checkpoint or any other file named by
    mistake is refused, not lost. See :func:`to_graph` for ``target``, ``dt`` and
    ``approximate``. Raises ExportError for what the target cannot express, for a file it
    will not replace, and when the file cannot be written (the message names the path and
    the reason).
    """
    graph = to_graph(model, target=target, dt=dt, approximate=approximate)
    out = Path(path)
    replaceable_nir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        nir.write(out, graph)
    except OSError as err:  # h5py reports every file-system failure as an OSError
        raise ExportError(f"{out}: cannot write the NIR file ({_os_reason(err)})") from None
    return out


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # how every NIR file (HDF5) begins


def replaceable_nir(path: Path, option: str | None = None) -> None:
    """Refuse to replace ``path`` unless it is missing or a NIR file: an export replaces an
    earlier export, never another file (the experiment's own checkpoint, a user's file given
    by mistake). ``option`` names the path in the message (``--output``)."""
    if not path.is_file():
        return
    named = f"{option} {path}" if option else str(path)
    try:
        with path.open("rb") as f:
            head = f.read(len(_HDF5_SIGNATURE))
    except OSError as e:
        raise ExportError(f"{named}: cannot be read ({e.strerror})") from None
    if head != _HDF5_SIGNATURE:
        raise ExportError(f"{named}: exists and is not a NIR file; an export replaces only a "
                          "NIR file (an earlier export): give another name, or remove the "
                          "file first")


def _os_reason(err: OSError) -> str:
    """The operating system's words for ``err`` (``strerror``), else the exception's text."""
    return err.strerror or str(err) or type(err).__name__


def _check_approximations(approximate: Collection[str] | None) -> frozenset[str]:
    """The accepted approximations as a set: None means none (what a caller passing an
    optional setting on gets), one name stands for itself; anything but names of
    :data:`APPROXIMATIONS` is an ExportError naming ``approximate``."""
    if approximate is None:
        return frozenset()
    if isinstance(approximate, str):
        approximate = (approximate,)
    names = tuple(approximate) if isinstance(approximate, Iterable) else None
    if names is None or not all(isinstance(a, str) for a in names):
        raise ExportError(
            f"approximate={approximate!r}: expected names of approximations (a set of strings "
            f"such as {{'reset'}}), or None for none; known: {', '.join(APPROXIMATIONS)}"
        )
    unknown = sorted(set(names) - set(APPROXIMATIONS))
    if unknown:
        raise ExportError(
            f"approximate={unknown!r}: unknown approximation; known: "
            + ", ".join(f"{k!r} ({v})" for k, v in APPROXIMATIONS.items())
        )
    return frozenset(names)


def _find_converter(
    model: object,
) -> Callable[[Any, ImporterProfile, float | None, frozenset[str]], nir.NIRGraph]:
    for kind, converter in _MODEL_CONVERTERS.items():
        if isinstance(model, kind):
            return converter
    known = ", ".join(k.__name__ for k in _MODEL_CONVERTERS)
    raise ExportError(
        f"no NIR converter for a {type(model).__name__}; models that can be exported: {known}"
    )


def _recurrent_snn_graph(
    net: RecurrentSNN, profile: ImporterProfile, dt: float | None, approximate: frozenset[str]
) -> nir.NIRGraph:
    cfg = net.config
    step = profile.step(dt, cfg.dt)
    p, notes = _expressible_neuron(net.neuron_params, approximate)

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float64).numpy().copy()

    w_rec_t = net.recurrent_weight()
    hidden = profile.hidden(p, cfg.n_rec, None if w_rec_t is None else arr(w_rec_t), step,
                            approximate)
    readout = profile.readout(cfg.decay_out, cfg.n_out, step)
    w_out = arr(net.w_out) * readout.gain
    readout_w = (
        nir.Linear(weight=w_out)
        if net.b_out is None
        else nir.Affine(weight=w_out, bias=arr(net.b_out) * readout.gain)
    )
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type=np.array([cfg.n_in])),
        "w_in": nir.Linear(weight=arr(net.w_in) * hidden.gain),
        "hidden": hidden.node,
        "w_out": readout_w,
        "readout": readout.node,
        "output": nir.Output(output_type=np.array([cfg.n_out])),
    }
    edges = [
        ("input", "w_in"),
        ("w_in", "hidden"),
        ("hidden", "w_out"),
        ("w_out", "readout"),
        ("readout", "output"),
    ]
    notes += [*hidden.notes, *readout.notes]
    metadata = {
        "source": "spiketune",
        "target": profile.name,
        "importer": profile.importer,
        "readout": profile.readout_at,
        "dt": float(step),
        "model_dt": float(cfg.dt),
        "neuron": cfg.neuron,
        "reset": cfg.reset,
        "approximations": ", ".join(notes) if notes else "none",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _expressible_neuron(
    p: LIFParameters, approximate: frozenset[str]
) -> tuple[LIFParameters, list[str]]:
    """The neuron record with what no importer can run removed (an adaptive threshold, a
    refractory period), when the caller accepted it; ExportError naming the way out otherwise.
    Whatever is left is the profile's to write."""
    notes: list[str] = []
    if isinstance(p, ALIFParameters):
        if "adaptation" not in approximate:
            raise ExportError(
                "NIR has no adaptive-threshold neuron, and this network is ALIF (neuron='alif', "
                f"beta={p.beta}): pass approximate={{'adaptation'}} (--approximate adaptation) to "
                f"write it as LIF with "
                f"threshold v_th={p.v_th} (the adaptation is dropped and its spikes will differ), "
                "or train a LIF network (neuron='lif')"
            )
        notes.append(f"adaptive threshold (beta={p.beta}) dropped")
        p = LIFParameters(
            alpha=p.alpha, v_th=p.v_th, reset=p.reset, refractory_steps=p.refractory_steps
        )
    if p.refractory_steps > 0:
        if "refractory" not in approximate:
            raise ExportError(
                f"NIR has no refractory period, and this network has refractory_steps="
                f"{p.refractory_steps}: pass approximate={{'refractory'}} (--approximate "
                "refractory) to export it without one (its spikes may then differ from the "
                "trained network's)"
            )
        notes.append(f"refractory period of {p.refractory_steps} step(s) dropped")
        p = dataclasses.replace(p, refractory_steps=0)
    return p, notes


#: model type -> converter to a whole NIR graph
_MODEL_CONVERTERS: dict[
    type, Callable[[Any, ImporterProfile, float | None, frozenset[str]], nir.NIRGraph]
] = {
    RecurrentSNN: _recurrent_snn_graph,
}


# ------------------------------------------------------------------ what an export costs
@dataclass(frozen=True)
class ExportCheck:
    """A model and its exported graph scored on the same data.

    ``model_accuracy``: the network as trained; ``export_accuracy``: the graph as its importer
    runs it (``target``); ``agreement``: the fraction of samples both classify alike;
    ``samples``: how many were scored; ``approximations``: what the export changed ("none":
    the two accuracies are equal up to float rounding)."""

    target: str
    model_accuracy: float
    export_accuracy: float
    agreement: float
    samples: int
    approximations: str

    def summary(self) -> str:
        """One line for a terminal."""
        return (
            f"accuracy on {self.samples} samples: model {self.model_accuracy:.4f}, exported "
            f"--for {self.target} {self.export_accuracy:.4f} (same prediction on "
            f"{self.agreement:.1%}; approximations: {self.approximations})"
        )


def check_export(
    model: RecurrentSNN,
    graph: nir.NIRGraph | str | os.PathLike[str],
    data: Any,
    *,
    batch_size: int = 256,
) -> ExportCheck:
    """Score ``model`` and the graph written from it (by :func:`export`, any target) on
    ``data``: a spiketune ``Dataset`` (``inputs``, ``labels``) or a pair ``(x, y)`` of
    batch-first inputs ``(B, T, n_in)`` and class indices.

    The graph is run as its importer would run it (the target's own conventions, e.g.
    Rockpool's exact decays and synaptic current), without the importer installed. Both are
    classified by the readout summed over the model's decision window (``loss_steps``).
    Inputs and labels may be tensors or NumPy arrays; no samples give ``samples=0`` and NaN
    figures. Raises ExportError when the graph was not written from a network of the model's
    kind and shape (inputs, hidden neurons, classes, neuron, reset: its accuracy would mean
    nothing) or the data do not fit the model, ConfigError for a ``batch_size`` below 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(Problem("batch_size", batch_size, "an integer >= 1"))
    if not isinstance(model, RecurrentSNN):
        raise ExportError(
            f"model: check_export scores a RecurrentSNN against the graph exported from it; "
            f"got a {type(model).__name__}, which has no NIR export"
        )
    if not isinstance(graph, nir.NIRGraph):
        from spiketune.nir._read import read

        graph = read(graph)
    _check_graph_of(model, graph)
    meta = graph.metadata or {}
    target = str(meta.get("target", "generic"))
    profile = get_profile(target)
    inputs, labels = _scored_data(data, model.n_in)
    decide = model.readout_loss()
    dtype = next(model.parameters()).dtype
    ours, theirs = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    with torch.no_grad():
        for lo in range(0, len(labels), batch_size):
            x = inputs[lo : lo + batch_size].to(dtype)
            ours.append(decide.scores(model.simulate(x).readout).argmax(-1).cpu())
            y = profile.readout_trace(graph, x.detach().cpu().double().numpy())
            theirs.append(decide.scores(torch.from_numpy(y)).argmax(-1))
    a, b = torch.cat(ours), torch.cat(theirs)
    truth = labels.cpu()
    n = len(truth)
    return ExportCheck(
        target=target,
        model_accuracy=float((a == truth).float().mean()) if n else math.nan,
        export_accuracy=float((b == truth).float().mean()) if n else math.nan,
        agreement=float((a == b).float().mean()) if n else math.nan,
        samples=n,
        approximations=str(meta.get("approximations", "none")),
    )


def _check_graph_of(model: RecurrentSNN, graph: nir.NIRGraph) -> None:
    """ExportError unless ``graph`` has the shape of an export of ``model``: the weights
    ``w_in`` and ``w_out`` every target writes, sized for the model's inputs, hidden neurons
    and classes, and the neuron and reset its metadata records. A graph of another network
    scores without complaint otherwise, and its agreement with the model means nothing."""
    cfg = model.config
    weights: dict[str, np.ndarray] = {}
    for name in ("w_in", "w_out"):
        w = np.asarray(getattr(graph.nodes.get(name), "weight", None))
        if w.ndim != 2:
            raise ExportError(
                f"graph: no weight matrix in a node {name!r}; check_export scores a graph "
                f"written by spiketune.nir.export (nodes: {', '.join(graph.nodes)})"
            )
        weights[name] = w
    meta = graph.metadata or {}
    pairs = [
        ("inputs", weights["w_in"].shape[1], cfg.n_in),
        ("hidden neurons", weights["w_in"].shape[0], cfg.n_rec),
        ("classes", weights["w_out"].shape[0], cfg.n_out),
        ("neuron", meta.get("neuron"), cfg.neuron),
        ("reset", meta.get("reset"), cfg.reset),
    ]
    differs = [f"{what} {theirs!s} in the graph, {ours!s} in the model"
               for what, theirs, ours in pairs if theirs is not None and theirs != ours]
    if differs:
        raise ExportError("graph: not an export of this model: " + "; ".join(differs))


def _scored_data(data: Any, n_in: int) -> tuple[Tensor, Tensor]:
    """``(inputs, labels)`` of ``data`` as tensors, inputs ``(B, T, n_in)`` and one label per
    sample; ExportError naming what does not fit (NumPy arrays are converted)."""
    if isinstance(data, tuple) and len(data) == 2:
        inputs, labels = data
    elif hasattr(data, "inputs") and hasattr(data, "labels"):
        inputs, labels = data.inputs, data.labels
    else:
        raise ExportError(
            f"data: expected a Dataset (inputs, labels) or a pair (x, y); got "
            f"{type(data).__name__}"
        )
    try:
        inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ExportError(f"data: inputs and labels must be arrays of numbers ({e})") from None
    if inputs.dim() != 3 or inputs.shape[-1] != n_in:
        raise ExportError(
            f"data: inputs of shape {tuple(inputs.shape)}; the model reads (batch, steps, "
            f"{n_in})"
        )
    if labels.dim() != 1 or len(labels) != len(inputs):
        raise ExportError(
            f"data: labels of shape {tuple(labels.shape)} for {len(inputs)} inputs; one class "
            "index per input"
        )
    return inputs, labels


# ------------------------------------------------------------------ an experiment's best model
def export_best_model(
    experiment_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    format: str = "nir",
    *,
    target: str = "generic",
    dt: float | None = None,
    approximate: Collection[str] | None = (),
) -> Path:
    """Write the experiment's best model (``<experiment_dir>/best_model/best_model.pt``, a
    checkpoint of :func:`spiketune.snn.save_checkpoint`) in ``format`` (only ``"nir"`` so far)
    at ``path``; returns the path written. ``experiment_dir``: the experiment's directory, or
    its id, id prefix or name under the experiments root, as the CLI takes it. ``target``,
    ``dt`` and ``approximate`` as for :func:`export`.
    """
    network = best_network(experiment_dir, format)
    return export(network, path, target=target, dt=dt, approximate=approximate)


def best_network(experiment_dir: str | os.PathLike[str], format: str = "nir") -> Any:
    """The network of the experiment's best model (checked before anything is written)."""
    if format != "nir":
        raise ExportError(f"format={format!r}: unknown export format; known: 'nir'")
    if not Path(experiment_dir).is_dir():  # an id, id prefix or name, as the CLI takes it
        from spiketune.engine.storage import find_experiment

        experiment_dir = find_experiment(str(experiment_dir))
    checkpoint = Path(experiment_dir) / "best_model" / "best_model.pt"
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{experiment_dir}: no best model to export (expected {checkpoint}); the experiment's "
            "trials keep one with spiketune.trial.offer_best_model"
        )
    return load_checkpoint(checkpoint).network


# ------------------------------------------------------------- checked exports, on record
_EXPORTS_FILE = "exports.json"


def _exports_path(experiment_dir: str | os.PathLike[str]) -> Path:
    return Path(experiment_dir) / "best_model" / _EXPORTS_FILE


def _parse_export_checks(path: Path) -> list[dict[str, Any]] | None:
    """The records in ``path``; None when there is no file. ValueError when the file is not a
    JSON list of objects (a decoding error is one too), OSError when it cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    doc = json.loads(raw.decode("utf-8"))
    if not isinstance(doc, list):
        raise ValueError(f"expected a JSON list of records, but got {type(doc).__name__}")
    for i, record in enumerate(doc):
        if not isinstance(record, dict):
            raise ValueError(f"record {i} is a {type(record).__name__}, not an object")
    return doc


def load_export_checks(experiment_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The export checks recorded by ``spiketune export-model --data`` (oldest first), from
    ``<experiment_dir>/best_model/exports.json``; ``[]`` when there is none.

    Private to the command and the report: the records are what they show, not an API. A file
    that cannot be read or parsed raises StorageError naming it and the problem, and is left as
    it is, so that a reader (the report) never loses what a writer put there.
    """
    path = _exports_path(experiment_dir)
    try:
        records = _parse_export_checks(path)
    except OSError as e:
        raise StorageError(f"the export checks {path} cannot be read: {_os_reason(e)}") from None
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StorageError(f"the export checks {path} are corrupt: {e}") from None
    return records or []


def record_export_check(
    experiment_dir: str | os.PathLike[str],
    check: ExportCheck,
    path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    *,
    now: datetime | None = None,
) -> tuple[Path, Path | None]:
    """Add the check of the export written at ``path`` (scored on ``data_path``) to the
    experiment's ``best_model/exports.json``, so the report can show what each export costs
    in accuracy long after the command's output is gone.

    One record per written file: a new check of the same file replaces the earlier record (the
    file was overwritten, the old figures describe nothing that exists). Paths are stored
    resolved, so the same file is recognised whatever directory the command ran from.
    Non-finite figures (no samples) are stored as null: the file stays strict JSON.

    The file is replaced atomically (a temporary file, then ``os.replace``): a crash leaves the
    old list or the new one, never half of one. Two commands recording at once are serialised
    by an exclusive lock on ``exports.json.lock`` beside it, so neither loses the other's
    record. An existing file that cannot be parsed is not overwritten: it is moved aside to
    ``exports.json.corrupt-<UTC time>`` and a new list is started. Returns the path of
    ``exports.json`` and where a corrupt one was moved (or None); the caller says so, as this
    function prints nothing.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    target = _exports_path(experiment_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.with_name(target.name + ".lock")):
        return _add_export_check(target, check, path, data_path, when)


def _add_export_check(
    target: Path, check: ExportCheck, path: str | os.PathLike[str],
    data_path: str | os.PathLike[str], when: datetime,
) -> tuple[Path, Path | None]:
    """:func:`record_export_check`'s read-modify-write, under the lock on ``target``."""
    moved: Path | None = None
    try:
        records = _parse_export_checks(target) or []
    except ValueError:
        moved = _move_aside(target, when)
        records = []
    file = str(Path(path).resolve())
    record: dict[str, Any] = {
        "file": file,
        "target": check.target,
        "approximations": check.approximations,
        "data": str(Path(data_path).resolve()),
        "samples": check.samples,
        "model_accuracy": _finite_or_none(check.model_accuracy),
        "export_accuracy": _finite_or_none(check.export_accuracy),
        "agreement": _finite_or_none(check.agreement),
        "checked_at": when.isoformat(timespec="seconds"),
    }
    records = [r for r in records if r.get("file") != file] + [record]
    _replace_text(target, json.dumps(records, indent=2) + "\n")
    return target, moved


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _move_aside(path: Path, when: datetime) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<UTC time>`` (numbered when that name is taken)."""
    stem = f"{path.name}.corrupt-{when.strftime('%Y%m%dT%H%M%SZ')}"
    aside = path.with_name(stem)
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{stem}-{n}")
    os.replace(path, aside)
    return aside


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

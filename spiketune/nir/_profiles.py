"""Importer profiles: how one reader of NIR files wants a spiketune network written.

NIR fixes what a node *is*, not how a reader integrates it: snnTorch assumes a step of 1e-4 s
and maps no ``LI`` node; Norse ignores ``r`` and integrates at a ``dt`` it is given; Rockpool
integrates exactly (``exp(-dt/tau)``), derives ``dt`` as ``tau/(1 + r)``, truncates an ``LI``
node's ``tau`` to an integer, and its only spiking neuron has a synaptic current. Each
importer therefore gets one small :class:`ImporterProfile`; :func:`spiketune.nir.export` asks
the profile named by ``target=`` for every layer.

Lifecycle of a profile during one export (all times in seconds):

1. :meth:`ImporterProfile.step` fixes the step ``dt`` the graph is written for, from the step
   the caller asked for (or None) and the model's own.
2. :meth:`ImporterProfile.hidden` writes the spiking layer. It looks the neuron record's type up
   in :attr:`ImporterProfile.NEURONS` and calls that method (``hidden_lif`` for
   :class:`~spiketune.snn.LIFParameters`, ``hidden_cuba_lif`` for the current-based
   :class:`~spiketune.snn.CubaLIFParameters`); a new neuron model is one more entry there and
   one method per profile. Adaptation and refractory periods are removed
   (or refused) before this call, identically for every profile.
3. :meth:`ImporterProfile.readout` writes the leaky-integrator readout.
4. :meth:`ImporterProfile.readout_trace` runs a written graph as the importer would and returns
   the readout, ``(batch, steps, n_out)``: what :func:`spiketune.nir.check_export` scores.

Each layer comes back as a :class:`Layer`: its node, the factor ``gain`` by which the weights
*into* it must be multiplied (a reader that ignores ``r`` needs the input scaling in the
weights), and notes on what was approximated. A profile raises ExportError, naming the
approximation that would allow it, for anything its importer cannot run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import nir
import numpy as np

from spiketune.errors import ExportError
from spiketune.nir._read import check_step
from spiketune.snn import CubaLIFParameters, LIFParameters

__all__ = ["NEVER_FIRES", "PROFILES", "ImporterProfile", "Layer", "get_profile"]

#: The threshold of a spiking node written to act as a leaky integrator (a readout for
#: readers without an ``LI`` node): the largest float32, so a reader computing in float32
#: never reaches it and never computes ``0 * inf`` (Rockpool's reset would give NaN).
NEVER_FIRES = float(np.finfo(np.float32).max)

#: A time constant this many times shorter than the step leaves no memory under an exact
#: integrator: exp(-1000) is 0.0 in float64 and float32.
_NO_MEMORY = 1e-3


@dataclass(frozen=True)
class Layer:
    """One written layer: its NIR ``node``, the ``gain`` the weights into it are multiplied by,
    and ``notes`` on what was approximated (empty when exact)."""

    node: nir.NIRNode
    gain: float = 1.0
    notes: tuple[str, ...] = ()


class ImporterProfile:
    """Base of the importer profiles; see the module docstring for the lifecycle.

    ``name`` is the ``target=`` / ``--for`` value; ``importer`` says which function reads the
    file; ``readout_at`` where the readout is found after import.
    """

    name: ClassVar[str]
    importer: ClassVar[str]
    readout_at: ClassVar[str] = "the graph's output"
    #: neuron record type -> name of the method that writes that neuron's layer
    NEURONS: ClassVar[dict[type, str]] = {
        LIFParameters: "hidden_lif", CubaLIFParameters: "hidden_cuba_lif",
    }
    #: whether the importer's neuron resets at the spike and may emit several spikes per step
    #: (``reset="subtract_at_spike"``, ``max_spikes``): Rockpool's does, the others refuse it
    CHIP_NEURON: ClassVar[bool] = False

    def step(self, dt: float | None, model_dt: float) -> float:
        """The step written to the graph, seconds: ``dt`` if given, else the model's own."""
        return check_step(model_dt if dt is None else dt)

    def hidden(
        self, p: Any, n: int, w_rec: np.ndarray | None, dt: float, approximate: frozenset[str]
    ) -> Layer:
        """The ``n`` spiking neurons with recurrent weights ``w_rec`` (None: no recurrence)."""
        if not self.CHIP_NEURON and (p.reset == "subtract_at_spike" or p.max_spikes != 1):
            raise ExportError(
                f"--for {self.name}: this network's neuron resets at the spike "
                f"(reset={p.reset!r}) or emits several spikes per step (max_spikes="
                f"{p.max_spikes!r}), as Xylo's does, and the importer's neuron does neither: "
                "export it --for rockpool, or train it with reset='subtract' and max_spikes=1"
            )
        method = self.NEURONS.get(type(p))
        if method is None:
            known = ", ".join(k.__name__ for k in self.NEURONS)
            raise ExportError(
                f"--for {self.name}: no NIR converter for neuron {type(p).__name__}; known: {known}"
            )
        writer: Callable[..., Layer] = getattr(self, method)
        return writer(p, n, w_rec, dt, approximate)

    def hidden_lif(
        self,
        p: LIFParameters,
        n: int,
        w_rec: np.ndarray | None,
        dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        raise NotImplementedError

    def hidden_cuba_lif(
        self,
        p: CubaLIFParameters,
        n: int,
        w_rec: np.ndarray | None,
        dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        """A current-based layer; the default is NIR's forward-Euler ``CubaLIF`` (exact for a
        reset to zero, :func:`_euler_cuba_lif`), for importers that read it so."""
        notes = _zero_reset_only(self.name, p, approximate)
        return Layer(_recurrent(_euler_cuba_lif(p, n, dt), n, w_rec, "lif"), 1.0, tuple(notes))

    def readout(self, kappa: float, n: int, dt: float) -> Layer:
        """The readout ``y[t] = kappa y[t-1] + u[t]`` of ``n`` units (``kappa`` per step)."""
        raise NotImplementedError

    def readout_trace(self, graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
        """The readout (batch, steps, n_out) of ``graph`` on ``x`` as the importer runs it."""
        from spiketune.nir._simulate import simulate

        return simulate(graph, x).output


# ------------------------------------------------------------------------------ helpers
def _euler_tau(decay: float, dt: float) -> float:
    """The time constant whose forward-Euler step at ``dt`` decays by ``decay``: dt/(1-decay)."""
    return dt / (1.0 - decay)


def _exact_tau(decay: float, dt: float) -> float:
    """The time constant whose exact exponential step at ``dt`` decays by ``decay``."""
    return -dt / math.log(decay) if decay > 0 else dt * _NO_MEMORY


def _recurrent(node: nir.NIRNode, n: int, w_rec: np.ndarray | None, name: str) -> nir.NIRNode:
    """``node`` alone, or the four-node subgraph ``input -> name -> output`` with the edge pair
    ``name -> w_rec -> name``: the form every importer parses as a recurrent layer."""
    if w_rec is None:
        return node
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n])),
            name: node,
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type=np.array([n])),
        },
        edges=[("input", name), (name, "w_rec"), ("w_rec", name), (name, "output")],
    )


def _zero_reset_only(profile: str, p: LIFParameters, approximate: frozenset[str]) -> list[str]:
    """Notes for a reader whose LIF resets to zero; ExportError for a subtract reset unless
    the caller accepted ``approximate={"reset"}``."""
    if p.reset != "subtract":
        return []
    if "reset" not in approximate:
        raise ExportError(
            f"--for {profile}: the importer's LIF resets to zero, and this network resets by "
            "subtraction: pass approximate={'reset'} (--approximate reset) to write a reset to "
            "zero (spikes will differ), or export --for generic (exact)"
        )
    return ["reset by subtraction written as reset to 0"]


def _v(values: float, n: int) -> np.ndarray:
    return np.full(n, float(values))


def _lif(tau: float, r: float, v_th: float, n: int) -> nir.LIF:
    return nir.LIF(
        tau=_v(tau, n), r=_v(r, n), v_leak=np.zeros(n), v_threshold=_v(v_th, n),
        v_reset=np.zeros(n),
    )


def _euler_cuba_lif(p: CubaLIFParameters, n: int, dt: float) -> nir.CubaLIF:
    """The ``CubaLIF`` node whose forward-Euler step at ``dt`` is spiketune's CubaLIF step with
    a reset to zero: ``tau_syn = dt/(1 - alpha_syn)`` and ``w_in = tau_syn/dt`` make the
    synapse ``j <- alpha_syn j + I``; ``tau_mem = dt/(1 - alpha)`` and ``r = tau_mem/dt`` make
    the membrane ``v <- alpha v + j``."""
    tau_syn, tau_mem = _euler_tau(p.alpha_syn, dt), _euler_tau(p.alpha, dt)
    return nir.CubaLIF(
        tau_syn=_v(tau_syn, n), tau_mem=_v(tau_mem, n), r=_v(tau_mem / dt, n),
        v_leak=np.zeros(n), v_threshold=_v(p.v_th, n), v_reset=np.zeros(n),
        w_in=_v(tau_syn / dt, n),
    )


def _readout_membrane(graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
    from spiketune.nir._simulate import simulate

    return simulate(graph, x, record_state=["readout"]).states["readout"]["v"]


# ------------------------------------------------------------------------------ profiles
class GenericProfile(ImporterProfile):
    """NIR's own semantics, forward Euler at the graph's ``dt``: every spiketune LIF network is
    exact, a subtract reset as ``LI -> Threshold`` with a ``Scale(-v_th)`` self-connection."""

    name = "generic"
    importer = "spiketune.nir.simulate (any reader of LI, LIF, Threshold and cycles)"

    def hidden_lif(
        self, p: LIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        tau = _euler_tau(p.alpha, dt)
        if p.reset == "subtract" and "reset" not in approximate:
            v_th = _v(p.v_th, n)
            nodes: dict[str, nir.NIRNode] = {
                "input": nir.Input(input_type=np.array([n])),
                "membrane": nir.LI(tau=_v(tau, n), r=_v(tau / dt, n), v_leak=np.zeros(n)),
                "spike": nir.Threshold(threshold=v_th),
                "reset": nir.Scale(scale=-v_th),
                "output": nir.Output(output_type=np.array([n])),
            }
            edges = [
                ("input", "membrane"), ("membrane", "spike"), ("spike", "output"),
                ("spike", "reset"), ("reset", "membrane"),
            ]
            if w_rec is not None:
                nodes["w_rec"] = nir.Linear(weight=w_rec)
                edges += [("spike", "w_rec"), ("w_rec", "membrane")]
            return Layer(nir.NIRGraph(nodes=nodes, edges=edges))
        notes = _zero_reset_only(self.name, p, approximate)
        return Layer(_recurrent(_lif(tau, tau / dt, p.v_th, n), n, w_rec, "lif"), 1.0, tuple(notes))

    def hidden_cuba_lif(
        self, p: CubaLIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        """A ``CubaLIF`` node (exact with a reset to zero); a subtract reset is not written yet
        and needs ``approximate={"reset"}`` (written as a reset to zero)."""
        notes: tuple[str, ...] = ()
        if p.reset == "subtract":
            if "reset" not in approximate:
                raise ExportError(
                    "--for generic: a CubaLIF layer is written as NIR's CubaLIF, which resets "
                    "to zero, and this network resets by subtraction: pass approximate="
                    "{'reset'} (--approximate reset) to write a reset to zero (spikes will "
                    "differ), or train it with reset='zero' (exact)"
                )
            notes = ("reset by subtraction written as reset to 0",)
        return Layer(_recurrent(_euler_cuba_lif(p, n, dt), n, w_rec, "lif"), 1.0, notes)

    def readout(self, kappa: float, n: int, dt: float) -> Layer:
        tau = _euler_tau(kappa, dt)
        return Layer(nir.LI(tau=_v(tau, n), r=_v(tau / dt, n), v_leak=np.zeros(n)))


class SnnTorchProfile(ImporterProfile):
    """snnTorch 1.0's ``import_from_nir``: ``dt`` fixed at 1e-4 s, LIF layers reset to zero,
    no ``LI`` node: the readout is a LIF that never fires, read from its membrane."""

    name = "snntorch"
    importer = "snntorch.import_nir.import_from_nir"
    readout_at = "the membrane of node 'readout' (module.readout.mem), a LIF that never fires"
    DT: ClassVar[float] = 1e-4

    def step(self, dt: float | None, model_dt: float) -> float:
        if dt is not None and dt != self.DT:
            raise ExportError(
                f"--for snntorch: snnTorch's importer assumes dt = {self.DT:g} s whatever the "
                f"graph says; got dt={dt!r} (leave dt unset; the time constants are rescaled "
                "so the per-step dynamics stay the model's)"
            )
        return self.DT

    def hidden_lif(
        self, p: LIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        notes = _zero_reset_only(self.name, p, approximate)
        tau = _euler_tau(p.alpha, dt)
        return Layer(_recurrent(_lif(tau, tau / dt, p.v_th, n), n, w_rec, "lif"), 1.0, tuple(notes))

    def readout(self, kappa: float, n: int, dt: float) -> Layer:
        tau = _euler_tau(kappa, dt)
        return Layer(_lif(tau, tau / dt, NEVER_FIRES, n))

    def readout_trace(self, graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
        return _readout_membrane(graph, x)


class NorseProfile(ImporterProfile):
    """Norse 1.1's ``norse.torch.from_nir(graph, dt=...)``: it ignores ``r`` (input enters as
    ``dt/tau * I``), so ``r = 1`` and the weights into a layer carry ``tau/dt``; LIF resets to
    zero; no ``LI`` node, so the readout is a LIF that never fires. ``dt`` defaults to Norse's
    own default, 1e-3 s: pass the same ``dt`` to ``from_nir``."""

    name = "norse"
    importer = "norse.torch.from_nir (pass dt= the graph's metadata['dt'])"
    readout_at = "the membrane of node 'readout' (its state's v), a LIF that never fires"
    DT: ClassVar[float] = 1e-3

    def step(self, dt: float | None, model_dt: float) -> float:
        return check_step(self.DT if dt is None else dt)

    def hidden_lif(
        self, p: LIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        notes = _zero_reset_only(self.name, p, approximate)
        tau = _euler_tau(p.alpha, dt)
        gain = tau / dt
        rec = None if w_rec is None else w_rec * gain
        return Layer(_recurrent(_lif(tau, 1.0, p.v_th, n), n, rec, "lif"), gain, tuple(notes))

    def readout(self, kappa: float, n: int, dt: float) -> Layer:
        tau = _euler_tau(kappa, dt)
        return Layer(_lif(tau, 1.0, NEVER_FIRES, n), tau / dt)

    def readout_trace(self, graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
        return _readout_membrane(graph, x)


class RockpoolProfile(ImporterProfile):
    """Rockpool 3.1's ``rockpool.nn.modules.from_nir`` (LIFTorch): exact exponential decays,
    ``dt = tau_mem / (1 + r)`` (so ``r = tau_mem/dt - 1``), and ``CubaLIF`` is its only spiking
    node that works (its ``LIF`` import reads a field NIR's LIF does not have). Its neuron always
    has a synaptic current and resets by subtraction at the spike, possibly several spikes per
    step: a spiketune LIF layer is written with ``approximate={"synapse", "reset"}`` only.

    The readout is exact: a ``CubaLIF`` that never fires, whose synapse is the leaky integrator
    (``tau_syn`` from ``kappa``) and whose membrane has no memory, so its membrane is the
    readout; the readout weights carry ``1/kappa`` because Rockpool decays the synaptic current
    after adding the input.
    """

    name = "rockpool"
    importer = "rockpool.nn.modules.from_nir"
    CHIP_NEURON = True
    readout_at = (
        "the membrane of node 'readout' (LIFTorch record 'vmem'), a CubaLIF that never fires"
    )
    #: the synapse written for a spiketune LIF: half of the current decays each step, so each
    #: input's whole charge reaches the membrane (1/2 + 1/4 + ... = 1), half of it at once
    SYNAPSE_DECAY: ClassVar[float] = 0.5

    def hidden_lif(
        self, p: LIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        needed = {"synapse"} | ({"reset"} if not _rockpool_reset(p) else set())
        missing = sorted(needed - approximate)
        if missing:
            raise ExportError(
                f"--for rockpool: Rockpool's neuron has a synaptic current and resets by "
                f"subtraction at the spike (several spikes in a step from 2 v_th up), which this "
                f"LIF network (reset={p.reset!r}, max_spikes={p.max_spikes!r}) has not: pass "
                f"approximate={{{', '.join(repr(m) for m in missing)}}} "
                "(--approximate " + " --approximate ".join(missing) + ") to write it that way "
                "(spikes will differ; --data reports the accuracy), export --for generic, or "
                "train neuron='cuba_lif' with reset='subtract_at_spike' and max_spikes=None "
                "(exact)"
            )
        tau_mem = _exact_tau(p.alpha, dt)
        node = nir.CubaLIF(
            tau_syn=_v(_exact_tau(self.SYNAPSE_DECAY, dt), n), tau_mem=_v(tau_mem, n),
            r=_v(tau_mem / dt - 1.0, n), v_leak=np.zeros(n), v_threshold=_v(p.v_th, n),
            w_in=np.ones(n),
        )
        notes = (f"synaptic current with decay {self.SYNAPSE_DECAY} per step added",)
        if not _rockpool_reset(p):
            notes += (f"reset {p.reset!r} written as Rockpool's subtraction at the spike",)
        return Layer(_recurrent(node, n, w_rec, "lif"), 1.0, notes)

    def hidden_cuba_lif(
        self, p: CubaLIFParameters, n: int, w_rec: np.ndarray | None, dt: float,
        approximate: frozenset[str],
    ) -> Layer:
        """Rockpool's neuron is current-based: the synapse and the leaks are exact (exponential
        decays ``alpha_syn``, ``alpha``; the weights into the layer carry ``1/alpha_syn``
        because Rockpool decays the current after adding the input). Its reset by subtraction
        at the spike, several spikes per step, is spiketune's ``reset="subtract_at_spike"``
        with ``max_spikes=None``: then the whole layer is exact; any other reset needs
        ``approximate={"reset"}``."""
        exact_reset = _rockpool_reset(p)
        if not exact_reset and "reset" not in approximate:
            raise ExportError(
                f"--for rockpool: Rockpool's neuron resets by subtraction at the spike (several "
                f"spikes in a step from 2 v_th up), which this CubaLIF network (reset="
                f"{p.reset!r}, max_spikes={p.max_spikes!r}) does not: pass approximate="
                "{'reset'} (--approximate reset) to write it that way (spikes will differ), "
                "export --for generic (exact), or train it with reset='subtract_at_spike' and "
                "max_spikes=None (exact for Rockpool)"
            )
        if p.alpha_syn <= 0:
            raise ExportError(
                "--for rockpool: a CubaLIF synapse without memory (alpha_syn = 0) cannot be "
                "written: Rockpool decays the synaptic current before the membrane reads it; "
                "this network is a LIF: train it as neuron='lif'"
            )
        tau_mem = _exact_tau(p.alpha, dt)
        gain = 1.0 / p.alpha_syn
        node = nir.CubaLIF(
            tau_syn=_v(_exact_tau(p.alpha_syn, dt), n), tau_mem=_v(tau_mem, n),
            r=_v(tau_mem / dt - 1.0, n), v_leak=np.zeros(n), v_threshold=_v(p.v_th, n),
            w_in=np.ones(n),
        )
        rec = None if w_rec is None else w_rec * gain
        notes = () if exact_reset else (
            f"reset {p.reset!r} written as Rockpool's subtraction at the spike",
        )
        return Layer(_recurrent(node, n, rec, "lif"), gain, notes)

    def readout(self, kappa: float, n: int, dt: float) -> Layer:
        if kappa <= 0:
            raise ExportError(
                "--for rockpool: a readout without memory (kappa = 0) cannot be written: "
                "Rockpool decays the synaptic current before the membrane reads it"
            )
        tau_mem = dt * _NO_MEMORY
        node = nir.CubaLIF(
            tau_syn=_v(_exact_tau(kappa, dt), n), tau_mem=_v(tau_mem, n),
            r=_v(tau_mem / dt - 1.0, n), v_leak=np.zeros(n), v_threshold=_v(NEVER_FIRES, n),
            w_in=np.ones(n),
        )
        return Layer(node, 1.0 / kappa)

    def readout_trace(self, graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
        """Rockpool's LIFTorch update, step by step, on a graph this profile wrote: ``isyn <-
        beta (isyn + input + w_rec z)``, ``v <- alpha v + isyn``, ``z = floor(v / v_th)``
        where ``v >= v_th``, ``v <- v - z v_th``; ``alpha, beta = exp(-dt/tau)``."""
        dt = float(np.asarray(graph.metadata["dt"]))
        nodes = graph.nodes
        hidden = nodes["hidden"]
        lif = hidden.nodes["lif"] if isinstance(hidden, nir.NIRGraph) else hidden
        w_rec = hidden.nodes["w_rec"].weight if isinstance(hidden, nir.NIRGraph) else None
        xs = np.asarray(x, dtype=np.float64)
        w_in = np.asarray(nodes["w_in"].weight, dtype=np.float64)
        w_out = np.asarray(nodes["w_out"].weight, dtype=np.float64)
        b_out = np.asarray(getattr(nodes["w_out"], "bias", 0.0), dtype=np.float64)
        cells = [_RockpoolCell(lif, dt), _RockpoolCell(nodes["readout"], dt)]
        batch, steps, _ = xs.shape
        z = np.zeros((batch, w_in.shape[0]))
        out = np.empty((batch, steps, w_out.shape[0]))
        for t in range(steps):
            current = xs[:, t] @ w_in.T + (0.0 if w_rec is None else z @ np.asarray(w_rec).T)
            z = cells[0].step(current)
            cells[1].step(z @ w_out.T + b_out)
            out[:, t] = cells[1].v
        return out


def _rockpool_reset(p: LIFParameters) -> bool:
    """Whether ``p`` resets and fires as Rockpool's LIFTorch: subtraction at the spike, as many
    spikes per step as ``floor(v / v_th)`` (LIFTorch's limit of 2**16 is never reached)."""
    return p.reset == "subtract_at_spike" and p.max_spikes is None


class _RockpoolCell:
    """The state of one Rockpool LIFTorch population (see ``readout_trace``)."""

    def __init__(self, node: nir.CubaLIF, dt: float) -> None:
        self.alpha = np.exp(-dt / np.asarray(node.tau_mem, dtype=np.float64))
        self.beta = np.exp(-dt / np.asarray(node.tau_syn, dtype=np.float64))
        self.v_th = np.asarray(node.v_threshold, dtype=np.float64)
        self.isyn: Any = 0.0
        self.v: Any = 0.0

    def step(self, current: np.ndarray) -> np.ndarray:
        self.isyn = self.beta * (self.isyn + current)
        self.v = self.alpha * self.v + self.isyn
        z = np.where(self.v >= self.v_th, np.floor(self.v / self.v_th), 0.0)
        self.v = self.v - z * self.v_th
        return z


#: target name -> profile
PROFILES: dict[str, ImporterProfile] = {
    p.name: p for p in (GenericProfile(), SnnTorchProfile(), NorseProfile(), RockpoolProfile())
}


def get_profile(target: str) -> ImporterProfile:
    """The profile of ``target``; ExportError naming the known ones otherwise."""
    profile = PROFILES.get(target) if isinstance(target, str) else None
    if profile is None:
        raise ExportError(f"target={target!r}: unknown importer; known: {', '.join(PROFILES)}")
    return profile

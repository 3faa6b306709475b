"""A second design-rule check for Xylo Audio 2: Rockpool's own mapper on the same network.

Why: spiketune's rules (:func:`~spiketune.hardware.check_model`) are written from Rockpool's
public description of the chip; Rockpool's mapper (``rockpool.devices.xylo.syns61201.mapper``)
is the vendor-side toolchain that turns a network into a chip specification. Running both on
one network shows where the two readings of the chip differ.

The pipeline (Rockpool 3.1.0; see ``docs/hardware.md`` for what runs without SynSense's
``samna``/``xylosim`` packages):

1. ``spiketune.nir.to_graph(net, target="rockpool", approximate=...)``: the graph Rockpool's
   importer reads (a LIF layer needs ``approximate={"synapse", "reset"}``, a CubaLIF layer
   ``{"reset"}``).
2. The readout's membrane time constant is raised to ``2 dt`` where it is ``<= dt``: the
   rockpool profile writes a readout whose membrane has no memory (``tau_mem = dt/1000``),
   and Rockpool's Xylo conversion refuses any time constant ``<= dt`` (its bit-shift "dash"
   is ``log2(tau/dt)``, which must be > 0). ``2 dt`` is dash 1, the shortest memory it
   accepts. Recorded in ``notes``; the structure and sizes checked are unchanged.
3. ``rockpool.nn.modules.from_nir`` then ``.as_graph()``: Rockpool's computational graph.
4. ``syns61201.mapper(graph)``: design rules (raises ``DRCError``; warns ``DRCWarning``) and
   allocation of hidden and output neurons.
5. ``rockpool.transform.quantize_methods.channel_quantize``: integer weights, thresholds, dashes.
6. ``syns61201.config_from_specification`` (needs ``samna``) and ``XyloSim.from_config``
   (needs ``xylosim``): a step that cannot run is reported with its message, never raised.

``rockpool.devices.xylo`` itself cannot be imported without ``samna`` (its ``__init__``
imports the Xylo Audio 3 package, which needs it); ``syns61201`` is imported by that
``__init__`` before it fails and stays importable from ``sys.modules``, which is how
:func:`_syns61201` reaches it. No private Rockpool function is called.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from spiketune.errors import ConfigError, HardwareError, Problem
from spiketune.hardware._layout import check_model
from spiketune.hardware._targets import HardwareTarget, get_target

__all__ = ["RockpoolCheck", "rockpool_check"]

#: hardware target name -> Rockpool's support package for it
_PACKAGES: dict[str, str] = {"xylo-audio2": "rockpool.devices.xylo.syns61201"}
_INSTALL = "pip install rockpool==3.1.0"
#: the approximations a LIF network needs for Rockpool's importer (CubaLIF: "reset" alone)
DEFAULT_APPROXIMATE: frozenset[str] = frozenset({"synapse", "reset"})


@dataclass(frozen=True)
class RockpoolCheck:
    """spiketune's and Rockpool's verdicts on one network for one target.

    ``spiketune_problems``: the broken rules of :func:`~spiketune.hardware.check_model`, as text.
    ``rockpool_problems``: the ``DRCError`` messages of Rockpool's mapper (with the error that
    caused it, where there is one); ``rockpool_warnings``: its ``DRCWarning`` messages (Rockpool
    only *warns* for more than 16 inputs or 8 output channels, and for biases it drops).
    ``hidden``, ``outputs``, ``inputs``: the neurons and input channels the mapper allocated
    (None when it refused the network); ``weight_shapes``: the shapes of its ``weights_in``,
    ``weights_rec`` and ``weights_out``. ``ran``: the toolchain steps that ran, in order;
    ``not_run``: step -> why it did not (the exception's message, e.g. the missing package);
    ``notes``: what was changed for the mapping and what a step warned.
    """

    target: str
    spiketune_problems: tuple[str, ...]
    rockpool_problems: tuple[str, ...]
    rockpool_warnings: tuple[str, ...] = ()
    hidden: int | None = None
    outputs: int | None = None
    inputs: int | None = None
    weight_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    ran: tuple[str, ...] = ()
    not_run: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def agree(self) -> bool:
        """Both checks reach the same verdict: both accept the network or both refuse it
        (warnings do not count as refusals)."""
        return bool(self.spiketune_problems) == bool(self.rockpool_problems)

    @property
    def fits(self) -> bool:
        """Neither check found a problem."""
        return not self.spiketune_problems and not self.rockpool_problems

    def summary(self) -> str:
        """A few lines for a log: both verdicts, the steps run and those that could not."""
        lines = [
            f"{self.target}: spiketune {_verdict(self.spiketune_problems)}, "
            f"Rockpool mapper {_verdict(self.rockpool_problems)}"
            + ("" if self.agree else " (the checks disagree)"),
            *(f"  spiketune: {p}" for p in self.spiketune_problems),
            *(f"  rockpool: {p}" for p in self.rockpool_problems),
            *(f"  rockpool warns: {w}" for w in self.rockpool_warnings),
            "  ran: " + (", ".join(self.ran) or "nothing"),
            *(f"  not run: {step}: {why}" for step, why in self.not_run.items()),
        ]
        return "\n".join(lines)


def _verdict(problems: tuple[str, ...]) -> str:
    return f"{len(problems)} problem(s)" if problems else "fits"


def rockpool_check(
    net: Any,
    target: str | HardwareTarget = "xylo-audio2",
    *,
    approximate: Collection[str] = DEFAULT_APPROXIMATE,
) -> RockpoolCheck:
    """Check ``net`` (a :class:`~spiketune.snn.RecurrentSNN`) on ``target`` twice: with
    spiketune's :func:`~spiketune.hardware.check_model` and with Rockpool's Xylo mapper, then
    run as much of Rockpool's toolchain (quantise, config, simulator) as is installed.

    ``approximate``: passed to ``spiketune.nir.to_graph(target="rockpool")``; the default
    accepts what a LIF network needs. Only ``"xylo-audio2"`` is supported (Rockpool's
    ``syns61201``); another target raises ConfigError naming ``target``. Without Rockpool,
    HardwareError naming ``pip install rockpool==3.1.0``. An ExportError of the export step
    (e.g. an ALIF layer without ``"adaptation"`` in ``approximate``) propagates.
    Rule violations and missing vendor packages never raise: they are in the result.
    """
    tgt = get_target(target)
    package = _PACKAGES.get(tgt.name)
    if package is None:
        raise ConfigError(Problem(
            "target", tgt.name,
            "one of " + ", ".join(_PACKAGES) + " (the Xylo chips whose mapper Rockpool 3.1 "
            "runs without SynSense's packages)",
        ))
    from_nir = _import("rockpool.nn.modules").from_nir
    xylo = _syns61201(package)
    spiketune_problems = tuple(str(v) for v in check_model(tgt, net))

    from spiketune.nir import to_graph

    ran: list[str] = []
    not_run: dict[str, str] = {}
    notes: list[str] = []
    graph = to_graph(net, target="rockpool", approximate=approximate)
    ran.append("export (spiketune.nir.to_graph, target='rockpool')")
    notes += _mappable_readout(graph)
    module = from_nir(graph)
    ran.append("import (rockpool.nn.modules.from_nir)")
    rp_graph = module.as_graph()
    ran.append("graph (.as_graph())")

    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            spec = xylo.mapper(rp_graph)
        except xylo.DRCError as err:
            spec = None
            problems.append(_message(err))
    drc_warnings = tuple(
        _one_line(str(w.message)) for w in caught if issubclass(w.category, xylo.DRCWarning)
    )
    if spec is None:
        reason = "the mapper refused the network"
        for step in ("quantise", "config", "simulator"):
            not_run[step] = reason
        return RockpoolCheck(tgt.name, spiketune_problems, tuple(problems), drc_warnings,
                             ran=tuple(ran), not_run=not_run, notes=tuple(notes))
    ran.append("mapper (syns61201.mapper)")
    shapes = {k: tuple(np.shape(spec[k])) for k in ("weights_in", "weights_rec", "weights_out")}
    counts = {"inputs": shapes["weights_in"][0], "hidden": len(spec["threshold"]),
              "outputs": len(spec["threshold_out"])}

    quantised = _quantise(spec, ran, not_run, notes)
    config = _config(xylo, quantised, ran, not_run, notes, problems)
    _simulator(xylo, config, ran, not_run)
    return RockpoolCheck(
        tgt.name, spiketune_problems, tuple(problems), drc_warnings, **counts,
        weight_shapes=shapes, ran=tuple(ran), not_run=not_run, notes=tuple(notes),
    )


# ------------------------------------------------------------------------------ steps
def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        if err.name is not None and err.name.split(".")[0] == "rockpool":
            raise HardwareError(
                f"the Rockpool check needs Rockpool ({_INSTALL}): {err}"
            ) from err
        raise


def _syns61201(package: str) -> ModuleType:
    """Rockpool's Xylo Audio 2 package. Without ``samna``, importing ``rockpool.devices.xylo``
    fails after it has imported ``syns61201``, which stays usable in ``sys.modules``."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        module = sys.modules.get(package)
        if module is not None and hasattr(module, "mapper"):
            return module
        raise HardwareError(
            f"{package} cannot be imported ({err}); the Rockpool check needs {_INSTALL}"
        ) from err


def _mappable_readout(graph: Any) -> list[str]:
    """Raise a readout membrane time constant ``<= dt`` (seconds) to ``2 dt``: Rockpool's Xylo
    conversion needs ``log2(tau/dt) > 0``. Returns the note saying so, or nothing."""
    node = graph.nodes.get("readout")
    tau_mem = getattr(node, "tau_mem", None)
    if tau_mem is None:
        return []
    dt = float(np.asarray(graph.metadata["dt"]))
    if not np.any(np.asarray(tau_mem) <= dt):
        return []
    before = float(np.min(tau_mem))
    node.tau_mem = np.full_like(np.asarray(tau_mem, dtype=float), 2 * dt)
    node.r = np.full_like(np.asarray(node.r, dtype=float), 1.0)  # r = tau_mem/dt - 1
    return [
        f"readout tau_mem raised from {before:.3g} s to {2 * dt:.3g} s (2 dt, dash 1): "
        "Rockpool's Xylo conversion refuses time constants <= dt"
    ]


def _quantise(
    spec: dict[str, Any], ran: list[str], not_run: dict[str, str], notes: list[str]
) -> dict[str, Any] | None:
    from rockpool.transform.quantize_methods import channel_quantize

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            quantised: dict[str, Any] = channel_quantize(**spec)
        except Exception as err:  # any failure is the step's answer
            not_run["quantise"] = _message(err)
            return None
    ran.append("quantise (quantize_methods.channel_quantize)")
    notes += [f"quantise warned: {_one_line(str(w.message))}" for w in caught]
    for key in ("weights_in", "weights_rec", "weights_out"):
        if np.any(np.asarray(spec[key]) != 0) and not np.any(np.asarray(quantised[key]) != 0):
            notes.append(
                f"quantise: every {key} rounds to 0 (channel_quantize scales each neuron's "
                "weights by its threshold; a never-firing readout's threshold is huge)"
            )
    return quantised


def _config(
    xylo: ModuleType, quantised: dict[str, Any] | None, ran: list[str],
    not_run: dict[str, str], notes: list[str], problems: list[str],
) -> Any:
    if quantised is None:
        not_run["config"] = "quantisation did not run"
        return None
    args = {k: v for k, v in quantised.items() if k not in ("bias", "bias_out")}
    try:
        config, valid, message = xylo.config_from_specification(
            **args, bias_hidden=quantised.get("bias"), bias_out=quantised.get("bias_out"),
            dt=None if quantised.get("dt") is None else float(quantised["dt"]),
        )
    except Exception as err:  # a missing vendor package is an answer here
        not_run["config"] = _message(err)
        return None
    ran.append("config (syns61201.config_from_specification)")
    if not valid:
        problems.append(f"config_from_specification: {message}")
    elif message:
        notes.append(f"config: {message}")
    return config


def _simulator(xylo: ModuleType, config: Any, ran: list[str], not_run: dict[str, str]) -> None:
    if config is None:
        if importlib.util.find_spec("xylosim") is None:
            # XyloSim is Rockpool's stand-in for the missing package: its message names it
            try:
                xylo.XyloSim.from_config(config)
            except Exception as err:  # the step's answer, not a failure
                not_run["simulator"] = _message(err)
                return
        not_run["simulator"] = "no configuration to simulate (the config step did not run)"
        return
    try:
        xylo.XyloSim.from_config(config)
    except Exception as err:  # the step's answer, not a failure
        not_run["simulator"] = _message(err)
        return
    ran.append("simulator (syns61201.XyloSim.from_config)")


def _message(err: BaseException) -> str:
    """The exception's message on one line, with the message of the error that caused it."""
    text = f"{type(err).__name__}: {_one_line(str(err))}"
    if err.__cause__ is not None:
        text += f" (caused by {type(err.__cause__).__name__}: {_one_line(str(err.__cause__))})"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


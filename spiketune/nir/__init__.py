"""NIR, the Neuromorphic Intermediate Representation: write a trained network for other
simulators and chips, read a file back, and run it to check what was written.

::

    import spiketune.nir

    spiketune.nir.export(net, "net.nir")                  # dt defaults to the model's step
    spiketune.nir.export(net, "snn.nir", target="snntorch", approximate={"reset"})
                                                          # snnTorch's LIF resets to zero
    spiketune.nir.export(net, "rp.nir", target="rockpool", approximate={"synapse", "reset"})
    spiketune.nir.check_export(net, "rp.nir", test_set)   # accuracy: model vs. exported
    spiketune.nir.export_best_model("experiments/braille-1a2b3c4d", "best.nir")
    graph = spiketune.nir.read("net.nir")                 # any writer's file
    run = spiketune.nir.simulate(graph, x, dt=1e-3, record_state=["readout"])
    net = spiketune.nir.to_network(graph)                 # a trainable RecurrentSNN

- :func:`to_graph` / :func:`export`: a :class:`spiketune.snn.RecurrentSNN` as a NIR graph or
  file for one importer (``target``, one of :data:`TARGETS`), with the discrete dynamics
  reproduced exactly where the importer can; what it cannot run (an adaptive threshold, a
  refractory period, a reset or synapse it lacks) is refused unless named in ``approximate``
  (:data:`APPROXIMATIONS`). :func:`check_export` scores the model and its export on the same
  data (:class:`ExportCheck`).
- :func:`export_best_model`: the model an experiment kept (``spiketune export-model``).
- :func:`read`: a NIR file as a ``nir.NIRGraph``; a graph NIR's type check rejects is read
  with a :class:`GraphTypeWarning`.
- :func:`simulate`: spiketune's own forward-Euler simulator of a graph, spikes and membrane
  traces; returns a :class:`Simulation`.
- :func:`to_network`: a graph of one recurrent layer and a readout as a trainable
  :class:`spiketune.snn.RecurrentSNN`.

Names are imported on first use: ``import spiketune.nir`` does not pay for torch or ``nir``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "APPROXIMATIONS", "TARGETS", "ExportCheck", "check_export", "export",
            "export_best_model", "to_graph",
        ],
        "spiketune.nir._export",
    ),
    **dict.fromkeys(["GraphTypeWarning", "read"], "spiketune.nir._read"),
    **dict.fromkeys(["Simulation", "simulate"], "spiketune.nir._simulate"),
    "to_network": "spiketune.nir._network",
}

__all__ = [
    "APPROXIMATIONS",
    "TARGETS",
    "ExportCheck",
    "GraphTypeWarning",
    "Simulation",
    "check_export",
    "export",
    "export_best_model",
    "read",
    "simulate",
    "to_graph",
    "to_network",
]

if TYPE_CHECKING:
    from spiketune.nir._export import (
        APPROXIMATIONS,
        TARGETS,
        ExportCheck,
        check_export,
        export,
        export_best_model,
        to_graph,
    )
    from spiketune.nir._network import to_network
    from spiketune.nir._read import GraphTypeWarning, read
    from spiketune.nir._simulate import Simulation, simulate

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

"""NIR, the Neuromorphic Intermediate Representation: write a trained network for other
simulators and chips, read a file back, and run it to check what was written.

::

    import spiketune.nir

    spiketune.nir.export(net, "net.nir")                  # dt defaults to the model's step
    spiketune.nir.export(net, "net_1e-4.nir", dt=1e-4)    # for readers that assume a step
    spiketune.nir.export_best_model("experiments/braille-1a2b3c4d", "best.nir")
    graph = spiketune.nir.read("net.nir")
    run = spiketune.nir.simulate(graph, x)                # x: (batch, steps, channels)

- :func:`to_graph` / :func:`export`: a :class:`spiketune.snn.RecurrentSNN` as a NIR graph or
  file, with the discrete dynamics reproduced exactly; what NIR cannot express (an adaptive
  threshold, a refractory period) is refused unless named in ``approximate``
  (:data:`APPROXIMATIONS`).
- :func:`export_best_model`: the model an experiment kept (``spiketune export-model``).
- :func:`read`: a NIR file as a ``nir.NIRGraph``.
- :func:`simulate`: spiketune's own forward-Euler simulator of a graph; returns a
  :class:`Simulation`.

Names are imported on first use: ``import spiketune.nir`` does not pay for torch or ``nir``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ["APPROXIMATIONS", "export", "export_best_model", "to_graph"], "spiketune.nir._export"
    ),
    "read": "spiketune.nir._read",
    **dict.fromkeys(["Simulation", "simulate"], "spiketune.nir._simulate"),
}

__all__ = [
    "APPROXIMATIONS",
    "Simulation",
    "export",
    "export_best_model",
    "read",
    "simulate",
    "to_graph",
]

if TYPE_CHECKING:
    from spiketune.nir._export import APPROXIMATIONS, export, export_best_model, to_graph
    from spiketune.nir._read import read
    from spiketune.nir._simulate import Simulation, simulate

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

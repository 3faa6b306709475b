"""The starting graph: a network of the NIR paper's Braille RSNN shape (12 inputs -> one
recurrent layer of current-based LIF neurons -> 7 leaky readouts), written as a NIR file.

::

    python make_graph.py braille_cuba.nir --hidden 40 --dt 0.01

Its weights are random (seeded): the fine-tuning trial trains them, and tunes the time
constants and thresholds it reads from the graph. Any other NIR file of this shape (a
``CubaLIF`` or ``LIF`` layer, see ``spiketune.nir.to_network``) can take its place.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import spiketune.nir
from spiketune import SpiketuneError
from spiketune.snn import RecurrentSNN, SNNConfig


def build_graph(
    path: str | Path, *, hidden: int = 40, dt: float = 0.01, tau_syn: float = 0.02,
    tau_mem: float = 0.05, tau_out: float = 0.05, v_th: float = 1.0, seed: int = 0,
) -> Path:
    """Write the 12 -> recurrent CubaLIF(``hidden``) -> 7 graph at ``path``; times in seconds,
    ``dt`` the step its time constants are written for (the data's bin size)."""
    config = SNNConfig(
        n_in=12, n_rec=hidden, n_out=7, neuron="cuba_lif", rule="bptt", reset="zero", dt=dt,
        tau_syn=tau_syn, tau_mem=tau_mem, tau_out=tau_out, v_th=v_th, gain_in=2.0,
        gain_rec=0.5,
    )
    return spiketune.nir.export(RecurrentSNN(config, seed=seed), path)


def main(argv: list[str] | None = None) -> None:
    """The command: bad values and a path that is not a new or NIR file end it with the
    reason (exit code 2), not a traceback; a file that is not NIR is never replaced."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", nargs="?", default="braille_cuba.nir")
    p.add_argument("--hidden", type=int, default=40, help="recurrent neurons (paper: 38-63)")
    p.add_argument("--dt", type=float, default=0.01, help="step, seconds (the bin size)")
    args = p.parse_args(argv)
    if args.hidden < 1:
        p.error(f"--hidden {args.hidden}: must be >= 1")
    if not (math.isfinite(args.dt) and args.dt > 0):
        p.error(f"--dt {args.dt}: must be a number of seconds > 0")
    path = Path(args.path)
    if path.is_dir():
        p.error(f"{path}: is a directory; give the name of the NIR file to write")
    if path.is_file() and path.read_bytes()[:8] != b"\x89HDF\r\n\x1a\n":
        p.error(f"{path}: exists and is not a NIR file; give another name")
    try:
        print(build_graph(path, hidden=args.hidden, dt=args.dt))
    except SpiketuneError as e:
        p.error(str(e))


if __name__ == "__main__":
    main()

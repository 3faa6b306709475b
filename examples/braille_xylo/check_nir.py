"""Check a NIR file written by ``spiketune export-model``: read it back, run it with spiketune's
NIR simulator on the test split, and compare with the kept network it came from.

    spiketune export-model braille_xylo --format nir -o braille_xylo.nir
    python check_nir.py braille_xylo.nir braille_xylo          # file, then experiment (id/dir)

Prints the file's nodes, whether the hidden spikes and the predictions are identical, the
largest readout difference, and the test accuracy of both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from main_hpo import load_data  # this directory's trial: the same data and split

import spiketune.nir
from spiketune.engine import find_experiment
from spiketune.snn import load_checkpoint, predict


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nir_file")
    parser.add_argument("experiment", help="experiment directory, id or id prefix")
    parser.add_argument("--data", default=None,
                        help="Braille event file or its directory (else "
                             "$SPIKETUNE_BRAILLE_DATA, else spiketune's data cache)")
    args = parser.parse_args(argv)

    checkpoint = load_checkpoint(find_experiment(args.experiment) / "best_model" /
                                 "best_model.pt")
    net = checkpoint.network.eval()
    _, _, test, digest = load_data(checkpoint.extra["data"], args.data)
    if digest != checkpoint.extra.get("split_digest"):
        sys.exit("the data split differs from the one the model was trained on")
    x, y = test.inputs, test.labels

    graph = spiketune.nir.read(args.nir_file)
    run = spiketune.nir.simulate(graph, x,
                                 record=["hidden.spike"] if "hidden" in graph.nodes else [])
    with torch.no_grad():
        ref = net.simulate(x)
    ours = predict(ref.readout, net.config.loss_steps)
    theirs = predict(torch.from_numpy(run.output).to(ref.readout.dtype), net.config.loss_steps)
    size = Path(args.nir_file).stat().st_size
    print(f"{args.nir_file}: {size} bytes, nodes {sorted(graph.nodes)}, "
          f"dt {graph.metadata.get('dt')} s")
    if run.records:
        spikes = next(iter(run.records.values()))
        print(f"identical hidden spikes: {np.array_equal(spikes, ref.spikes.numpy())}")
    print(f"identical predictions on {len(y)} test samples: {torch.equal(ours, theirs)}; "
          f"max |readout difference| {np.abs(run.output - ref.readout.numpy()).max():.2e}")
    print(f"test accuracy: network {(ours == y).float().mean():.3f}, "
          f"NIR file {(theirs == y).float().mean():.3f}")


if __name__ == "__main__":
    main()

"""Check a NIR file written from the kept model (``spiketune export-model``, or the
``rockpool.nir`` a trial keeps beside it): run it as its importer would on the validation and
test parts of the fixed split, and compare with the kept 8-bit network.

    spiketune export-model braille_xylo --for rockpool -o braille_xylo.nir
    python check_nir.py braille_xylo.nir braille_xylo --data braille_reduced_th1_pool.pt

Prints, per part, ``spiketune.nir.check_export``'s line: the network's accuracy, the file's
(``--for rockpool``: Rockpool's LIFTorch update, without Rockpool installed) and the fraction
of samples both classify alike.
"""

from __future__ import annotations

import argparse
import sys

from main_hpo import DATA_ENV, load_data  # this directory's trial: the same data and split

import spiketune.nir
from spiketune.engine import find_experiment
from spiketune.snn import load_checkpoint


def main(argv: list[str] | None = None) -> dict[str, spiketune.nir.ExportCheck]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nir_file")
    parser.add_argument("experiment", help="experiment directory, id or id prefix")
    parser.add_argument("--data", default=None,
                        help=f"threshold-1 pool file or its directory (else ${DATA_ENV}, else "
                             "spiketune's data cache)")
    args = parser.parse_args(argv)

    checkpoint = load_checkpoint(find_experiment(args.experiment) / "best_model" /
                                 "best_model.pt")
    net = checkpoint.network.eval()
    data = load_data(checkpoint.extra["data"], args.data,
                     per_class=checkpoint.extra.get("subset"))
    if data.split_digest != checkpoint.extra.get("split_digest"):
        sys.exit(f"the data split ({data.split_digest[:12]}) differs from the one the model "
                 f"was trained on ({str(checkpoint.extra.get('split_digest'))[:12]})")
    graph = spiketune.nir.read(args.nir_file)
    checks = {part: spiketune.nir.check_export(net, graph, getattr(data, part))
              for part in ("val", "test")}
    print(f"{args.nir_file}: nodes {sorted(graph.nodes)}, dt {graph.metadata.get('dt')} s, "
          f"split {data.split_digest[:12]}")
    for part, check in checks.items():
        print(f"{part}: {check.summary()}")
    return checks


if __name__ == "__main__":
    main()

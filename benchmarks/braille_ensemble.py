"""Would averaging several trained networks beat one? Ensembles of checkpoints on the fixed split.

An ensemble classifies by the mean of its members' class probabilities (the softmax of the
scores each network is trained and evaluated by: its readout summed over its decision window).
Its members' errors cancel only where they differ; this script shows, per checkpoint and for
their ensemble, the accuracy and the positions of the misclassified samples of the fixed split's
validation part (``stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``, as the Braille example
and ``spiketune evaluate --part`` use it). The test part is scored only with ``--test``: decide
on validation first.

    python benchmarks/braille_ensemble.py results/braille_th1/chosen/seed*/best_model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spiketune.data import load_braille_pool, split_parts
from spiketune.snn import as_trained, load_checkpoint

POOL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "braille_th1"


def probabilities(checkpoint: Path, part: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The class probabilities ``checkpoint``'s network gives each sample of ``part`` (its
    data rebinned as the network was trained), and the labels."""
    ckpt = load_checkpoint(checkpoint)
    data = as_trained(ckpt, part)  # type: ignore[arg-type]
    net = ckpt.network
    net.eval()
    with torch.no_grad():
        scores = net.readout_loss().scores(net.simulate(data.inputs).readout)
    return torch.softmax(scores.double(), -1), data.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=POOL, help="the threshold-1 pool")
    parser.add_argument("--test", action="store_true", help="also score the test part")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = split_parts(load_braille_pool(args.data))
    print(f"split {parts.split_digest[:16]}…")
    for name in ("val", "test") if args.test else ("val",):
        members = [probabilities(c, getattr(parts, name)) for c in args.checkpoints]
        labels = members[0][1]
        singles = []
        for checkpoint, (probs, _) in zip(args.checkpoints, members, strict=True):
            wrong = (probs.argmax(-1) != labels).nonzero().flatten().tolist()
            singles.append(1.0 - len(wrong) / len(labels))
            print(f"{name}: {singles[-1]:.2%} {checkpoint} (misses {wrong})")
        mean = torch.stack([p for p, _ in members]).mean(0)
        wrong = (mean.argmax(-1) != labels).nonzero().flatten().tolist()
        print(f"{name}: single networks {sum(singles) / len(singles):.2%} on average; their "
              f"ensemble {1.0 - len(wrong) / len(labels):.2%} (misses {wrong})")


if __name__ == "__main__":
    main()

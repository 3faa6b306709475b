"""A non-spiking reference on the Braille split the SNN searches are judged on.

How good a spiking network's test accuracy is depends on how hard the fixed test part is. This
script trains a plain one-layer GRU (the data's README quotes one for threshold 10), or with
``--model cnn`` a small temporal convolutional network (three convolutions along time, a
maximum over time, a linear readout: another family, which sees local patterns in time rather
than a running state), on the same parts the Braille example's trials see:
``stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``, named by its digest. The epoch is
chosen by the validation part, never by the test part; each seed's test accuracy at that
epoch, their mean ± sample std, and the test positions each seed misclassifies are printed
(compare with ``spiketune evaluate CHECKPOINT --mistakes``).

- threshold 1 (the pool file): 12 merged channels, rebinned to ``--bin-size`` (event counts);
- threshold 10 (an event file of the archive): 24 channels, ON/OFF split.

Run: ``.venv/bin/python benchmarks/braille_baseline.py --data ../shared/data/braille_th1``
(``--model``, ``--hidden``, ``--bin-size`` in seconds, ``--epochs``, ``--seeds``, ``--threads``,
``--json``). One seed takes about a minute and a half on one core at the defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spiketune.data import BRAILLE_TASK_DEFAULTS, Dataset, is_braille_pool, load_braille_split

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "braille_th1"
#: Adam's learning rate and weight decay, and the minibatch: a common recipe, not tuned on
#: the test part (nothing here is).
LR, WEIGHT_DECAY, BATCH = 2e-3, 1e-4, 16


class GRUClassifier(nn.Module):
    """One GRU layer read out by a linear layer at the last step."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, steps, channels]
        hidden, _ = self.gru(x)
        return self.out(hidden[:, -1])


class CNNClassifier(nn.Module):
    """Three convolutions along time (kernel 9 steps, ``hidden`` filters, ReLU, the first two
    followed by a max-pool of 2), the maximum over time, dropout 0.3, a linear readout."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(n_in, hidden, 9, padding=4), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(hidden, hidden, 9, padding=4), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(hidden, hidden, 9, padding=4), nn.ReLU(), nn.AdaptiveMaxPool1d(1),
        )
        self.out = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, steps, channels]
        return self.out(self.features(x.transpose(1, 2)))


MODELS: dict[str, type[nn.Module]] = {"gru": GRUClassifier, "cnn": CNNClassifier}


def train_one(parts: Any, *, hidden: int, epochs: int, seed: int,
              model_name: str = "gru") -> dict[str, Any]:
    """Train with ``seed``; the epoch with the best validation accuracy (the first of ties)
    gives the test figures."""
    torch.manual_seed(seed)
    train, val, test = parts.train, parts.val, parts.test
    model = MODELS[model_name](train.inputs.shape[-1], hidden, len(train.info.classes))
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    best: dict[str, Any] = {"val": -1.0}
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train.labels))
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            F.cross_entropy(model(train.inputs[idx]), train.labels[idx]).backward()
            opt.step()
        val_acc = accuracy(model, val)
        if val_acc > best["val"]:
            pred = predict(model, test)
            best = {"epoch": epoch, "val": val_acc,
                    "test": (pred == test.labels).float().mean().item(),
                    "mistakes": (pred != test.labels).nonzero().flatten().tolist()}
    return {"seed": seed, **best}


def predict(model: nn.Module, data: Dataset) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(data.inputs).argmax(1)


def accuracy(model: nn.Module, data: Dataset) -> float:
    return (predict(model, data) == data.labels).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="the threshold-1 pool file or an event file of the archive "
                        "(or a directory holding either)")
    p.add_argument("--bin-size", type=float, default=0.02, help="seconds per step")
    p.add_argument("--model", choices=sorted(MODELS), default="gru",
                   help="a one-layer GRU, or a temporal convolutional network")
    p.add_argument("--hidden", type=int, default=128,
                   help="GRU units, or the CNN's filters per convolution")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = p.parse_args(argv)
    if not args.data.exists():
        print(f"error: --data {args.data}: no such file or directory", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)

    options = {**BRAILLE_TASK_DEFAULTS, "bin_size": args.bin_size}
    if is_braille_pool(args.data):
        options.update(threshold=1, channels="merged")
    parts = load_braille_split(options, args.data, download=False)
    encoding = (f"threshold {options['threshold']}, {options['channels']} channels, "
                f"{args.bin_size * 1000:g} ms bins of event counts")
    if not args.json:
        print(f"data: {args.data} ({encoding})")
        print(f"split {parts.split_digest[:16]}…: {len(parts.train.labels)} / "
              f"{len(parts.val.labels)} / {len(parts.test.labels)}; {args.model.upper()} "
              f"{args.hidden} {'units' if args.model == 'gru' else 'filters'}, "
              f"{args.epochs} epochs, epoch chosen by validation", flush=True)
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        run = train_one(parts, hidden=args.hidden, epochs=args.epochs, seed=seed,
                        model_name=args.model)
        run["seconds"] = round(time.perf_counter() - start, 1)
        runs.append(run)
        if not args.json:
            print(f"  seed {seed}: epoch {run['epoch']}, validation {run['val']:.1%}, "
                  f"test {run['test']:.1%}, misses test positions {run['mistakes']} "
                  f"({run['seconds']:.0f} s)", flush=True)
    tests = [r["test"] for r in runs]
    std = statistics.stdev(tests) if len(tests) > 1 else 0.0
    summary = {"data": str(args.data), "encoding": encoding, "split": parts.split_digest,
               "model": args.model, "hidden": args.hidden, "epochs": args.epochs, "runs": runs,
               "test_mean": statistics.mean(tests), "test_std": std}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"test accuracy: {summary['test_mean']:.2%} ± {std:.2%} "
              f"(mean ± sample std over seeds {args.seeds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

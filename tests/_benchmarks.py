"""What the tests of ``benchmarks/`` scripts share: loading a script as a module, and a tiny
threshold-1 pool and threshold-10 event file that any classifier tells apart at once."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch.utils.data import TensorDataset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_tiny_pool(path: Path) -> Path:
    """70 samples of 7 classes in the pool's form ``[70, 256, 12]``: class c fires taxel c
    every 40 ms over sparse background events on every taxel."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(70) % 7
    inputs = (torch.rand(70, 256, 12, generator=g) < 0.01).float()
    for i, c in enumerate(labels.tolist()):
        inputs[i, 8::8, c] = 1.0
    torch.save(TensorDataset(inputs, labels), path)
    return path


def write_tiny_event_file(path: Path, letters: tuple[str, ...], per_letter: int = 10) -> Path:
    """An event file in the archive's layout (records of ``letter`` and 12 taxels of
    ``[on_times, off_times]`` in seconds), ``per_letter`` records of each of ``letters``: the
    c-th letter's taxel c sends an ON event every 40 ms over a few random events elsewhere."""
    g = torch.Generator().manual_seed(5)
    records = []
    for _ in range(per_letter):
        for c, letter in enumerate(letters):
            events = [[sorted(torch.rand(2, generator=g).mul(1.2).tolist()), []]
                      for _ in range(12)]
            events[c % 12][0] = [round(0.04 * k, 4) for k in range(1, 30)]
            records.append({"letter": letter, "events": events})
    path.write_bytes(pickle.dumps(records, protocol=2))
    return path

"""What the tests of ``benchmarks/`` scripts share: loading a script as a module, and a tiny
threshold-1 pool that any classifier tells apart at once."""

from __future__ import annotations

import importlib.util
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

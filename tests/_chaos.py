"""``benchmarks/chaos.py`` for the tests, which run it small (benchmarks is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"
_spec = importlib.util.spec_from_file_location("chaos", _PATH)
assert _spec is not None and _spec.loader is not None
chaos = importlib.util.module_from_spec(_spec)
sys.modules["chaos"] = chaos  # its dataclasses look their module up while being made
_spec.loader.exec_module(chaos)

run_sqlite = chaos.run_sqlite
run_workers = chaos.run_workers

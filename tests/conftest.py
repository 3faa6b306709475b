"""Shared fixtures: an isolated experiments root, and trial scripts written on the fly."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def exp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh experiments root, also exported as SPIKETUNE_EXPERIMENTS (so ids resolve)."""
    root = tmp_path / "experiments"
    root.mkdir()
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(root))
    return root


@pytest.fixture
def trial_script(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``code`` (dedented) as ``tmp_path/code/<name>`` and return the code directory."""
    code_dir = tmp_path / "code"
    code_dir.mkdir()

    def write(code: str, name: str = "trial.py") -> Path:
        (code_dir / name).write_text(textwrap.dedent(code), encoding="utf-8")
        return code_dir

    return write

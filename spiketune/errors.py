"""The exception hierarchy of spiketune: one root, one branch per kind of failure.

::

    SpiketuneError
    ├── ConfigError            bad experiment configuration (carries every problem found)
    │   └── SearchSpaceError   bad search space
    ├── TrialError             a trial could not be run or reported
    ├── StorageError           the study's database could not be used
    ├── DataError              a dataset file is missing, corrupt or of a refused type
    ├── CheckpointError        a model checkpoint does not fit the network that loads it
    ├── HardwareError          a network does not fit a hardware target
    ├── ExportError            a model cannot be written in the asked format
    └── LaunchError            workers could not be submitted to SLURM or Kubernetes

User input never meets a bare ``assert``: it meets one of these, with a message that
names the field, the value and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SpiketuneError(Exception):
    """Root of every error spiketune raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a piece of configuration.

    ``field`` is the dotted path of the key as the user spelled it
    (``tuner.classArgs.optimize_mode``), ``value`` what was given, ``rule`` what would have
    been accepted.
    """

    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule} (got {self.value!r})"


class ConfigError(SpiketuneError):
    """The configuration is invalid; ``problems`` lists every problem, one message each."""

    def __init__(self, problems: list[Problem] | Problem, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}:\n{lines}")


class SearchSpaceError(ConfigError):
    """The search space is invalid."""


class TrialError(SpiketuneError):
    """A trial could not be launched, or its protocol was broken."""


class StorageError(SpiketuneError):
    """The study's storage could not be opened, joined or written."""


class DataError(SpiketuneError):
    """A dataset file is missing, truncated, corrupt, or holds a type the loader refuses."""


class CheckpointError(SpiketuneError):
    """A checkpoint cannot be loaded into the network that asked for it."""


class HardwareError(SpiketuneError):
    """A network does not fit a hardware target, or a target profile is invalid."""


class ExportError(SpiketuneError):
    """A model cannot be expressed in the requested export format."""


class LaunchError(SpiketuneError):
    """Workers could not be submitted, tracked or cancelled (no ``sbatch`` or ``kubectl``
    here, a submission the cluster refused)."""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ExportError",
    "HardwareError",
    "LaunchError",
    "Problem",
    "SearchSpaceError",
    "SpiketuneError",
    "StorageError",
    "TrialError",
]

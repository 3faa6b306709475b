"""Deprecated path: the scheduler's progress record is :class:`spiketune.Progress`."""

from spiketune._lazy import moved

__getattr__ = moved(__name__, {"Progress": "spiketune"})

"""Deprecated path: experiment storage now lives in :mod:`spiketune.engine`."""

from spiketune._lazy import moved

__getattr__ = moved(__name__, {"find_experiment": "spiketune.engine"})

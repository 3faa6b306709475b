"""Compatibility layers for trial code written against other HPO tools.

``spiketune/compat`` itself goes on a trial process's ``PYTHONPATH`` (never installed
globally), so that ``import nni`` inside a trial finds the shim in ``compat/nni``.
"""

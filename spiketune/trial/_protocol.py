"""The trial protocol, both directions.

Environment names, ``parameter.json`` in, ``metrics.jsonl`` out.

One module owns the files and variables through which the engine and a trial process talk
(documented in docs/engine.md). It imports only the standard library.
"""

from __future__ import annotations

ENV_TRIAL_DIR = "SPIKETUNE_TRIAL_DIR"
ENV_TRIAL_ID = "SPIKETUNE_TRIAL_ID"
ENV_EXPERIMENT_ID = "SPIKETUNE_EXPERIMENT_ID"
ENV_SEQUENCE_ID = "SPIKETUNE_SEQUENCE_ID"
ENV_EXPERIMENT_DIR = "SPIKETUNE_EXPERIMENT_DIR"  # where best_model/ and report/ live
ENV_PARAMETERS = "SPIKETUNE_PARAMETERS"
ENV_PARAMETER_FILE = "SPIKETUNE_PARAMETER_FILE"
PARAMETER_FILE = "parameter.json"
METRICS_FILE = "metrics.jsonl"

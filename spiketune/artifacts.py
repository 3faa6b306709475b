"""Deprecated path: the best-model keeper's public names now live in :mod:`spiketune.trial`."""

from spiketune._lazy import moved

__getattr__ = moved(
    __name__,
    dict.fromkeys(
        (
            "BestModel",
            "Predictions",
            "experiment_dir_of_trial",
            "load_best_model",
            "load_predictions",
            "offer_best_model",
        ),
        "spiketune.trial",
    ),
)

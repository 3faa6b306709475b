"""Deprecated path: keeping the best model is :mod:`spiketune.trial`'s, reading it the engine's."""

from spiketune._lazy import moved

__getattr__ = moved(
    __name__,
    {
        **dict.fromkeys(
            ("BestModel", "Predictions", "experiment_dir_of_trial", "offer_best_model"),
            "spiketune.trial",
        ),
        **dict.fromkeys(("load_best_model", "load_predictions"), "spiketune.engine"),
    },
)

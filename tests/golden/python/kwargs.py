"""The Python form of a configuration: keyword arguments as a user passes them."""

from pathlib import Path

HERE = Path(__file__).resolve().parent

KWARGS = dict(
    name="python-api",
    trial_command="python3 main_hpo.py",
    trial_code_directory=HERE,
    search_space={
        "lr": {"_type": "loguniform", "_value": (1e-4, 1e-1)},
        "nb_hidden": {"_type": "randint", "_value": [32, 257]},
    },
    tuner="bohb",
    tuner_args={"min_budget": 1, "max_budget": 9, "eta": 3, "optimize_mode": "maximize"},
    max_trials=20,
    max_duration="2h",
    max_trial_duration="1.5m",
    concurrency=3,
    gpus="0,1",
    trials_per_gpu=2,
    seed=123,
)

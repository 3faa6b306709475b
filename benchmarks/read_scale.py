"""How long reading a big finished experiment takes: ``spiketune view``'s answers against plain
optuna-dashboard on the same study, the report's two trial-per-line figures, and ``ls``'s read
against reading every trial whole.

    .venv/bin/python benchmarks/read_scale.py [--trials 3000] [--keep DIR]

Builds an experiment of ``--trials`` in-process trials (Random tuner, the Medianstop assessor
after step 2, three intermediate reports each, about 5 % failing; about 25 s for 3,000) in a
temporary directory, or in ``--keep DIR`` to look at it afterwards, then prints seconds per
call. The dashboard calls are WSGI calls in this process (no HTTP): the study list, the first
study detail, a poll for the last ten trials, and the same poll once the trials read for it
are 11 s old (both dashboards read them again then). Plain optuna-dashboard answers from the
same study file.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPACE = {"x": {"_type": "uniform", "_value": [-3, 3]},
         "y": {"_type": "loguniform", "_value": [1e-3, 10]},
         "opt": {"_type": "choice", "_value": ["adam", "sgd", "rmsprop"]}}


def trial(p: dict[str, Any]) -> dict[str, float]:
    import spiketune.trial as st

    base = -(p["x"] - 1) ** 2 - (p["y"] + 0.5) ** 2
    if random.Random(p["x"]).random() < 0.05:
        raise ValueError("an unlucky trial")
    for step in range(1, 4):
        st.report_intermediate_result(base * (1 + 0.5 / step))
    return {"default": base, "train_acc": base + 0.1}


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def dashboard_times(app: Any, trials: int) -> list[float]:
    from spiketune.dashboard import _call

    def get(path: str, query: str = "") -> Callable[[], Any]:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
                   "HTTP_ACCEPT_ENCODING": "identity", "wsgi.input": io.BytesIO(),
                   "wsgi.url_scheme": "http"}
        return lambda: _call(app, environ)

    poll = get("/api/studies/1", f"after={trials - 10}")
    out = [timed(get("/api/studies")), timed(get("/api/studies/1")), timed(poll)]
    time.sleep(11)
    return [*out, timed(poll)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--keep", type=Path, help="build the experiment here and keep it")
    args = parser.parse_args()
    import optuna
    from optuna_dashboard import wsgi

    from spiketune import Experiment
    from spiketune.dashboard import _application
    from spiketune.engine.results import load_results, load_summary
    from spiketune.engine.storage import StudyStore, sqlite_url
    from spiketune.report._figures import plot_history, plot_intermediate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        exp = Experiment(name="read-scale", trial=trial, search_space=SPACE, tuner="Random",
                         seed=0, max_trials=args.trials, experiment_dir=root,
                         assessor="Medianstop", assessor_args={"start_step": 2})
        built = timed(exp.run)
        print(f"{args.trials} trials built in {built:.1f} s: {exp.directory}")
        url = sqlite_url(exp.directory / "study.db")
        store = StudyStore.open(url, exp.id, read_only=True)
        ours = dashboard_times(_application(store, exp.directory), args.trials)
        store.close()
        plain = dashboard_times(wsgi(optuna.storages.RDBStorage(url)), args.trials)
        print("dashboard (s)       list  detail  poll  poll 11 s later")
        for name, row in (("spiketune view", ours), ("optuna-dashboard", plain)):
            print(f"{name:18} " + " ".join(f"{t:6.2f}" for t in row))
        results = load_results(exp.directory)
        for draw in (plot_intermediate, plot_history):
            seconds = timed(lambda draw=draw: draw(results, Path(tmp) / f"{draw.__name__}.png"))
            print(f"{draw.__name__}: {seconds:.2f} s")
        whole = timed(lambda: load_results(exp.directory))
        light = timed(lambda: load_summary(exp.directory))
        print(f"ls's read: {light:.2f} s (every trial read whole: {whole:.2f} s)")


if __name__ == "__main__":
    main()

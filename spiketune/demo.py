"""``python -m spiketune.demo`` (``make demo``): the Braille e-prop use case end to end.

It runs the ``braille-eprop`` template spiketune ships (what ``spiketune init`` writes) with a
budget sized for a laptop, under 12 minutes on 2 CPU cores: 8.5 minutes of TPE over the
template's whole search space, each trial judged by its mean validation accuracy over 3
re-splits and capped at 20 epochs, weak trials stopped by the median rule; then the chosen
configuration retrained with 3 seeds. It ends by building the report and printing the chosen
configuration's test accuracy (mean ± std over the seeds), the best trial's, and the path of
the HTML report, whose confusion matrix is the kept model's on the test part.

The data come from ``--data PATH`` (the threshold-1 pool file ``braille_reduced_th1_pool.pt``,
the encoding of the published use case; or a Braille event file; or a directory holding
either), else ``$SPIKETUNE_BRAILLE_DATA``, else spiketune's data cache, where the event file is
downloaded once from Zenodo. ``make demo`` gives the pool when ``../shared/data/braille_th1``
is there. Extra arguments go to the template's launcher (``main.py --help``), after the demo's
own, so they override them: ``python -m spiketune.demo --trials 10 --data ~/data/braille``.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

from spiketune import ExperimentResults
from spiketune.launcher import launch

__all__ = ["DEMO_ARGS", "TEMPLATE", "run_demo"]

#: The template the demo runs (a name of ``spiketune init --template``).
TEMPLATE = "braille_eprop"

#: The laptop budget: at most 40 trials or 8.5 minutes, 2 at a time, 20 epochs per trial at
#: most, 3 minutes per trial at most (a slower trial ends its training in time and reports its
#: best epoch); then 3 retraining seeds.
DEMO_ARGS = [
    "--name", "braille_eprop_demo",
    "--trials", "40",
    "--duration", "8.5m",  # 9m ran 12 min 9 s once: retraining takes up to 3 min
    "--trial-duration", "3m",
    "--concurrency", "2",
    "--epochs-cap", "20",
]


def _launcher(directory: Path) -> ModuleType:
    """The template's ``main.py`` as a module (the template is not a package)."""
    spec = importlib.util.spec_from_file_location("braille_eprop_main", directory / "main.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the template's launcher {directory / 'main.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_demo(argv: list[str] | None = None) -> ExperimentResults:
    """Run the packaged template with the demo's budget (``argv`` adds to it or overrides it).

    The template runs where it is installed (as a file system path for the duration of the
    run, should spiketune be installed as a zip): its trials read their code from there and
    write only into the experiment's directory.
    """
    template = resources.files("spiketune") / "templates" / TEMPLATE
    with resources.as_file(template) as directory:
        print(f"spiketune demo: the Braille e-prop template ({directory})", flush=True)
        return _launcher(Path(directory)).run([*DEMO_ARGS, *(argv or [])])


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
    launch(run_demo, argv)  # bad options or data: the reason alone, not a traceback


if __name__ == "__main__":
    main()

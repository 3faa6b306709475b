"""``python -m spiketune.demo`` (``make demo``): the Braille e-prop example end to end.

It runs ``examples/braille_eprop`` (the packaged copy of it when spiketune is installed without
its repository) with a budget sized for a laptop, about 10 minutes on 2 CPU cores: TPE over the
example's whole search space, each trial capped at 20 epochs, weak trials stopped by the median
rule. It ends by building the report and printing the best model's parameters, its test
accuracy and the path of the HTML report. The data come from ``../shared/data/braille`` beside
the checkout when present, else from spiketune's cache (downloaded once from Zenodo).

Extra arguments go to the example's launcher (``main.py --help``), after the demo's own, so
they override them: ``python -m spiketune.demo --trials 10``.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

from spiketune.engine.results import ExperimentResults

__all__ = ["DEMO_ARGS", "example_dir", "run_demo"]

#: The laptop budget: at most 40 trials or 10 minutes, 2 at a time, 20 epochs per trial at
#: most, 3 minutes per trial at most.
DEMO_ARGS = [
    "--name", "braille_eprop_demo",
    "--trials", "40",
    "--duration", "10m",
    "--trial-duration", "3m",
    "--concurrency", "2",
    "--epochs-cap", "20",
]


def example_dir() -> Path:
    """``examples/braille_eprop`` of the repository, else the template spiketune ships."""
    repo = Path(__file__).resolve().parents[1] / "examples" / "braille_eprop"
    if (repo / "main.py").is_file():
        return repo
    return Path(str(resources.files("spiketune") / "templates" / "braille_eprop"))


def _launcher(directory: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("braille_eprop_main", directory / "main.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the example's launcher {directory / 'main.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_demo(argv: list[str] | None = None) -> ExperimentResults:
    """Run the example with the demo's budget (``argv`` adds to it or overrides it)."""
    directory = example_dir()
    print(f"spiketune demo: the Braille e-prop example ({directory})", flush=True)
    return _launcher(directory).run([*DEMO_ARGS, *(argv or [])])


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
    run_demo(argv)


if __name__ == "__main__":
    main()

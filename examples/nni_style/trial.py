"""An NNI trial script, unchanged: it imports ``nni`` and reports 3 intermediate results.

Under spiketune, ``import nni`` finds spiketune's shim (on the trial process's PYTHONPATH
only). Run by hand it works too, with the shim's directory on the path::

    PYTHONPATH=$(python -c 'import spiketune.compat as c; print(c.__path__[0])') \
        python3 trial.py --params params.json    # or no parameters at all
"""

import argparse

import nni
from nni.utils import merge_parameter


def objective(x: float, y: float, shift: int) -> float:
    """A quadratic with its maximum 0 at x = 1, y = -2 (for shift = 0)."""
    return -((x - 1.0) ** 2) - (y + 2.0) ** 2 - shift


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.0)
    parser.add_argument("--y", type=float, default=0.0)
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--params", default=None, help="parameter file (when run by hand)")
    args = merge_parameter(parser.parse_args(), nni.get_next_parameter())
    value = objective(args.x, args.y, args.shift)
    for step in (1, 2, 3):
        # A training loop would report its validation accuracy each epoch.
        nni.report_intermediate_result(value * (1.0 + 1.0 / step))
    nni.report_final_result({"default": value, "distance": abs(args.x - 1.0) + abs(args.y + 2.0)})


if __name__ == "__main__":
    main()

"""Reports of an experiment: figures and one offline HTML page.

``build_report(experiment)`` writes into ``<experiment dir>/report/``:

* ``exploration.png`` / ``exploration.html``: one line per finished trial across the
  hyperparameter axes and the accuracy axes (best train, best validation, test; see
  :func:`accuracy_axes`), coloured by test accuracy; the HTML is interactive (brush the axes);
* ``confusion_matrix.png``: the experiment's best model (kept by
  :mod:`spiketune.trial._artifacts`) on its test split, accuracy in the title;
* ``history.png``, ``importance.png``, ``intermediate.png``;
* ``pareto_front.png`` (experiments with several objectives): the Pareto front, one panel per
  pair of objectives, with a table of the front on the page;
* ``index.html`` tying them together with the best parameters and every trial, its metrics,
  outcome and logs; ``plotly.min.js`` beside it, so no network is needed to open it.
"""

from spiketune.report._axes import ACCURACY_AXES, accuracy_axes
from spiketune.report._build import ReportFiles, build_report, report_command
from spiketune.report._confusion import confusion_matrix, plot_confusion_matrix
from spiketune.report._importance import Importances, param_importances

__all__ = [
    "ACCURACY_AXES",
    "Importances",
    "ReportFiles",
    "accuracy_axes",
    "build_report",
    "confusion_matrix",
    "param_importances",
    "plot_confusion_matrix",
    "report_command",
]

"""The handed-over result of the threshold-10 search (``results/braille_th10``): the chosen
configuration, the checkpoints of its retrained seeds and their figures, as the launcher wrote
them. The same checks as threshold 1's, and (with the event file) each checkpoint scoring on
the fixed test part, encoded from the archive's own file as the checkpoint records, exactly
the accuracy recorded for it: what ``spiketune evaluate ... --data data_braille_letters_th10
--part test`` prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_results_braille_th1 import check_handed_over

from spiketune.data import load_braille_split
from spiketune.engine import load_retrained
from spiketune.snn import evaluate_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "braille_th10"
DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
DATA = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data" / "braille")


def test_the_handed_over_result_is_one_configuration_on_one_split() -> None:
    check_handed_over(RESULTS)


@pytest.mark.skipif(
    not DATA.exists(),
    reason=f"the threshold-10 event file is not at {DATA} (set ${DATA_ENV} to it or its "
    "directory)",
)
def test_each_checkpoint_scores_its_recorded_test_accuracy_on_the_fixed_test_part() -> None:
    retrained = load_retrained(RESULTS)
    assert retrained is not None
    for run in retrained.runs:
        checkpoint = load_checkpoint(RESULTS / run.checkpoint)
        options = checkpoint.extra["data"]
        assert (options["threshold"], options["channels"]) == (10, "split")
        parts = load_braille_split(options, DATA, download=False)
        assert parts.split_digest == retrained.split_digest
        score = evaluate_checkpoint(checkpoint, parts.test)
        assert score.total == len(parts.test.labels)
        assert score.accuracy == pytest.approx(run.metrics["test"], abs=1e-9)

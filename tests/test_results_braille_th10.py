"""The handed-over result of the threshold-10 search (``results/braille_th10``): the chosen
configuration, the checkpoints of its retrained seeds and their figures, as the launcher wrote
them. The same checks as threshold 1's, and (with the event file) each checkpoint scoring on
the fixed test part, encoded from the archive's own file as the checkpoint records, exactly
the accuracy recorded for it: what ``spiketune evaluate ... --data data_braille_letters_th10
--part test`` prints."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest
from test_results_braille_th1 import check_handed_over, check_variant

from spiketune.data import load_braille_split
from spiketune.engine import load_retrained
from spiketune.snn import evaluate_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "braille_th10"
#: The same configuration retrained with pretraining on the archive's other letters.
PRETRAINED = REPO / "results" / "braille_th10_pretrained"
DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
DATA = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data" / "braille")


@pytest.mark.parametrize("results", [RESULTS, PRETRAINED], ids=["chosen", "pretrained"])
def test_the_handed_over_result_is_one_configuration_on_one_split(results: Path) -> None:
    check_handed_over(results)


def test_the_pretrained_result_is_the_chosen_configuration_pretrained() -> None:
    second = check_variant(RESULTS, PRETRAINED, {"pretrain_epochs": 20})
    for run in second.runs:
        log = (PRETRAINED / run.checkpoint).with_name("train.log").read_text()
        assert "pretrained on 20 other letters (4000 samples)" in log


@pytest.mark.skipif(
    not DATA.exists(),
    reason=f"the threshold-10 event file is not at {DATA} (set ${DATA_ENV} to it or its "
    "directory)",
)
@pytest.mark.parametrize("results", [RESULTS, PRETRAINED], ids=["chosen", "pretrained"])
def test_each_checkpoint_scores_its_recorded_test_accuracy_on_the_fixed_test_part(
    results: Path,
) -> None:
    retrained = load_retrained(results)
    assert retrained is not None
    for run in retrained.runs:
        checkpoint = load_checkpoint(results / run.checkpoint)
        options = checkpoint.extra["data"]
        assert (options["threshold"], options["channels"]) == (10, "split")
        parts = load_braille_split(options, DATA, download=False)
        assert parts.split_digest == retrained.split_digest
        score = evaluate_checkpoint(checkpoint, parts.test)
        assert score.total == len(parts.test.labels)
        assert score.accuracy == pytest.approx(run.metrics["test"], abs=1e-9)


def test_the_split_analysis_is_what_the_readmes_quote() -> None:
    """``splits.json`` (``benchmarks/braille_splits.py --data`` the event file): ten splits
    and three seeds per recipe, split 0 being the handed-over result's split; the repository
    README's table is its means, and where split 0 stands for each seed."""
    analysis = json.loads((RESULTS / "splits.json").read_text())["recipes"]
    readme = (REPO / "README.md").read_text()
    retrained = load_retrained(RESULTS)
    assert retrained is not None
    for recipe in ("chosen", "default", "gru"):
        seeds = analysis[recipe]
        assert sorted(seeds) == ["0", "1", "2"]
        assert all(sorted(map(int, s)) == list(range(10)) for s in seeds.values())
        assert {s["0"]["digest"] for s in seeds.values()} == {retrained.split_digest[:12]}
        assert all(len({s[k]["digest"] for k in s}) == 10 for s in seeds.values())
        fixed = statistics.fmean(s["0"]["test"] for s in seeds.values())
        overall = statistics.fmean(r["test"] for s in seeds.values() for r in s.values())
        ranks = [1 + sum(r["test"] < s["0"]["test"] for r in s.values())
                 for _, s in sorted(seeds.items())]
        row = next(line for line in readme.splitlines()
                   if line.startswith("| ") and f"| {100 * fixed:.2f} % |" in line)
        assert f"| {100 * overall:.2f} % |" in row, (recipe, row)
        assert row.rstrip(" |").endswith(", ".join(_ordinal(r) for r in ranks)), (recipe, row)


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th')}"

"""The handed-over result of the threshold-1 search (``results/braille_th1``): the chosen
configuration's parameters, the checkpoints of its retrained seeds and their figures, as the
launcher wrote them into ``<experiment>/``. Whoever holds other samples of the encoding checks
them with ``spiketune evaluate``; these tests check that they are what the README quotes:
complete, of one configuration and one split, and (with the pool) each checkpoint scoring on
the fixed test part exactly the accuracy recorded for it."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from spiketune.data import load_braille_pool, split_parts
from spiketune.engine import Retrained, load_retrained
from spiketune.snn import evaluate_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "braille_th1"
#: The same configuration at 1,024 neurons, adopted on validation over 3 re-splits.
WIDE = REPO / "results" / "braille_th1_wide"
POOL_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"
POOL_DIR = Path(os.environ.get(POOL_ENV) or REPO.parent / "shared" / "data" / "braille_th1")
POOL_FILE = POOL_DIR / "braille_reduced_th1_pool.pt" if POOL_DIR.is_dir() else POOL_DIR


@pytest.mark.parametrize("results", [RESULTS, WIDE], ids=["chosen", "wide"])
def test_the_handed_over_result_is_one_configuration_on_one_split(results: Path) -> None:
    check_handed_over(results)


def test_the_wide_result_is_the_chosen_configuration_at_1024_neurons() -> None:
    """Only ``n_rec`` differs, and the figures its README gives for the decision (mean
    validation over 3 re-splits, 97.25 % against 95.98 %) are the checkpoints' own."""
    second = check_variant(RESULTS, WIDE, {"n_rec": 1024})
    validation = statistics.fmean(r.metrics["default"] for r in second.runs)
    assert f"**{100 * validation:.2f} %**" in (WIDE / "README.md").read_text()
    for run in second.runs:  # judged on 3 re-splits; the default is their mean
        folds = [run.metrics[f"val_fold{k}"] for k in range(3)]
        assert run.metrics["default"] == pytest.approx(statistics.fmean(folds))


def check_variant(base: Path, variant: Path, changes: dict[str, Any]) -> Retrained:
    """``variant`` hands over ``base``'s configuration with only ``changes``, on the same
    split, retrained with the same seeds 0, 1, 2; returns the variant's figures."""
    chosen = json.loads((base / "chosen" / "parameters.json").read_text())
    parameters = json.loads((variant / "chosen" / "parameters.json").read_text())
    assert parameters == {**chosen, **changes}
    first, second = load_retrained(base), load_retrained(variant)
    assert first is not None and second is not None
    assert first.split_digest == second.split_digest
    assert [r.seed for r in first.runs] == [r.seed for r in second.runs] == [0, 1, 2]
    return second


def check_handed_over(results: Path) -> None:
    """``results``: one configuration (``chosen/parameters.json``), at least 3 retrained
    seeds, each checkpoint of that configuration and of the split the README names, and the
    README's mean ± std what ``retrained.json`` holds."""
    retrained = load_retrained(results)
    assert retrained is not None and retrained.metric == "test"
    assert len(retrained.runs) >= 3  # the "at least 3 seeds"
    parameters = json.loads((results / "chosen" / "parameters.json").read_text())
    assert parameters == retrained.parameters
    readme = (results / "README.md").read_text()
    assert f"{100 * retrained.mean:.2f} % ± {100 * retrained.std:.2f} %" in readme
    assert retrained.split_digest is not None and retrained.split_digest[:16] in readme
    for run in retrained.runs:
        checkpoint = load_checkpoint(results / run.checkpoint)
        assert checkpoint.extra["split_digest"] == retrained.split_digest
        assert checkpoint.extra["data"]["bin_size"] == parameters["bin_size"]
        assert checkpoint.network.config.n_rec == parameters["n_rec"]
        assert json.loads((results / run.checkpoint).with_name("result.json").read_text())[
            "test"] == run.metrics["test"]
    assert retrained.mean == pytest.approx(statistics.fmean(r.metrics["test"]
                                                            for r in retrained.runs))


@pytest.mark.skipif(
    not POOL_FILE.is_file(),
    reason=f"the threshold-1 pool is not at {POOL_FILE} (set ${POOL_ENV} to its file or "
    "directory)",
)
@pytest.mark.parametrize("results", [RESULTS, WIDE], ids=["chosen", "wide"])
def test_each_checkpoint_scores_its_recorded_test_accuracy_on_the_fixed_test_part(
    results: Path,
) -> None:
    retrained = load_retrained(results)
    assert retrained is not None
    parts = split_parts(load_braille_pool(POOL_FILE))
    assert parts.split_digest == retrained.split_digest
    for run in retrained.runs:
        score = evaluate_checkpoint(results / run.checkpoint, parts.test)
        assert score.total == len(parts.test.labels) == 105
        assert score.accuracy == pytest.approx(run.metrics["test"], abs=1e-9)


def test_the_split_analysis_is_what_the_readmes_quote() -> None:
    """``splits.json`` (``benchmarks/braille_splits.py``'s figures): ten splits and three seeds
    per recipe; the repository README's table is its means, and on split 0 the chosen
    configuration scores exactly what the launcher's retraining seeds scored."""
    analysis = json.loads((RESULTS / "splits.json").read_text())["recipes"]
    readme = (REPO / "README.md").read_text()
    for recipe in ("chosen", "default", "gru"):
        seeds = analysis[recipe]
        assert sorted(seeds) == ["0", "1", "2"]
        assert all(sorted(map(int, s)) == list(range(10)) for s in seeds.values())
        fixed = statistics.fmean(s["0"]["test"] for s in seeds.values())
        overall = statistics.fmean(r["test"] for s in seeds.values() for r in s.values())
        row = next(line for line in readme.splitlines()
                   if line.startswith("| ") and f"| {100 * fixed:.2f} % |" in line)
        assert f"| {100 * overall:.2f} % |" in row, (recipe, row)
    retrained = load_retrained(RESULTS)
    assert retrained is not None
    assert [analysis["chosen"][str(r.seed)]["0"]["test"] for r in retrained.runs] == \
        pytest.approx([r.metrics["test"] for r in retrained.runs], abs=1e-6)

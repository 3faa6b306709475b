"""Reports: figures and the offline page, on real experiments and on hand-made records."""

from __future__ import annotations

import math
import re
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from spiketune import (
    ConfigError,
    Experiment,
    ExperimentResults,
    Outcome,
    TrialRecord,
    load_results,
)
from spiketune.engine import load_best_model, load_predictions
from spiketune.report import (
    ACCURACY_AXES,
    ReportFiles,
    accuracy_axes,
    build_report,
    confusion_matrix,
    param_importances,
    plot_confusion_matrix,
    report_command,
)
from spiketune.report._axes import exploration
from spiketune.report._figures import best_so_far, plot_importance
from spiketune.report._html import fmt
from spiketune.trial import Predictions

TEST_SIZE = 50
CLASSES = ["A", "B", "C", "Space"]

SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "neuron": {
        "_type": "choice",
        "_value": [
            {"_name": "lif", "tau_mem": {"_type": "uniform", "_value": [5, 50]}},
            {"_name": "alif", "beta": {"_type": "uniform", "_value": [0.1, 2.0]}},
        ],
    },
    "batch_size": {"_type": "choice", "_value": [16, 32, 64]},
}

# A trial script as an experiment runs it: its own process, parameters from the trial
# directory, the best model kept through spiketune.trial. Sequence 2 fails, sequence 3
# reports a poor first result and is stopped by the assessor (it would sleep otherwise).
TRIAL_SCRIPT = textwrap.dedent(
    f"""
    import math, random, sys, time
    import spiketune.trial as st
    from spiketune.trial import Predictions, offer_best_model

    p = st.get_next_parameter()
    seq = st.get_sequence_id()
    print("trial", seq, "starting")
    if seq == 2:
        print("diverged", file=sys.stderr)
        sys.exit(3)
    if seq == 3:
        st.report_intermediate_result({{"default": 0.05, "train_acc": 0.1}})
        time.sleep(60)
    val = 0.95 - 0.08 * abs(math.log10(p["lr"]) + 2.5) + 0.01 * (p["neuron"]["_name"] == "alif")
    val = round(val, 4)
    for step in range(3):
        st.report_intermediate_result({{"default": 0.5 + 0.1 * step, "train_acc": 0.6}})
    rng = random.Random(seq)
    labels = [i % {len(CLASSES)} for i in range({TEST_SIZE})]
    preds = [y if rng.random() < val else (y + 1) % {len(CLASSES)} for y in labels]
    test = sum(y == q for y, q in zip(labels, preds)) / len(labels)
    spikes = 100.0 + seq
    offer_best_model((val, -spikes), {{"best_model.pt": b"weights"}}, {{"test": test}},
                     Predictions(labels, preds, {CLASSES!r}))
    st.report_final_result({{"default": val, "train": min(1.0, val + 0.04), "test": test,
                            "spikes_per_sample": spikes}})
    """
)


@pytest.fixture(scope="module")
def braille_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentResults, ReportFiles]:
    """A small real experiment of subprocess trials, and its report."""
    root = tmp_path_factory.mktemp("report")
    code = root / "code"
    code.mkdir()
    (code / "trial.py").write_text(TRIAL_SCRIPT)
    exp = Experiment(
        name="braille-like",
        trial_command=f"{sys.executable} trial.py",
        trial_code_directory=code,
        search_space=SPACE,
        tuner="Random",
        seed=0,
        max_trials=7,
        assessor="Medianstop",
        experiment_dir=root / "experiments",
        kill_grace=1.0,
    )
    results = exp.run()
    outcomes = [r.outcome for r in results.records]
    assert outcomes.count(Outcome.FAILED) == 1, [(r.outcome, r.reason) for r in results.records]
    assert outcomes.count(Outcome.EARLY_STOPPED) == 1, outcomes
    return results, build_report(exp.directory)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _links(text: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text)


# ------------------------------------------------------------------------------ whole report
def test_every_report_file_exists_and_pngs_are_real_images(braille_like) -> None:
    from matplotlib.image import imread

    _, files = braille_like
    assert files.directory == files.index.parent
    assert files.directory.name == "report"
    for name in ("exploration_png", "exploration_html", "confusion_matrix", "history",
                 "importance", "intermediate"):
        assert getattr(files, name) is not None, name
    for path in files.written():
        assert path.is_file() and path.stat().st_size > 0, path
        assert path.parent == files.directory
    for path in files.written():
        if path.suffix == ".png":
            width, height = _png_size(path)
            assert 400 <= width <= 4000 and 300 <= height <= 3000, (path.name, width, height)
            pixels = imread(path)
            assert pixels.std() > 0.05, f"{path.name} looks blank"


def test_confusion_matrix_covers_the_whole_test_set(braille_like, tmp_path: Path) -> None:
    results, _ = braille_like
    predictions = load_predictions(results.directory)
    assert predictions is not None
    matrix = plot_confusion_matrix(predictions, tmp_path / "cm.png")
    assert matrix.shape == (len(CLASSES), len(CLASSES))
    assert matrix.sum() == TEST_SIZE
    assert int(matrix.trace()) == predictions.n_correct
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_best_model_is_the_best_validation_trial(braille_like) -> None:
    results, _ = braille_like
    best = load_best_model(results.directory)
    assert best is not None and results.best is not None
    assert best.trial_id == str(results.best.number)
    assert best.score[0] == pytest.approx(results.best.value)
    assert best.parameters == results.best.parameters
    assert best.predictions is not None
    assert best.predictions.accuracy == pytest.approx(results.best.metrics["test"])


def test_index_page_shows_best_trials_logs_and_needs_no_network(braille_like) -> None:
    results, files = braille_like
    text = files.index.read_text(encoding="utf-8")
    best = results.best
    assert best is not None
    assert fmt(best.value) in text
    assert fmt(best.metrics["test"]) in text
    for name in ("lr", "neuron._name", "neuron.tau_mem", "neuron.beta", "batch_size",
                 "metric train", "metric test", "metric spikes_per_sample"):
        assert f"<th>{name}</th>" in text, name
    rows = re.findall(r"<tr class='(\w+)( best)?'>", text)
    assert len(rows) == len(results.records)
    assert sorted(r[0] for r in rows) == sorted(r.outcome.value for r in results.records)
    assert [r for r in rows if r[1]] == [(Outcome.COMPLETE.value, " best")]
    failed = next(r for r in results.records if r.outcome == Outcome.FAILED)
    assert f"../trials/{failed.number}/stderr.log" in text
    assert "exit code 3" in text or "diverged" in text  # the reason is shown
    # Every link is relative and leads to a file that exists.
    for page in (files.index, files.exploration_html):
        assert page is not None
        links = _links(page.read_text(encoding="utf-8"))
        assert links, page
        for link in links:
            assert not re.match(r"(?i)^(https?:)?//", link), f"network link {link} in {page.name}"
            assert (page.parent / unquote(link)).exists(), f"broken link {link} in {page.name}"
    assert "plotly.min.js" in _links(text)
    assert "cdn" not in " ".join(_links(text)).lower()
    for record in results.records:
        assert f"../trials/{record.number}/stdout.log" in text


def test_report_command_says_where_the_page_is(braille_like, tmp_path: Path) -> None:
    results, _ = braille_like
    said: list[str] = []
    files = report_command(str(results.directory), tmp_path / "elsewhere", None, echo=said.append)
    assert files.index == (tmp_path / "elsewhere" / "index.html").resolve()
    assert files.index.is_file()
    assert said == [f"report: {files.index} ({len(files.written())} files in {files.directory})"]
    # Links out of a report elsewhere still point at the experiment's trial logs.
    text = files.index.read_text(encoding="utf-8")
    log = next(link for link in _links(text) if link.endswith("stdout.log"))
    assert (files.directory / unquote(log)).is_file()


def test_exploration_of_the_real_experiment(braille_like) -> None:
    results, _ = braille_like
    ex = exploration(results)
    finished = [r for r in results.records if r.outcome != Outcome.FAILED]
    assert sorted(line.number for line in ex.lines) == sorted(r.number for r in finished)
    names = [a.name for a in ex.axes]
    assert names[-3:] == ["train", "default", "test"]
    assert [a.label for a in ex.axes[-3:]] == ["best train", "best validation", "test"]
    assert set(names[:-3]) == {"lr", "neuron._name", "neuron.tau_mem", "neuron.beta",
                               "batch_size"}
    scales = {a.name: a.scale for a in ex.axes}
    assert scales["lr"] == "log"
    assert scales["neuron._name"] == scales["batch_size"] == "category"
    assert scales["neuron.tau_mem"] == "linear"
    assert ex.color_key == "test"
    stopped = next(i for i, line in enumerate(ex.lines) if line.outcome == Outcome.EARLY_STOPPED)
    assert ex.lines[stopped].metrics == {"default": 0.05}
    assert ex.colors[stopped] is None  # no test accuracy: drawn grey
    assert ex.best is not None and ex.lines[ex.best].number == results.best.number


# ------------------------------------------------------------------------------ hand-made
def _record(
    n: int, params: dict[str, Any], metrics: Any = None, outcome: Outcome = Outcome.COMPLETE
) -> TrialRecord:
    if isinstance(metrics, int | float):
        metrics = {"default": metrics}
    return TrialRecord(number=n, outcome=outcome, parameters=params, metrics=metrics)


def _results(records: list[TrialRecord], space: dict[str, Any] | None = None,
             mode: str = "maximize") -> ExperimentResults:
    return ExperimentResults(id="hand", directory=None, config={"search_space": space or {}},
                             records=records, optimize_mode=mode)  # type: ignore[arg-type]


def test_nni_style_experiment_gets_its_own_metric_axes() -> None:
    records = [
        _record(0, {"x": 0.5, "opt": "adam"}, {"default": 0.9, "loss": 0.3}),
        _record(1, {"x": 2.5, "opt": "sgd"}, {"default": 0.7, "loss": 0.6, "note": "text"}),
        _record(2, {"x": 1.0, "opt": "sgd"}, 0.8),
        _record(3, {"x": 3.0, "opt": "adam"}, None, Outcome.FAILED),
    ]
    ex = exploration(_results(records))
    assert [a.name for a in ex.axes] == ["x", "opt", "default", "loss"]
    assert [a.label for a in ex.axes][-2:] == ["objective", "loss"]
    assert ex.color_key == "default"
    loss = ex.axes[-1]
    assert "n/a" in loss.ticktext  # trial 2 reported no loss
    assert loss.positions[2] < loss.lo + 0.2 * (loss.hi - loss.lo)
    opt = ex.axes[1]
    assert opt.scale == "category" and opt.ticktext == ["adam", "sgd"]
    # Without a search space, numbers over three decades get a log axis.
    wide = exploration(_results([_record(i, {"w": 10.0 ** -i}, float(i)) for i in range(4)]))
    assert wide.axes[0].scale == "log"
    assert exploration(_results(records), metric_keys=["loss"]).axes[-1].name == "loss"


def test_accuracy_axes_mapping() -> None:
    assert accuracy_axes(["default", "train", "test", "epoch"]) == list(ACCURACY_AXES.items())
    assert accuracy_axes(["test", "default"]) == [("default", "best validation"),
                                                 ("test", "test")]
    assert accuracy_axes(["loss", "default"]) == [("default", "objective"), ("loss", "loss")]
    assert accuracy_axes([]) == []


def test_axis_positions_follow_scales_and_choices() -> None:
    space = {"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
             "bs": {"_type": "choice", "_value": [64, 16, 32]}}
    records = [_record(0, {"lr": 1e-4, "bs": 16}, 0.5), _record(1, {"lr": 1e-2, "bs": 64}, 0.6)]
    ex = exploration(_results(records, space))
    lr, bs = ex.axes[0], ex.axes[1]
    assert lr.positions == pytest.approx([-4.0, -2.0])
    assert all(lr.lo - 1e-9 <= t <= lr.hi + 1e-9 for t in lr.tickvals)
    assert bs.ticktext == ["64", "16", "32"]  # the space's order, not sorted
    assert bs.positions == [1.0, 0.0]
    assert [lr.normalised(0), lr.normalised(1)] == pytest.approx([0.0, 1.0])


def test_confusion_matrix_counts() -> None:
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m.dtype.kind == "i"


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_importance_never_fails_with_few_trials(n: int, tmp_path: Path) -> None:
    records = [_record(i, {"x": float(i), "c": "ab"[i % 2]}, 0.1 * i) for i in range(n)]
    imp = param_importances(_results(records))
    assert imp.trials == n
    if n < 2:
        assert imp.values == {}
    else:
        assert set(imp.values) == {"x", "c"}
        assert sum(imp.values.values()) == pytest.approx(1.0)
        assert imp.values["x"] >= imp.values["c"] - 1e-9
        assert "rank correlation" in imp.method
    assert _png_size(plot_importance(imp, tmp_path / "imp.png"))[0] > 300


def test_importance_ranks_what_drives_the_objective() -> None:
    import random

    rng = random.Random(1)
    records = []
    for i in range(24):
        x, y = rng.uniform(0, 1), rng.uniform(0, 1)
        nested = {"_name": "a", "k": rng.random()} if i % 2 else {"_name": "b"}
        records.append(_record(i, {"x": x, "y": y, "m": nested}, -((x - 0.3) ** 2) * 10 + 0.01 * y))
    imp = param_importances(_results(records))
    assert "(Optuna)" in imp.method
    assert next(iter(imp.values)) == "x"
    assert imp.left_out == {"m.k": "nested choice"}


def test_best_so_far_follows_the_direction() -> None:
    records = [_record(0, {}, 0.5), _record(1, {}, 0.7), _record(2, {}, None, Outcome.FAILED),
               _record(3, {}, 0.6)]
    assert best_so_far(_results(records)) == [(0, 0.5), (1, 0.7), (3, 0.7)]
    assert best_so_far(_results(records, mode="minimize")) == [(0, 0.5), (1, 0.5), (3, 0.5)]


def _drawn(monkeypatch: pytest.MonkeyPatch, draw: Any, *args: Any) -> Any:
    """The axes ``draw(*args, path)`` drew (the figure is kept as it is saved)."""
    from spiketune.report import _figures

    kept = []
    saved = _figures.save_png

    def keep(fig: Any, path: Path) -> Path:
        kept.append(fig)
        return saved(fig, path)

    monkeypatch.setattr(_figures, "save_png", keep)
    assert draw(*args) is not None
    return kept[0].axes[0]


def _curve(n: int, reports: list[float], value: Any, outcome: Outcome) -> TrialRecord:
    return TrialRecord(number=n, outcome=outcome, parameters={},
                       metrics=None if value is None else {"default": value},
                       intermediate=[{"default": v} for v in reports])


def test_intermediate_curves_are_one_collection_per_kind(tmp_path: Path, monkeypatch) -> None:
    """Thousands of trials draw as a few artists (one per trial took seconds): the complete
    curves in one collection coloured by objective, the early stopped and the failed ones
    each in one dashed collection with a cross at their last report; a non-finite report
    breaks its curve, and the legend has a fixed place (``loc="best"`` tests every point)."""
    from matplotlib.collections import LineCollection

    from spiketune.report._figures import plot_intermediate

    records = [_curve(n, [0.1 * n, 0.2 * n, 0.3 * n], 0.3 * n, Outcome.COMPLETE)
               for n in range(1, 41)]
    records.append(_curve(41, [0.5, math.nan, 0.6, 0.7], 0.7, Outcome.COMPLETE))
    records += [_curve(n, [0.05, 0.06], None, Outcome.EARLY_STOPPED) for n in range(42, 52)]
    records += [_curve(52, [0.2, 0.1, 0.3], None, Outcome.FAILED),
                _curve(53, [0.4], None, Outcome.FAILED)]
    ax = _drawn(monkeypatch, plot_intermediate, _results(records), tmp_path / "i.png")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 3 and len(ax.lines) == 1  # the best trial's curve drawn over them
    complete, stopped, failed = lines
    # trial 41's curve is broken at its NaN: the lone first report draws no line, as in
    # ax.plot, and the rest is one segment
    segments = [s.tolist() for s in complete.get_segments()]
    assert len(segments) == 41 and segments[-1] == [[3, 0.6], [4, 0.7]]
    colors = complete.get_colors()
    assert len(colors) == 41 and tuple(colors[0]) != tuple(colors[39])  # colour: objective
    assert len(stopped.get_segments()) == 10 and stopped.get_linestyle()[0][1] is not None
    assert len(failed.get_segments()) == 1  # trial 53's one report draws a cross alone
    crosses = [c for c in ax.collections if not isinstance(c, LineCollection)]
    assert [len(c.get_offsets()) for c in crosses] == [10, 2]
    assert sorted(map(tuple, crosses[1].get_offsets().tolist())) == [(1, 0.4), (3, 0.3)]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([4.0, 8.0, 12.0])  # trial 40
    assert ax.get_legend()._loc != 0  # 0 is "best"
    assert ax.get_ylim()[0] <= 0.05 and ax.get_ylim()[1] >= 12.0  # scaled to the curves


def test_history_marks_failed_trials_as_a_rug(tmp_path: Path, monkeypatch) -> None:
    """Failed trials are ticks along the bottom, one artist, not a line across the plot
    each (hundreds of them covered it in red), and the legend has a fixed place."""
    from spiketune.report._figures import plot_history

    records = [_record(n, {}, 0.01 * n) for n in range(30)]
    records += [_record(n, {}, None, Outcome.FAILED) for n in range(30, 230)]
    ax = _drawn(monkeypatch, plot_history, _results(records), tmp_path / "h.png")
    rug = [line for line in ax.lines if line.get_label() == "failed"]
    assert len(rug) == 1 and list(rug[0].get_xdata()) == list(range(30, 230))
    assert rug[0].get_marker() == "|" and rug[0].get_linestyle() == "None"
    assert len(ax.lines) == 2  # the rug and the best so far
    assert ax.get_ylim()[0] > -0.1  # the rug, in axes coordinates, does not stretch the axis
    assert ax.get_legend()._loc != 0


# ------------------------------------------------------------------------------ odd experiments
def test_report_of_an_experiment_where_every_trial_failed(tmp_path: Path) -> None:
    def trial(p: dict[str, Any]) -> float:
        raise RuntimeError(f"no luck with {p['tag']}")

    exp = Experiment(trial=trial, name="failing", max_trials=2, experiment_dir=tmp_path,
                     search_space={"tag": {"_type": "choice", "_value": ["<b>bold</b>"]}})
    exp.run()
    files = build_report(exp.directory)
    assert files.exploration_png is None and files.confusion_matrix is None
    assert files.importance is None and files.intermediate is None
    assert files.history is not None and files.history.is_file()
    text = files.index.read_text(encoding="utf-8")
    assert "No trial has completed" in text
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert text.count("<tr class='FAILED'>") == 2


def test_report_of_a_plain_number_experiment(tmp_path: Path) -> None:
    def trial(p: dict[str, Any]) -> float:
        return -((p["x"] - 1.0) ** 2)

    exp = Experiment(trial=trial, name="quadratic", max_trials=3, experiment_dir=tmp_path,
                     tuner="Random", seed=2, optimize_mode="maximize",
                     search_space={"x": {"_type": "uniform", "_value": [-2, 2]}})
    results = exp.run()
    files = build_report(exp.directory, out_dir=tmp_path / "out")
    assert files.exploration_png is not None and files.confusion_matrix is None
    assert files.intermediate is None  # no intermediate reports
    text = files.index.read_text(encoding="utf-8")
    assert fmt(results.best.value) in text
    assert "No model was kept" in text
    assert "<h2>Exports</h2>" not in text  # no export was checked
    # Rebuilt in its own directory, it replaces its own page; a page of the user's own is
    # refused before anything is written there.
    assert build_report(exp.directory, out_dir=tmp_path / "out").index == files.index
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<html><title>my notes</title></html>")
    with pytest.raises(ConfigError, match="not a spiketune report"):
        build_report(exp.directory, out_dir=mine)
    assert sorted(p.name for p in mine.iterdir()) == ["index.html"]
    assert "my notes" in (mine / "index.html").read_text()
    # Without a page, files of the user's own under a report's names are not replaced either;
    # files of other names are left as they are, beside the report.
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "history.png").write_text("my plot")
    (figures / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds history\.png but no report page"):
        build_report(exp.directory, out_dir=figures)
    assert (figures / "history.png").read_text() == "my plot"
    (figures / "history.png").unlink()
    built = build_report(exp.directory, out_dir=figures)
    assert (figures / "notes.txt").read_text() == "mine" and built.history is not None
    # A rebuild drops its own figures that no longer apply (here, a front of another run).
    (figures / "pareto_front.png").write_bytes(b"an earlier report's front")
    assert build_report(exp.directory, out_dir=figures).pareto is None
    assert not (figures / "pareto_front.png").exists() and (figures / "notes.txt").exists()
    with pytest.raises(ConfigError, match=r"out_dir.*not a file"):  # not pathlib's error
        build_report(exp.directory, out_dir=figures / "notes.txt")
    ex = exploration(load_results(exp.directory))
    assert [a.name for a in ex.axes] == ["x", "default"]
    assert all(math.isfinite(p) for a in ex.axes for p in a.positions)


def _dollars(p: dict[str, Any]) -> dict[str, float]:
    import spiketune.trial as st

    st.report_intermediate_result({"default": p["w$_^$"], "c$_^$": 1.0})
    return {"default": p["w$_^$"], "c$_^$": 2.0 * p["w$_^$"]}


def test_names_with_dollars_are_drawn_as_text(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """'$_^$' in a parameter name or a metric key is text, not maths matplotlib cannot
    parse; and a build cut short leaves files the next build knows for its own."""
    from spiketune.report import _build

    space = {"w$_^$": {"_type": "uniform", "_value": [0, 1]},
             "k": {"_type": "choice", "_value": ["$a$", "b$"]}}
    exp = Experiment(trial=_dollars, name="dollar", max_trials=4, experiment_dir=tmp_path,
                     tuner="Random", seed=1, search_space=space,
                     objectives=[{"key": "default", "direction": "maximize"},
                                 {"key": "c$_^$", "direction": "minimize"}])
    exp.run()
    out = tmp_path / "out"

    def cut(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_build, "plot_history", cut)
    with pytest.raises(KeyboardInterrupt):
        build_report(exp.directory, out_dir=out)
    assert not (out / "index.html").exists() and (out / "plotly.min.js").exists()
    monkeypatch.undo()
    files = build_report(exp.directory, out_dir=out)  # not refused as someone else's files
    for png in (files.exploration_png, files.history, files.pareto, files.intermediate):
        assert png is not None and png.stat().st_size > 1000


def test_predictions_with_unnamed_classes_draw(tmp_path: Path) -> None:
    matrix = plot_confusion_matrix(Predictions([0, 1, 2, 2], [0, 2, 2, 2]), tmp_path / "cm.png")
    assert matrix.sum() == 4 and matrix.trace() == 3
    assert _png_size(tmp_path / "cm.png")[0] >= 400


# ------------------------------------------------------------------------------ checked exports
def _quadratic_experiment(tmp_path: Path) -> Path:
    def trial(p: dict[str, Any]) -> float:
        return -((p["x"] - 1.0) ** 2)

    exp = Experiment(trial=trial, name="exported", max_trials=2, experiment_dir=tmp_path,
                     tuner="Random", seed=2, optimize_mode="maximize",
                     search_space={"x": {"_type": "uniform", "_value": [-2, 2]}})
    exp.run()
    assert exp.directory is not None
    return exp.directory


def test_report_shows_the_checked_exports(tmp_path: Path) -> None:
    from spiketune.nir import ExportCheck
    from spiketune.nir._export import record_export_check

    directory = _quadratic_experiment(tmp_path)
    written = directory / "best_model" / "best_model.nir"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_bytes(b"graph")
    data = tmp_path / "test.pt"
    record_export_check(directory, ExportCheck("generic", 0.9123, 0.9123, 1.0, 320, "none"),
                        written, data)
    record_export_check(
        directory,
        ExportCheck("rockpool", 0.9123, 0.8765, 0.9512, 320, "<synapse> & reset"),
        tmp_path / "gone.nir", data,
    )
    text = build_report(directory, out_dir=tmp_path / "out").index.read_text(encoding="utf-8")
    section = text.split("<h2>Exports</h2>", 1)
    assert len(section) == 2, "no Exports section"
    table = section[1].split("</table>", 1)[0]
    assert "run as its importer runs it" in section[1].split("<table", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], flags=re.S)
    assert len(rows) == 2
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[1])]
    assert cells[:7] == ["rockpool", "&lt;synapse&gt; &amp; reset", "320", "91.23%", "87.65%",
                         "95.12%", "gone.nir (missing)"]
    assert "<synapse>" not in text
    first = re.findall(r"<td[^>]*>(.*?)</td>", rows[0])
    assert first[0] == "generic" and first[3] == first[4] == "91.23%" and first[5] == "100.00%"
    link = re.search(r"<a href='([^']*)'[^>]*>best_model\.nir</a>", rows[0])
    assert link is not None
    assert (tmp_path / "out" / unquote(link.group(1))).resolve() == written.resolve()


@pytest.mark.parametrize("text", ["[{not json", '{"records": []}'])
def test_corrupt_exports_file_is_a_note_on_the_page(tmp_path: Path, text: str) -> None:
    directory = _quadratic_experiment(tmp_path)
    exports = directory / "best_model" / "exports.json"
    exports.parent.mkdir(parents=True, exist_ok=True)
    exports.write_text(text, encoding="utf-8")
    files = build_report(directory, out_dir=tmp_path / "out")
    page = files.index.read_text(encoding="utf-8")
    note = re.search(r"<p class='note'>The checked exports could not be shown: [^<]*", page)
    assert note is not None and "exports.json are corrupt" in note.group(0)
    assert "<h2>Exports</h2>" not in page
    assert "<h2>Best trial</h2>" in page and files.history is not None
    assert exports.read_text(encoding="utf-8") == text  # the report only reads

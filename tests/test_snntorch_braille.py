"""The ``snntorch-braille`` template: its files and ``spiketune init``, a trial code that is
snnTorch, torch and ``import nni`` alone (it trains where spiketune cannot be imported), and
the smoke experiment through spiketune's API down to the report's confusion matrix."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from spiketune import Experiment, Outcome, SpiketuneError, load_best_model, load_config
from spiketune._init import TEMPLATES, template_files

TEMPLATE = "snntorch-braille"
TRIAL_FILES = ("main_hpo.py", "setup_hpo.py", "train_hpo.py")
#: The NNI search space of the NIR paper's Braille experiments, as published.
PUBLISHED_SPACE = {
    "nb_hidden": {"_type": "quniform", "_value": [30, 63, 1]},
    "alpha_r": {"_type": "quniform", "_value": [0, 1, 0.05]},
    "alpha_out": {"_type": "quniform", "_value": [0, 1, 0.05]},
    "beta_r": {"_type": "quniform", "_value": [0, 1, 0.05]},
    "beta_out": {"_type": "quniform", "_value": [0, 1, 0.05]},
    "lr": {"_type": "choice",
           "_value": [0.0001, 0.00015, 0.0005, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.1]},
    "reg_l1": {"_type": "quniform", "_value": [0, 0.001, 0.0001]},
    "reg_l2": {"_type": "quniform", "_value": [0, 1e-05, 1e-06]},
    "slope": {"_type": "quniform", "_value": [5, 20, 5]},
}
FINAL_KEYS = {"default", "test", "train", "epoch", "spikes_per_sample", "epochs_run",
              "split_digest"}
EPOCH_KEYS = {"default", "train_acc", "train_loss", "val_loss", "spikes_per_sample"}
PER_CLASS = 10


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the template written by ``spiketune init``."""
    from typer.testing import CliRunner

    from spiketune.cli import app

    target = tmp_path / "project"
    result = CliRunner().invoke(app, ["init", str(target), "--template", TEMPLATE])
    assert result.exit_code == 0, result.output
    return target


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A tiny pool file in the real one's form: 10 samples per class, [70, 256, 12] 0/1 spikes."""
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(7).repeat_interleave(PER_CLASS)
    inputs = (torch.rand(len(labels), 256, 12, generator=generator) < 0.05).float()
    inputs[:, :, 0] += (labels[:, None] * 0.1 > torch.rand(len(labels), 256)).float()
    path = tmp_path / "data" / "braille_reduced_th1_pool.pt"
    path.parent.mkdir()
    torch.save(TensorDataset(inputs.clamp(max=1), labels), path)
    return path


def _load(name: str, directory: Path) -> ModuleType:
    """``<directory>/<name>.py`` as a module of its own (the project is not a package)."""
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"snntorch_braille_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ files
def test_init_writes_a_runnable_copy(project: Path, exp_root: Path, pool: Path) -> None:
    assert TEMPLATES[TEMPLATE] == "snntorch_braille"
    files = template_files(TEMPLATE)
    assert set(files) == {"main.py", "main_hpo.py", "setup_hpo.py", "train_hpo.py",
                          "config.toml", "search_space.json", "README.md"}
    for name, content in files.items():
        assert (project / name).read_bytes() == content, name

    config = load_config(project / "config.toml")
    assert config.search_space == PUBLISHED_SPACE
    assert json.loads((project / "search_space.json").read_text()) == PUBLISHED_SPACE
    assert (config.tuner, config.optimize_mode, config.concurrency) == ("TPE", "maximize", 2)
    assert config.trial_command == "python3 main_hpo.py"
    assert config.trial_code_directory == project.resolve()

    # The copy's launcher runs its own config.toml; --smoke only shrinks it.
    launcher = _load("main", project)
    assert launcher.experiment(launcher.parse_args([])).config == Experiment(config).config
    smoke = launcher.experiment(launcher.parse_args(["--smoke", "--data", str(pool)])).config
    assert smoke.max_trials == 2 and smoke.search_space == PUBLISHED_SPACE
    assert smoke.trial_command == (
        f"python3 main_hpo.py --epochs 1 --subset 10 --data {pool.resolve()}"
    )
    # the launchers' shared options: --start-with tries known parameter sets first
    start = project / "start.json"
    start.write_text(json.dumps({"nb_hidden": 40, "lr": 0.002}))
    started = launcher.experiment(launcher.parse_args(["--start-with", str(start)])).config
    assert started.start_with == [{"nb_hidden": 40, "lr": 0.002}]


def test_launcher_reads_the_data_before_the_search(project: Path, exp_root: Path,
                                                   pool: Path) -> None:
    """A wrong --data or a --subset too small to split stops the run with its reason before
    any experiment is made, not as every trial's failure."""
    from spiketune import DataError

    launcher = _load("main", project)
    for argv, words in ((["--data", str(project / "missing.pt")], "no Braille pool file"),
                        (["--data", str(pool), "--subset", "1"], "--subset 1: too few")):
        with pytest.raises(DataError, match=words):
            launcher.run(["--smoke", *argv])
    assert not any(exp_root.iterdir())


def test_launcher_says_when_snntorch_is_missing(project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Without snnTorch every trial would fail on its import: the launcher says so first."""
    launcher = _load("main", project)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "snntorch" else find_spec(name, *a))
    with pytest.raises(SpiketuneError, match=r"pip install 'spiketune\[snntorch\]'"):
        launcher.experiment(launcher.parse_args([]))


def test_trial_code_is_snntorch_torch_and_nni(project: Path) -> None:
    """The three trial files import the standard library, torch, snnTorch, nni and each
    other; spiketune only inside a function or a ``try`` that catches ImportError."""
    allowed = set(sys.stdlib_module_names) | {"torch", "snntorch", "nni", "setup_hpo",
                                               "train_hpo", "__future__"}

    def guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return True
            if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                                "ModuleNotFoundError")
                for h in node.handlers
            ):
                return True
        return False

    spiketune_imports = 0
    for name in TRIAL_FILES:
        tree = ast.parse((project / name).read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "spiketune":
                    spiketune_imports += 1
                    assert guarded(node, parents), f"{name}:{node.lineno} imports {module}"
                else:
                    assert top in allowed, f"{name}:{node.lineno} imports {module}"
    assert spiketune_imports == 3  # the nni fallback, the split, the hand-over


def test_parameters_are_checked_before_the_network_is_built(project: Path,
                                                           tmp_path: Path) -> None:
    """Unknown keys and values out of range used to train silently (batch_size, beta_r 5) or
    fail deep in torch (nb_hidden -5, lr "fast"): every problem is listed at once."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nb_hidden": -5, "lr": "fast", "beta_r": 5.0, "batch_size": 0,
                               "slope": True}))
    run = subprocess.run([sys.executable, "main_hpo.py", "--params", str(bad), "--epochs", "1",
                          "--data", str(tmp_path / "never-read.pt")],
                         cwd=project, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines() == [
        "error: invalid parameters:",
        "  - batch_size: unknown parameter (known: alpha_out, alpha_r, beta_out, beta_r, "
        "epochs, lr, nb_hidden, reg_l1, reg_l2, seed, slope)",
        "  - nb_hidden: a whole number >= 1 (got -5)", "  - lr: a number > 0 (got 'fast')",
        "  - slope: a number > 0 (got True)", "  - beta_r: a decay in [0, 1] (got 5.0)",
    ]


def test_trial_options_are_checked_before_the_training(project: Path, tmp_path: Path) -> None:
    """--threads 0 or an --out inside a file are usage errors (exit code 2) at once, not a
    silent 1 thread or a traceback once the model is saved."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for argv, words in ((["--threads", "0"], "must be at least 1"),
                        (["--out", str(a_file / "sub")], "is a file")):
        run = subprocess.run([sys.executable, "main_hpo.py", *argv], cwd=project,
                             capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 2 and words in run.stderr, run.stderr


def test_seed_option_replaces_the_parameters_seed(project: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``--seed K`` (a retraining seed) wins over the parameters' seed, from --params or the
    defaults; a negative one is a usage error."""
    for name in ("NNI_PLATFORM", "NNI_TRIAL_JOB_ID", "SPIKETUNE_TRIAL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(project))  # main_hpo imports its neighbours
    neighbours = ("setup_hpo", "train_hpo")  # other templates have their own
    before = {name: sys.modules.pop(name) for name in neighbours if name in sys.modules}
    try:
        main_hpo = _load("main_hpo", project)
    finally:
        for name in neighbours:
            sys.modules.pop(name, None)
        sys.modules.update(before)
    given = tmp_path / "p.json"
    given.write_text(json.dumps({"seed": 7, "lr": 0.002}))

    def seed_and_lr(*argv: str) -> tuple[int, float]:
        params = main_hpo.trial_parameters(main_hpo.parse_args(list(argv)))
        return params["seed"], params["lr"]

    assert seed_and_lr("--params", str(given), "--seed", "2") == (2, 0.002)
    assert seed_and_lr("--params", str(given)) == (7, 0.002)
    assert seed_and_lr("--seed", "0") == (0, main_hpo.DEFAULT_PARAMS["lr"])
    with pytest.raises(SystemExit) as usage:
        main_hpo.parse_args(["--seed", "-1"])
    assert usage.value.code == 2


def test_network_and_loss(project: Path) -> None:
    """snnTorch layers as published; the readout integrates without reset; the regularisers
    count hidden spikes; gradients reach the recurrent weights."""
    import snntorch as snn
    import torch

    train_hpo = _load("train_hpo", project)
    params = {"nb_hidden": 30.0, "alpha_r": 0.5, "beta_r": 0.9, "alpha_out": 0.5,
              "beta_out": 0.9, "slope": 10.0, "reg_l1": 0.0, "reg_l2": 0.0}
    torch.manual_seed(0)
    net = train_hpo.BrailleRSNN(12, params)
    assert isinstance(net.lif1, snn.RSynaptic) and isinstance(net.lif2, snn.Synaptic)
    assert net.lif2.reset_mechanism == "none" and net.fc1.out_features == 30
    x = (torch.rand(20, 3, 12) < 0.3).float()
    mem, spk = net(x)
    assert mem.shape == (20, 3, 7) and spk.shape == (20, 3, 30)
    assert set(spk.unique().tolist()) <= {0.0, 1.0}
    labels = torch.tensor([0, 3, 6])
    with torch.no_grad():
        plain = float(train_hpo.loss_fn(mem, spk, labels, params))
        assert plain == pytest.approx(float(torch.nn.functional.cross_entropy(
            mem.max(0).values, labels)))
        counts = spk.sum(0)
        expected = plain + 1e-3 * float(counts.mean()) + 1e-5 * float((counts.sum(1) ** 2).mean())
    regularised = train_hpo.loss_fn(mem, spk, labels, {**params, "reg_l1": 1e-3, "reg_l2": 1e-5})
    assert float(regularised.detach()) == pytest.approx(expected)
    regularised.backward()
    assert net.lif1.recurrent.weight.grad is not None
    assert float(net.lif1.recurrent.weight.grad.abs().sum()) > 0


def test_local_split_is_stratified(project: Path) -> None:
    import torch

    setup_hpo = _load("setup_hpo", project)
    labels = torch.arange(7).repeat_interleave(torch.tensor([147, 152, 148, 158, 148, 151, 140]))
    train, val, test = setup_hpo.local_split(labels, (0.8, 0.1, 0.1), 0)
    everything = torch.cat([train, val, test]).sort().values
    assert torch.equal(everything, torch.arange(len(labels)))  # disjoint, complete
    for c in range(7):
        n = int((labels == c).sum())
        assert int((labels[test] == c).sum()) == int((labels[val] == c).sum()) == round(n / 10)
    again = setup_hpo.local_split(labels, (0.8, 0.1, 0.1), 0)
    assert all(torch.equal(a, b) for a, b in zip(again, (train, val, test), strict=True))


def test_pool_reads_on_torch_without_safe_globals(
    project: Path, pool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.4 (inside the declared range) has ``add_safe_globals`` but not the
    ``safe_globals`` context manager: the template reads its pool there too."""
    import torch

    setup_hpo = _load("setup_hpo", project)
    monkeypatch.delattr(torch.serialization, "safe_globals")
    allowed = torch.serialization.get_safe_globals()
    try:
        inputs, labels = setup_hpo.load_pool(pool)
    finally:  # the process-wide list as it was
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(allowed)
    assert inputs.shape == (7 * PER_CLASS, 256, 12) and labels.tolist()[:PER_CLASS] == [0] * 10


# ------------------------------------------------------------------------------ runs
def _hand_runs(project: Path, pool: Path, runs: dict[Path, list[str]]) -> dict[Path, str]:
    """The trial run by hand, one epoch, once per ``out: extra PYTHONPATH`` of ``runs`` (side
    by side, one thread each, outside any experiment); each one's stdout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPIKETUNE_", "NNI_", "PYTHONPATH"))}
    started = {
        out: subprocess.Popen(
            [sys.executable, "main_hpo.py", "--data", str(pool), "--epochs", "1",
             "--subset", "5", "--threads", "1", "--out", str(out)],
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**env, "PYTHONPATH": os.pathsep.join(extra_path), "OMP_NUM_THREADS": "1"},
        )
        for out, extra_path in runs.items()
    }
    stdouts = {}
    for out, proc in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert (out / "best_model.pt").is_file() and (out / "result.json").is_file()
        stdouts[out] = stdout
    return stdouts


@pytest.mark.slow
def test_trial_trains_where_spiketune_cannot_be_imported(
    project: Path, pool: Path, tmp_path: Path
) -> None:
    """``spiketune`` and ``nni`` shadowed by modules that raise ImportError: the trial still
    trains an epoch, prints its reports through its stub and saves its model; its split is
    the local one. With spiketune back it gets the project's split."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for name in ("spiketune", "nni"):
        (hidden / f"{name}.py").write_text(f'raise ImportError("{name} is hidden here")\n')
    probe = subprocess.run([sys.executable, "-c", "import spiketune"], cwd=project,
                           env={**os.environ, "PYTHONPATH": str(hidden)}, capture_output=True)
    assert probe.returncode != 0 and b"is hidden here" in probe.stderr

    # beside it, a run with spiketune importable and NNI still hidden: spiketune's nni
    # stand-in, the project's split
    only_nni = tmp_path / "only_nni"
    only_nni.mkdir()
    (only_nni / "nni.py").write_bytes((hidden / "nni.py").read_bytes())
    stdouts = _hand_runs(project, pool, {tmp_path / "alone": [str(hidden)],
                                         tmp_path / "with": [str(only_nni)]})
    stdout, with_spiketune = stdouts[tmp_path / "alone"], stdouts[tmp_path / "with"]
    assert "intermediate result: {'default'" in stdout
    final = stdout.rsplit("final result: ", 1)[1]
    assert "'split_digest': 'local:" in final and "'test':" in final
    written = json.loads((tmp_path / "alone" / "result.json").read_text(encoding="utf-8"))
    assert written["split_digest"].startswith("local:") and written["parameters"]["seed"] == 0

    import torch

    saved = torch.load(tmp_path / "alone" / "best_model.pt", weights_only=True)
    assert saved["parameters"]["nb_hidden"] == 43 and saved["metrics"]["epoch"] == 1
    train_hpo = _load("train_hpo", project)
    net = train_hpo.load_model(tmp_path / "alone" / "best_model.pt")
    assert net.lif1.recurrent.weight.shape == (43, 43)

    assert "[spiketune] final result" in with_spiketune
    from spiketune.data import stratified_split

    setup_hpo = _load("setup_hpo", project)
    labels = torch.arange(7).repeat_interleave(PER_CLASS)  # the pool fixture's
    kept = setup_hpo.first_per_class(labels, 5, 0)
    digest = stratified_split(labels[kept], (0.8, 0.1, 0.1), seed=0).digest()
    assert f'"split_digest": "{digest}"' in with_spiketune


@pytest.mark.slow
def test_smoke_experiment_keeps_the_model_and_reports_its_confusion_matrix(
    project: Path, pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``main.py --smoke --retrain-seeds 0 1 2``, the data given by
    $SPIKETUNE_BRAILLE_TH1_DATA: 2 subprocess trials of 1 epoch complete, each with its
    result.json; the best one's model is kept with its test predictions, and the report draws
    them as the confusion matrix; the chosen configuration is retrained with 3 seeds on the
    trials' split, each seed a network of its own, their mean ± std printed beside the
    optimistic best test accuracy."""
    import torch

    from spiketune.engine import load_retrained
    from spiketune.report import build_report, plot_confusion_matrix

    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
    monkeypatch.setenv("SPIKETUNE_BRAILLE_TH1_DATA", str(pool.parent))
    launcher = _load("main", project)
    results = launcher.run(["--smoke", "--retrain-seeds", "0", "1", "2", "--experiment-dir",
                            str(tmp_path / "exp"), "--no-report", "-q"])
    printed = capsys.readouterr().out

    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert set(rec.metrics) >= FINAL_KEYS and rec.metrics["epoch"] == 1
        assert len(rec.intermediate) == 1 and set(rec.intermediate[0]) >= EPOCH_KEYS
        assert rec.metrics["default"] == rec.intermediate[0]["default"]
        assert (rec.trial_dir / "best_model.pt").is_file()
        assert isinstance(rec.parameters["nb_hidden"], float)  # quniform: cast in the trial
        written = json.loads((rec.trial_dir / "result.json").read_text(encoding="utf-8"))
        assert {k: written[k] for k in FINAL_KEYS} == {k: rec.metrics[k] for k in FINAL_KEYS}
        assert written["parameters"]["seed"] == 0  # the default seed; the tuner draws none

    best = load_best_model(results.directory)
    assert best is not None and best.predictions is not None
    winner = max(results.records,
                 key=lambda r: (r.metrics["default"], -r.metrics["spikes_per_sample"]))
    assert best.score == (winner.metrics["default"], -winner.metrics["spikes_per_sample"])
    predictions = best.predictions
    assert predictions.class_names == ["Space", "A", "E", "I", "O", "U", "Y"]
    assert predictions.accuracy == pytest.approx(winner.metrics["test"])

    # The kept file rebuilds the network that made those predictions, on the same test part.
    setup_hpo, train_hpo = _load("setup_hpo", project), _load("train_hpo", project)
    data = setup_hpo.load_data(pool, per_class=PER_CLASS)
    assert data.split_source == "spiketune"
    assert data.split_digest == winner.metrics["split_digest"]
    assert predictions.labels == data.test.tensors[1].tolist()
    net = train_hpo.load_model(best.path())
    evaluation = train_hpo.evaluate(net, data.test, best.parameters, torch.device("cpu"))
    assert evaluation.predictions.tolist() == predictions.predictions

    files = build_report(results.directory)
    assert files.confusion_matrix is not None and files.confusion_matrix.stat().st_size > 0
    matrix = plot_confusion_matrix(predictions, tmp_path / "confusion.png")
    assert matrix.sum() == len(data.test) == 7 and matrix.trace() == predictions.n_correct

    # The kept model's configuration retrained with seeds 0, 1, 2 on the trials' split.
    retrained = load_retrained(results.directory)
    assert retrained is not None and retrained.trial == int(str(best.trial_id))
    assert retrained.parameters == winner.parameters
    assert [r.seed for r in retrained.runs] == [0, 1, 2]
    assert retrained.split_digest == data.split_digest and not retrained.off_split
    assert [r.split_digest for r in retrained.runs] == [data.split_digest] * 3
    weights = []
    for run in retrained.runs:
        seed_dir = results.directory / "chosen" / f"seed{run.seed}"
        assert json.loads((seed_dir / "result.json").read_text())["test"] == run.metrics["test"]
        saved = torch.load(seed_dir / "best_model.pt", weights_only=True)
        assert saved["parameters"]["seed"] == run.seed  # --seed replaced the parameters'
        weights.append(saved["state_dict"]["fc1.weight"])
    # each seed draws its own network
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    assert retrained.mean is not None and retrained.std is not None
    assert (f"chosen model's test accuracy: {100 * retrained.mean:.2f}% ± "
            f"{100 * retrained.std:.2f}% (mean ± std over seeds 0, 1, 2") in printed
    assert "(optimistic: chosen by looking at the test set" in printed

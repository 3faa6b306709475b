"""The ``nni`` shim: NNI's trial API, ``merge_parameter`` semantics, ``import nni`` trials."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from spiketune.compat.nni.utils import merge_parameter


def test_merge_parameter_dict_in_place() -> None:
    base = {"lr": 0.1, "layers": 2, "name": None}
    out = merge_parameter(base, {"lr": 0.5, "layers": 3, "name": "lif"})
    assert out is base
    assert base == {"lr": 0.5, "layers": 3, "name": "lif"}


def test_merge_parameter_namespace_and_int_to_float() -> None:
    ns = argparse.Namespace(lr=0.1, epochs=5)
    merge_parameter(ns, {"lr": 1})
    assert ns.lr == 1.0 and isinstance(ns.lr, float)


def test_merge_parameter_none_changes_nothing() -> None:
    base = {"a": 1}
    assert merge_parameter(base, None) == {"a": 1}


def test_merge_parameter_rules() -> None:
    with pytest.raises(ValueError, match="Key 'b' not found"):
        merge_parameter({"a": 1}, {"b": 2})
    with pytest.raises(ValueError, match=r"'a'.*int.*str"):  # as NNI 2
        merge_parameter({"a": 1}, {"a": "x"})
    with pytest.raises(TypeError):  # as NNI 1
        merge_parameter({"a": 1}, {"a": 1.5})  # a float does not replace an int
    with pytest.raises(ValueError):
        merge_parameter(argparse.Namespace(a=1), {"b": 2})


def test_shim_exposes_nni_names() -> None:
    import spiketune.compat.nni as nni

    for name in ("get_next_parameter", "get_next_parameters", "get_current_parameter",
                 "report_intermediate_result", "report_final_result", "get_experiment_id",
                 "get_trial_id", "get_sequence_id"):
        assert callable(getattr(nni, name))
    assert nni.utils.merge_parameter is merge_parameter


def test_trace_dump_and_load_run_as_nni_scripts_use_them(tmp_path: Path) -> None:
    """``@nni.trace`` and ``nni.trace(cls)(...)`` give the object itself; ``dump``/``load``
    write and read plain data as JSON; what only NNI serialises is refused, saying so."""
    import spiketune.compat.nni as nni

    @nni.trace
    class Net:
        def __init__(self, width: int) -> None:
            self.width = width

    assert isinstance(Net(3), Net) and nni.trace(dict)(a=1) == {"a": 1}
    data = {"lr": 0.1, "layers": [1, 2]}
    assert nni.load(nni.dump(data)) == data
    path = tmp_path / "p.json"
    with path.open("w") as f:
        nni.dump(data, f)
    with path.open() as f:
        assert nni.load(fp=f) == data
    with pytest.raises(TypeError, match="plain JSON data"):
        nni.dump(Net(3))


@pytest.mark.slow
def test_import_nni_trial_runs_unchanged(exp_root: Path, trial_script) -> None:
    """A trial doing ``import nni`` (and ``nni.utils``) under spiketune: results recorded."""
    from spiketune import Experiment, Outcome

    code = trial_script(
        """
        import argparse
        import os
        import nni
        from nni.utils import merge_parameter

        args = merge_parameter(argparse.Namespace(x=0.0, tag="none"), nni.get_next_parameter())
        for step in range(3):
            nni.report_intermediate_result(args.x * step)
        nni.report_final_result({
            "default": -(args.x - 1) ** 2,
            "trial_id": nni.get_trial_id(),
            "experiment_id": nni.get_experiment_id(),
            "sequence_id": nni.get_sequence_id(),
            "nni_file": nni.__file__,
            "output_dir": os.environ["NNI_OUTPUT_DIR"],
        })
        """
    )
    exp = Experiment(
        trial_command="python trial.py",
        trial_code_directory=code,
        search_space={"x": {"_type": "uniform", "_value": [-2, 2]},
                      "tag": {"_type": "choice", "_value": ["a", "b"]}},
        max_trials=2,
        concurrency=2,
        experiment_dir=exp_root,
        seed=0,
    )
    results = exp.run()
    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome == Outcome.COMPLETE, rec.reason
        m = rec.metrics
        assert m["trial_id"] == str(rec.number)
        assert m["experiment_id"] == exp.id
        assert m["sequence_id"] == rec.sequence_id
        assert Path(m["nni_file"]).parent.name == "nni"
        assert "spiketune" in m["nni_file"]  # the shim, never a real NNI install
        assert m["output_dir"] == str(rec.trial_dir)
        assert m["default"] == pytest.approx(-(rec.parameters["x"] - 1) ** 2)
        assert [i["default"] for i in rec.intermediate] == pytest.approx(
            [rec.parameters["x"] * s for s in range(3)])

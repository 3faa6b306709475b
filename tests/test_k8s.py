"""`spiketune submit --k8s`: the manifest (a ConfigMap and a batch/v1 Job) validated against
Kubernetes' schema by kubernetes-validate, the password never in it, the config the pods read,
and `--apply` with and without kubectl."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from spiketune.cli import app
from spiketune.engine.config import load_config
from spiketune.engine.launch import KubernetesLauncher, submit
from spiketune.engine.storage import PASSWORD_ENV, PASSWORD_FILE_ENV
from spiketune.errors import ConfigError, LaunchError, StorageError

URL = "postgresql://hpo@db.example:5432/hpo"
PASSWORD = "Sesame-Open-42"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    cfg = tmp_path / "search.toml"
    cfg.write_text(
        'name = "Braille_LIF"\n'
        'trial_command = "python3 main_hpo.py"\n'
        f'trial_code_directory = "{code}"\n'
        "max_trials = 40\n"
        'max_duration = "2h"\n'
        'tuner = "TPE"\n'
        "max_retries = 1\n"
        "[search_space]\n"
        'lr = {_type = "loguniform", _value = [1e-4, 1e-1]}\n'
    )
    return cfg


def _manifest(path: Path) -> tuple[dict, dict]:
    config_map, job = yaml.safe_load_all(path.read_text())
    return config_map, job


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.latest_version()])
def test_manifest_passes_the_kubernetes_schema(config: Path, tmp_path: Path,
                                               version: str) -> None:
    out = tmp_path / "job.yaml"
    launcher = KubernetesLauncher(image="registry.example/hpo:1.0", output=out,
                                  code_dir="/app", namespace="snn", cpu="2", memory="8Gi",
                                  gpus_per_worker=1, secret="hpo-db", secret_key="pw",
                                  backoff_limit=4)
    launched = submit(config, launcher, workers=4, storage=URL)
    assert launched.files == (out,)
    for document in _manifest(out):  # strict: an unknown field fails too
        kubernetes_validate.validate(document, version, strict=True)
    config_map, job = _manifest(out)
    assert job["metadata"] == {"name": "spiketune-braille-lif", "namespace": "snn",
                               "labels": job["spec"]["template"]["metadata"]["labels"]}
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (4, 4, 4)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    (container,) = pod["containers"]
    assert container["command"] == [
        "spiketune", "worker", "/etc/spiketune/config.yaml", "--storage", URL,
        "--experiment-dir", "/var/spiketune/experiments", "--quiet", "--gpus", "all"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": 1}}
    assert container["env"] == [{"name": PASSWORD_ENV, "valueFrom": {
        "secretKeyRef": {"name": "hpo-db", "key": "pw"}}}]
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} \
        in pod["volumes"]


def test_a_schema_violation_is_caught(config: Path, tmp_path: Path) -> None:
    """The validation has teeth: the same Job with a wrong type, or a misspelt field,
    fails it."""
    out = tmp_path / "job.yaml"
    submit(config, KubernetesLauncher(image="i:1", output=out, code_dir="/app"), workers=2,
           storage=URL)
    _, job = _manifest(out)
    kubernetes_validate.validate(job, "1.30", strict=True)
    job["spec"]["parallelism"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.30", strict=True)
    job["spec"]["parallelism"] = 2
    job["spec"]["paralelism"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.30", strict=True)


def test_the_password_never_reaches_the_manifest(config: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # known to this shell: still not written
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret_file))
    out = tmp_path / "job.yaml"
    runner = CliRunner()
    ok = runner.invoke(app, ["submit", str(config), "--k8s", "--workers", "3", "--image",
                             "i:1", "--code-dir", "/app", "--secret", "hpo-db", "--storage",
                             URL, "--output", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "kubectl apply -f" in ok.output
    assert PASSWORD not in out.read_text() and PASSWORD not in ok.output
    # a URL with a password: refused, nothing written, the password not repeated
    out.unlink()
    inline = f"postgresql://hpo:{PASSWORD}@db.example/hpo"
    refused = runner.invoke(app, ["submit", str(config), "--k8s", "--workers", "3", "--image",
                                  "i:1", "--code-dir", "/app", "--storage", inline,
                                  "--output", str(out)])
    assert refused.exit_code == 1
    assert "Secret" in refused.output and "--secret" in refused.output
    assert PASSWORD not in refused.output and not out.exists()
    # a password in the query is a password too
    with pytest.raises(ConfigError):
        submit(config, KubernetesLauncher(image="i:1", output=out, code_dir="/app"),
               workers=1, storage=f"postgresql://hpo@db/hpo?password={PASSWORD}")
    assert not out.exists()


def test_the_pods_read_the_same_experiment(config: Path, tmp_path: Path) -> None:
    """The ConfigMap's config.yaml, where the image has the trial code, is the same
    experiment as the config file (only worker fields differ), so the pods join it."""
    out = tmp_path / "job.yaml"
    image_code = tmp_path / "image-app"  # stands for /app in the image
    image_code.mkdir()
    submit(config, KubernetesLauncher(image="i:1", output=out, code_dir=str(image_code)),
           workers=2, storage=URL)
    config_map, _ = _manifest(out)
    pod_file = tmp_path / "pod" / "config.yaml"
    pod_file.parent.mkdir()
    pod_file.write_text(config_map["data"]["config.yaml"])
    in_pod = load_config(pod_file)
    original = load_config(config)
    assert in_pod.differences_from(original.to_dict()) == []
    assert in_pod.trial_code_directory == image_code and in_pod.storage is None
    assert in_pod.max_duration == 7200 and in_pod.name == "Braille_LIF"


def test_refusals(config: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "job.yaml"
    with pytest.raises(StorageError, match="PostgreSQL"):  # pods do not share a disk
        submit(config, KubernetesLauncher(image="i:1", output=out, code_dir="/app"),
               workers=2, storage=f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(ConfigError) as err:  # where is the trial code in the image?
        submit(config, KubernetesLauncher(image="i:1", output=out), workers=2, storage=URL)
    assert err.value.problems[0].field == "--code-dir"
    with pytest.raises(ConfigError) as err:
        KubernetesLauncher(image="i:1", output=out, cpu="two", memory="8 GB", name="Not_OK")
    assert {p.field for p in err.value.problems} == {"--cpu", "--memory", "--name"}
    assert not out.exists()
    runner = CliRunner()
    no_image = runner.invoke(app, ["submit", str(config), "--k8s", "--workers", "2"])
    assert no_image.exit_code == 2 and "--image" in no_image.output
    bad_cpu = runner.invoke(app, ["submit", str(config), "--k8s", "--workers", "2", "--image",
                                  "i:1", "--cpu", "lots", "--output", str(out)])
    assert bad_cpu.exit_code == 2 and "--cpu" in bad_cpu.output


def test_the_manifest_replaces_only_a_manifest_of_its_own(config: Path, tmp_path: Path) -> None:
    """``-o`` naming the config being submitted, or a user's file, is refused and the file
    kept; writing the same submission again replaces its own manifest."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    before = config.read_text()
    for taken in (config, notes):
        kept = taken.read_text()
        with pytest.raises(LaunchError, match="not a manifest spiketune wrote"):
            submit(config, KubernetesLauncher(image="i:1", output=taken, code_dir="/app"),
                   workers=2, storage=URL)
        assert taken.read_text() == kept
    assert config.read_text() == before
    out = tmp_path / "job.yaml"
    for _ in range(2):
        launched = submit(config, KubernetesLauncher(image="i:1", output=out, code_dir="/app"),
                          workers=2, storage=URL)
        assert launched.files == (out,)
    result = CliRunner().invoke(app, ["submit", str(config), "--k8s", "--workers", "2",
                                      "--image", "i:1", "--code-dir", "/app", "--storage", URL,
                                      "-o", str(config)])
    assert result.exit_code == 1 and "error: --output" in result.output
    assert config.read_text() == before


def test_apply_needs_kubectl_and_uses_it(config: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "job.yaml"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    args = ["submit", str(config), "--k8s", "--workers", "2", "--image", "i:1", "--code-dir",
            "/app", "--storage", URL, "--output", str(out), "--apply"]
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 1 and "kubectl" in missing.output and not out.exists()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" > {bin_dir}/args\necho "job.batch/x created"\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/bin:/usr/bin")
    applied = CliRunner().invoke(app, args)
    assert applied.exit_code == 0, applied.output
    assert (bin_dir / "args").read_text().split() == ["apply", "-f", str(out)]
    assert "job.batch/x created" in applied.output and out.exists()
    # applied now: each pod knows when, so that one starting after a stop does not resume
    command = _manifest(out)[1]["spec"]["template"]["spec"]["containers"][0]["command"]
    when = datetime.fromisoformat(command[command.index("--submitted") + 1])
    assert abs((datetime.now().astimezone() - when).total_seconds()) < 60  # with its offset


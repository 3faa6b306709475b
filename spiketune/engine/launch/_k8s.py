"""Workers as a Kubernetes Job: a manifest written to a file, or applied with ``kubectl``.

The manifest holds two documents:

* a **ConfigMap** ``<job>-config`` with the experiment's configuration (``config.yaml``: the
  canonical form of the config, search space inline, without the storage and with
  ``trial_code_directory`` set to ``code_dir``, the trial code's path in the image). It is
  mounted at ``/etc/spiketune``, so the image needs only spiketune and the trial code;
* a **batch/v1 Job** ``<job>`` of ``workers`` pods in parallel (``parallelism`` =
  ``completions`` = ``workers``), each running ``spiketune worker /etc/spiketune/config.yaml
  --storage URL --experiment-dir /var/spiketune/experiments``. Trial directories go to an
  ``emptyDir`` volume there (scratch: results live in the database). The first pod creates
  the experiment in the database, the others join it by the config's name.

The database password comes from a Secret (``secret``/``secret_key``) through the
container's environment (``SPIKETUNE_DB_PASSWORD`` from ``valueFrom.secretKeyRef``), never
from the manifest: a storage URL that holds a password is refused. Resources: ``cpu`` and
``memory`` are both requests and limits (a worker gets what it asked for, and is not
evicted first under pressure); ``gpus_per_worker`` is a ``nvidia.com/gpu`` limit, and the
worker then runs with ``gpus = "all"``: its trials share the GPUs the device plugin gives the
pod. ``restartPolicy: OnFailure``: a worker that crashes restarts in the same pod (its
trials' directories are still there, and the other workers settle its lost trials after the
grace period); ``backoffLimit`` caps the restarts of the whole Job. A Job that spiketune
applies itself (``--apply``) passes each worker ``--submitted`` with the time it was applied:
a pod that starts or restarts after ``spiketune stop`` then ends without resuming the
experiment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from spiketune.engine.launch._base import Launched, Launcher, WorkerSpec
from spiketune.engine.storage import PASSWORD_ENV
from spiketune.errors import ConfigError, LaunchError, Problem

__all__ = ["CONFIG_MOUNT", "KubernetesLauncher", "job_manifest"]

#: Where the ConfigMap is mounted in the pod, and the worker's experiments root.
CONFIG_MOUNT = "/etc/spiketune"
EXPERIMENTS_MOUNT = "/var/spiketune/experiments"
_CONFIG_KEY = "config.yaml"
#: Kubernetes quantities: ``2``, ``500m``, ``8Gi``, ``1.5G``.
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
#: A DNS-1123 label: what a Job's and a ConfigMap's names must be.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubernetesLauncher(Launcher):
    """N workers as the pods of one Kubernetes Job (see the module docstring).

    ``image``: a container image with spiketune and the trial code (at ``code_dir``);
    ``output``: the manifest file to write; ``apply``: also ``kubectl apply -f`` it.
    """

    kind: ClassVar[str] = "k8s"

    def __init__(
        self,
        *,
        image: str,
        output: Path,
        code_dir: str | None = None,
        namespace: str | None = None,
        cpu: str = "1",
        memory: str = "2Gi",
        gpus_per_worker: int = 0,
        secret: str | None = None,
        secret_key: str = "password",
        backoff_limit: int = 6,
        name: str | None = None,
        apply: bool = False,
    ) -> None:
        problems = []
        if not image or any(c.isspace() for c in image):
            problems.append(Problem("--image", image, "must name a container image, "
                                    "e.g. registry.example/hpo:1.0"))
        for flag, value in (("--cpu", cpu), ("--memory", memory)):
            if not _QUANTITY.match(str(value)):
                problems.append(Problem(flag, value, 'must be a Kubernetes quantity such as '
                                        '"2", "500m", "8Gi"'))
        if gpus_per_worker < 0:
            problems.append(Problem("--gpus-per-worker", gpus_per_worker, "must be >= 0"))
        if backoff_limit < 0:
            problems.append(Problem("--backoff-limit", backoff_limit, "must be >= 0"))
        for flag, value in (("--namespace", namespace), ("--name", name)):
            if value is not None and not _LABEL.match(value):
                problems.append(Problem(flag, value, "must be a DNS label: lower-case "
                                        "letters, digits and '-', at most 63 characters"))
        if secret is not None and not secret_key:
            problems.append(Problem("--secret-key", secret_key, "must name a key of the "
                                    "Secret"))
        if problems:
            raise ConfigError(problems)
        self.image = image
        self.output = output
        self.code_dir = code_dir
        self.namespace = namespace
        self.cpu = str(cpu)
        self.memory = str(memory)
        self.gpus_per_worker = gpus_per_worker
        self.secret = secret
        self.secret_key = secret_key
        self.backoff_limit = backoff_limit
        self.name = name
        self.apply = apply

    def _password_hint(self) -> str:
        return ("a manifest is readable by everyone who can read the namespace: put the "
                "password in a Secret (kubectl create secret generic hpo-db "
                "--from-literal=password=...) and give --secret hpo-db")

    def check(self, spec: WorkerSpec) -> None:
        """The base's storage rules; a trial command needs the path of its code in the image;
        ``--apply`` needs ``kubectl``; the manifest replaces only a manifest of its own."""
        super().check(spec)
        if spec.config.trial_command is not None and self.code_dir is None:
            raise ConfigError(Problem(
                "--code-dir", None, "needed: the directory of the trial code in the image "
                f"(the trial command {spec.config.trial_command!r} runs there)"))
        if self.apply and shutil.which("kubectl") is None:
            raise LaunchError("--apply needs kubectl on PATH (none found); leave --apply out "
                              f"to write the manifest only, then apply it with kubectl "
                              f"apply -f {self.output}")
        _replaceable_manifest(self.output)

    def launch(self, spec: WorkerSpec) -> Launched:
        """Write the manifest (and apply it with ``--apply``)."""
        import yaml

        # Applied now: the pods carry the time, so that one starting (or restarting) after a
        # `spiketune stop` does not resume the experiment. A manifest only written is
        # applied whenever its user chooses: its pods resume, as `spiketune worker` does.
        submitted = datetime.now().astimezone().isoformat() if self.apply else None
        documents = job_manifest(spec, self, submitted=submitted)
        self.output.write_text(yaml.dump_all(documents, Dumper=_dumper(), sort_keys=False),
                               encoding="utf-8")
        notes: list[str] = []
        if self.apply:
            done = subprocess.run(["kubectl", "apply", "-f", str(self.output)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LaunchError(f"kubectl apply -f {self.output} failed "
                                  f"(exit {done.returncode}): {done.stderr.strip()}")
            notes.append(done.stdout.strip())
        return Launched(self.kind, files=(self.output,), notes=tuple(notes))

    def job_name(self, spec: WorkerSpec) -> str:
        """``--name``, else ``spiketune-<config name>`` made a DNS label."""
        if self.name is not None:
            return self.name
        base = re.sub(r"[^a-z0-9-]+", "-", f"spiketune-{spec.config.name}".lower())
        return base[:52].strip("-") or "spiketune"  # room for "-config" and pod suffixes


def _dumper() -> type:
    """A YAML dumper for people reading the manifest: no anchors, and the config as a
    literal block."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                       style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return Dumper


def job_manifest(
    spec: WorkerSpec, launcher: KubernetesLauncher, *, submitted: str | None = None
) -> list[dict[str, Any]]:
    """The ConfigMap and the Job of the module docstring, as dictionaries; ``submitted``
    (ISO time) goes to each worker's ``--submitted``."""
    import yaml

    name = launcher.job_name(spec)
    labels = {"app.kubernetes.io/name": "spiketune", "app.kubernetes.io/instance": name}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if launcher.namespace is not None:
        metadata["namespace"] = launcher.namespace
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**metadata, "name": f"{name}-config"},
        "data": {_CONFIG_KEY: yaml.safe_dump(_pod_config(spec, launcher), sort_keys=True)},
    }
    command = ["spiketune", "worker", f"{CONFIG_MOUNT}/{_CONFIG_KEY}", "--storage",
               spec.storage, "--experiment-dir", EXPERIMENTS_MOUNT, "--quiet"]
    if launcher.gpus_per_worker:
        command += ["--gpus", "all"]
    if submitted is not None:
        command += ["--submitted", submitted]
    quantities: dict[str, Any] = {"cpu": launcher.cpu, "memory": launcher.memory}
    limits = dict(quantities)
    if launcher.gpus_per_worker:
        limits["nvidia.com/gpu"] = launcher.gpus_per_worker
    container: dict[str, Any] = {
        "name": "worker",
        "image": launcher.image,
        "command": command,
        "resources": {"requests": quantities, "limits": limits},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "experiments", "mountPath": EXPERIMENTS_MOUNT},
        ],
    }
    if launcher.secret is not None:
        container["env"] = [{"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": {
            "name": launcher.secret, "key": launcher.secret_key}}}]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "parallelism": spec.workers,
            "completions": spec.workers,
            "backoffLimit": launcher.backoff_limit,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                        {"name": "experiments", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    return [config_map, job]


def _pod_config(spec: WorkerSpec, launcher: KubernetesLauncher) -> Mapping[str, Any]:
    """The configuration the pods read: canonical, the storage left out (it is on the
    command line), the trial code where the image has it."""
    data = {k: v for k, v in spec.config.to_dict().items()
            if k not in ("storage", "experiment_dir")}
    if launcher.code_dir is not None:
        data["trial_code_directory"] = launcher.code_dir
    return data


#: A line every manifest spiketune writes holds (the pods' label).
_OWN_LABEL = "app.kubernetes.io/name: spiketune"


def _replaceable_manifest(path: Path) -> None:
    """Refuse to replace ``path`` unless it is missing or a manifest spiketune wrote (a
    submission written again): ``-o`` naming the config being submitted, or a user's file,
    would lose it."""
    if not path.exists():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LaunchError(f"--output {path}: exists and cannot be read ({e}); give another "
                          "name") from None
    if _OWN_LABEL not in text:
        raise LaunchError(f"--output {path}: exists and is not a manifest spiketune wrote "
                          "(it would be replaced): give another name, or remove it first")


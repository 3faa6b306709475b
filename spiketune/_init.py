"""``spiketune init DIR --template NAME``: a new project directory, ready to run, from a template
shipped with spiketune (``spiketune/templates/<name>/``).

The ``braille-eprop`` template is the four-file pipeline of the Braille use case
(``examples/braille_eprop`` in the repository links to it): a launcher, a trial script, its
data and training modules, the experiment's ``config.toml`` and ``search_space.json``, and a
README. After ``spiketune init my_project``, ``cd my_project && python main.py`` runs it; it
needs nothing of a repository (its data come from ``--data``, ``$SPIKETUNE_BRAILLE_DATA`` or
spiketune's data cache). ``snntorch-braille`` is the same pipeline with a trial written only
in snnTorch, torch and ``import nni``, on the threshold-1 Braille pool, with the NIR paper's
search space: it runs where spiketune is absent and hands its predictions over in one guarded
call. ``nir-finetune`` reads a NIR graph (by default one it builds: 12 inputs, a recurrent
CubaLIF layer, 7 readouts, the NIR paper's Braille shape), maps it to a trainable network with
``spiketune.nir.to_network`` and tunes its time constants, threshold and learning rate by
surrogate-gradient BPTT on the threshold-1 Braille pool.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from spiketune.errors import ConfigError, Problem

__all__ = ["TEMPLATES", "init_project", "template_files"]

#: Template names (as ``--template`` spells them) and their directories under ``templates/``.
TEMPLATES: dict[str, str] = {
    "braille-eprop": "braille_eprop",
    "braille-l2mu": "braille_l2mu",
    "spike-patterns": "spike_patterns",
    "wisdm-l2mu": "wisdm_l2mu",
    "snntorch-braille": "snntorch_braille",
    "nir-finetune": "nir_finetune",
}

_SKIPPED = ("__pycache__", ".pyc")


def _template_root(template: str) -> Traversable:
    if template not in TEMPLATES:
        raise ConfigError(
            Problem("template", template, "one of " + ", ".join(sorted(TEMPLATES)))
        )
    return resources.files("spiketune") / "templates" / TEMPLATES[template]


def template_files(template: str = "braille-eprop") -> dict[str, bytes]:
    """The files of ``template``: relative path (``/``-separated) to content."""
    files: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name.endswith(_SKIPPED) or child.name.startswith("."):
                continue
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            else:
                files[prefix + child.name] = child.read_bytes()

    walk(_template_root(template), "")
    return files


def init_project(
    directory: str | os.PathLike[str], template: str = "braille-eprop", *, force: bool = False
) -> list[Path]:
    """Write ``template`` into ``directory`` (created if needed); return the files written.

    Existing files are never overwritten unless ``force``: a clash is a :class:`ConfigError`
    that names every file in the way, raised before anything is written.
    """
    if not os.fspath(directory).strip():  # say, an unset "$DIR": not the working directory
        raise ConfigError(Problem("directory", os.fspath(directory),
                                  "must name a directory (give . for the working directory)"))
    target = Path(directory).expanduser()
    files = template_files(template)
    existing = next(p for p in (target, *target.absolute().parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == target else f" ({existing} is a file)"
        raise ConfigError(Problem("directory", str(target), f"must be a directory{where}"))
    clashes = sorted(name for name in files if (target / name).exists())
    if clashes and not force:
        raise ConfigError(
            Problem("directory", str(target),
                    f"already holds {', '.join(clashes)}; choose a new directory, or overwrite "
                    "them with force=True (spiketune init --force)")
        )
    written = []
    for name, content in files.items():
        path = target / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        except OSError as e:  # an unwritable directory, a full disk
            raise ConfigError(
                Problem("directory", str(target), f"cannot be written ({path}: {e.strerror})")
            ) from None
        written.append(path)
    return written

"""``spiketune submit``'s library side: one function over any :class:`Launcher`."""

from __future__ import annotations

from pathlib import Path

from spiketune.engine.launch._base import Launched, Launcher, WorkerSpec
from spiketune.engine.storage._paths import default_root, writable_root
from spiketune.errors import ConfigError, Problem

__all__ = ["submit"]


def submit(config: str | Path, launcher: Launcher, *, workers: int,
           storage: str | None = None) -> Launched:
    """Start ``workers`` workers of the experiment in the config file ``config`` with
    ``launcher``, on ``storage`` (default: the config's). The launcher's checks run before
    anything is written or submitted (see :class:`Launcher`)."""
    from spiketune.engine.config import load_config

    if workers < 1:
        raise ConfigError(Problem("--workers", workers, "must be >= 1"))
    path = Path(config).expanduser().resolve()
    cfg = load_config(path)
    url = storage or cfg.storage
    if url is None:
        raise ConfigError(Problem("storage", None, "workers need a database that every "
                                  "worker reaches: --storage URL, or storage in the config"))
    spec = WorkerSpec(config_path=path, config=cfg, storage=url, workers=workers)
    launcher.check(spec)
    writable_root(cfg.experiment_dir or default_root())  # before anything is registered
    return launcher.launch(spec)

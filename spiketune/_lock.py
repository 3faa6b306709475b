"""One exclusive file lock for the read-modify-write of a small shared file (a download into
the data cache, the export checks of an experiment), so that two processes doing the same at
once both land instead of the second overwriting the first.

Standard library only. POSIX ``flock`` on a ``.lock`` file beside the protected one; the lock
is released when the descriptor closes, so a killed holder never leaves it taken. Where
``fcntl`` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive_lock"]


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

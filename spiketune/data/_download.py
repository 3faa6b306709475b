"""Fetching dataset files into a local cache: verified, resumable and atomic.

A download is written to ``<name>.part`` next to its destination and renamed only once it is
complete and its checksum matches, so a half-written file is never taken for a good one. An
interrupted download resumes from the ``.part`` file with an HTTP ``Range`` request (a server
that ignores ``Range`` is answered by starting over). Two processes fetching the same file
take turns through a lock file. When there is no network the error says where to put the
file by hand.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from spiketune._lock import exclusive_lock
from spiketune.errors import DataError

#: Environment variable naming the cache directory for datasets.
CACHE_ENV = "SPIKETUNE_DATA"

_CHUNK = 1 << 16


def cache_dir() -> Path:
    """Where datasets are cached: ``$SPIKETUNE_DATA`` if set, else ``~/.cache/spiketune``
    (or ``$XDG_CACHE_HOME/spiketune``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "spiketune"


@dataclass(frozen=True)
class RemoteFile:
    """A file published at ``url``, stored locally as ``filename``.

    ``md5`` is the checksum the publisher states; ``None`` means none is known, and the file
    is then accepted unverified (with a warning that shows the checksum actually received).
    ``zip``: the file is a zip archive, so that without a checksum a download is still kept
    only if it opens and every member passes its CRC (an HTML error page served with status
    200, a connection cut short without a length, a resumed ``.part`` that began with other
    bytes), and a cached copy only if it opens. ``page`` is where a person can download it by
    hand.
    """

    url: str
    filename: str
    md5: str | None = None
    page: str | None = None
    zip: bool = False

    def __post_init__(self) -> None:
        name = self.filename
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise DataError(f"RemoteFile.filename: a plain file name, without directories "
                            f"(it is stored in the cache directory), got {name!r}")


def file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manual_hint(remote: RemoteFile, dest: Path) -> str:
    where = remote.page or remote.url
    check = f" (md5 {remote.md5})" if remote.md5 else ""
    return (
        f"To install it by hand, download {remote.filename} from {where} and place it at "
        f"{dest}{check}; set ${CACHE_ENV} to use another cache directory."
    )


class _Progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, label: str) -> None:
        self._bar = None
        self._task = None
        if enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=None)

    def update(self, completed: int, total: int | None) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _fetch_once(remote: RemoteFile, part: Path, timeout: float, bar: _Progress) -> tuple[bool, str]:
    """One HTTP request continuing ``part``. Returns (complete, reason if not)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "spiketune"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Nothing left to send past our offset: either the part is complete or it is
            # longer than the file. The checksum decides; without one, start over.
            if remote.md5 is not None:
                return (True, "")
            part.unlink(missing_ok=True)
            return (False, "range not satisfiable")
        raise
    with response:
        total: int | None = None
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                return (False, "server answered a different range")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:  # 200: the server sent the whole file from the start
            offset = 0
            mode = "wb"
            total = int(length) if length is not None else None
        done = offset
        bar.update(done, total)
        with part.open(mode) as out:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                bar.update(done, total)
        if total is not None and done < total:
            return (False, f"connection closed after {done} of {total} bytes")
        return (True, "")


def download(
    remote: RemoteFile,
    directory: Path | None = None,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 5,
    backoff: float = 1.0,
) -> Path:
    """Fetch ``remote`` into ``directory`` (default: ``cache_dir()``) and return its path.

    An existing, verified file is returned without network access. ``timeout`` is seconds per
    network operation; a dropped connection is resumed up to ``retries`` times, waiting
    ``backoff * 2**attempt`` seconds (at most 30) between tries. Raises ``DataError`` when the
    file cannot be fetched or its checksum does not match; the message says how to place the
    file by hand.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DataError(f"download: retries must be an integer >= 0, got {retries!r}")
    directory = cache_dir() if directory is None else Path(directory)
    dest = directory / remote.filename
    if dest.exists():  # complete (written by an atomic rename): no lock, so a read-only cache works
        _check_existing(remote, dest)
        return dest
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache directory {directory}: {exc}") from None
    part = dest.with_name(dest.name + ".part")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(dest.with_name(dest.name + ".lock")))
        except OSError as exc:
            raise DataError(f"cannot write into the cache directory {directory} ({exc}); set "
                            "SPIKETUNE_DATA to a writable directory. "
                            + _manual_hint(remote, dest)) from None
        if dest.exists():  # fetched by another process while this one waited for the lock
            _check_existing(remote, dest)
            return dest
        bar = _Progress(progress, f"downloading {remote.filename}")
        reason = ""
        complete = False
        try:
            for attempt in range(retries + 1):
                if attempt:
                    time.sleep(min(backoff * 2 ** (attempt - 1), 30.0))
                try:
                    complete, reason = _fetch_once(remote, part, timeout, bar)
                except urllib.error.HTTPError as exc:
                    reason = f"HTTP {exc.code} {exc.reason}"
                    if 400 <= exc.code < 500 and exc.code not in (408, 429):
                        break
                    continue
                except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                    reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
                    continue
                if complete:
                    break
        finally:
            bar.close()
        if not complete or not part.exists():
            raise DataError(
                f"could not download {remote.url}: {reason}. " + _manual_hint(remote, dest)
            )
        got = file_md5(part)
        if remote.md5 is not None and got != remote.md5.lower():
            part.unlink(missing_ok=True)
            raise DataError(
                f"the download of {remote.url} is corrupt: md5 {got}, expected {remote.md5}; "
                "the partial file was removed, try again. " + _manual_hint(remote, dest)
            )
        problem = _zip_problem(part) if remote.md5 is None and remote.zip else None
        if problem is not None:
            part.unlink(missing_ok=True)
            raise DataError(
                f"the download of {remote.url} is not a readable zip archive ({problem}); the "
                "partial file was removed, try again. " + _manual_hint(remote, dest)
            )
        if remote.md5 is None:
            warnings.warn(
                f"{remote.filename}: no published checksum is recorded, so the download is "
                f"unverified (its md5 is {got}; compare it with {remote.page or remote.url})",
                stacklevel=2,
            )
        os.replace(part, dest)
    return dest


def _check_existing(remote: RemoteFile, dest: Path) -> None:
    if dest.is_dir() or dest.stat().st_size == 0:  # no publisher's file is empty
        raise DataError(f"{dest} is empty or a directory, not the file of {remote.url}; "
                        "delete it to download it again. " + _manual_hint(remote, dest))
    if remote.md5 is None:
        if remote.zip and not zipfile.is_zipfile(dest):
            raise DataError(f"{dest} is not a zip archive, not the file of {remote.url}; "
                            "delete it to download it again. " + _manual_hint(remote, dest))
        return
    got = file_md5(dest)
    if got != remote.md5.lower():
        raise DataError(
            f"{dest} does not match its published checksum (md5 {got}, expected "
            f"{remote.md5}); delete it to download it again. " + _manual_hint(remote, dest)
        )


def _zip_problem(path: Path) -> str | None:
    """What keeps ``path`` from being a whole zip archive (every member read and its CRC
    checked), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None if bad is None else f"member {bad} fails its CRC check"


#: Errors of writing, whatever file they name (a full disk names none).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def extract_member(archive: Path, pattern: str, dest: Path) -> Path:
    """Extract the one member of the zip ``archive`` whose base name matches the regular
    expression ``pattern`` (in full) to the file ``dest``, atomically; return ``dest``.

    The member's CRC is checked while it is read, so a damaged archive raises ``DataError``.
    """
    regex = re.compile(pattern)
    # A name of its own per process: two processes extracting at once never share a part file.
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if regex.fullmatch(n.rsplit("/", 1)[-1])]
            if len(names) != 1:
                listing = ", ".join(zf.namelist()[:20])
                what = "no member" if not names else f"{len(names)} members"
                raise DataError(
                    f"{archive}: {what} matching {pattern!r} (archive holds: {listing})"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(names[0]) as src, part.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    except OSError as exc:
        with contextlib.suppress(OSError):  # on a read-only file system even this fails
            part.unlink(missing_ok=True)
        if exc.errno in _WRITE_ERRNOS or (
                exc.filename is not None and Path(exc.filename) in (part, dest.parent)):
            raise DataError(f"cannot write {dest} ({exc}); set SPIKETUNE_DATA to a writable "
                            "directory with room for it") from None
        raise DataError(f"{archive} is not a readable zip archive: {exc}; delete it to "
                        "download or place it again") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise DataError(f"{archive} is not a readable zip archive: {exc}; delete it to "
                        "download or place it again") from None
    os.replace(part, dest)
    return dest

"""Downloads against a local HTTP server on 127.0.0.1: checksums, resume, atomicity, offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from spiketune.data import CACHE_ENV, RemoteFile, cache_dir, download, extract_member
from spiketune.errors import DataError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, several chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


#: A zip archive of 30 KB (stored, not compressed), served at /zip.
ZIP_PAYLOAD = _zip({"data/a.pkl": bytes(range(256)) * 60, "data/b.pkl": b"b" * 15000},
                   zipfile.ZIP_STORED)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD under several behaviours chosen by path.

    /good: honours Range. /norange: ignores Range (always 200, whole file).
    /drop: the first request breaks off halfway; later ones honour Range.
    /missing: 404. /zip: ZIP_PAYLOAD, honouring Range.
    """

    requests: ClassVar[list[tuple[str, str | None]]] = []
    dropped: ClassVar[set[str]] = set()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        type(self).requests.append((path, rng))
        if path == "/missing":
            self.send_error(404)
            return
        if path == "/drop" and path not in type(self).dropped:
            type(self).dropped.add(path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = ZIP_PAYLOAD if path == "/zip" else PAYLOAD
        start = 0
        if rng and path != "/norange":
            start = int(rng.removeprefix("bytes=").split("-")[0])
        if start >= len(payload):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(payload)}")
            self.end_headers()
            return
        body = payload[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.dropped = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _remote(base: str, path: str, md5: str | None = PAYLOAD_MD5) -> RemoteFile:
    return RemoteFile(url=f"{base}{path}?download=1", filename="archive.zip", md5=md5)


def _fetch(remote: RemoteFile, directory: Path, **kwargs: object) -> Path:
    options = {"progress": False, "timeout": 5.0, "retries": 3, "backoff": 0.0} | kwargs
    return download(remote, directory, **options)  # type: ignore[arg-type]


def test_good_file_is_downloaded_verified_and_then_served_from_cache(
    server: str, tmp_path: Path
) -> None:
    path = _fetch(_remote(server, "/good"), tmp_path)
    assert path == tmp_path / "archive.zip"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "archive.zip.part").exists()
    n = len(_Handler.requests)
    assert _fetch(_remote(server, "/good"), tmp_path) == path
    assert len(_Handler.requests) == n  # no network for a verified cached file


def test_progress_bar_path_works(server: str, tmp_path: Path) -> None:
    path = _fetch(_remote(server, "/good"), tmp_path, progress=True)
    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_is_refused_and_leaves_nothing_behind(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        _fetch(_remote(server, "/good", md5="0" * 32), tmp_path)
    message = str(info.value)
    assert "md5" in message and "expected " + "0" * 32 in message
    assert "place it at" in message and str(tmp_path / "archive.zip") in message
    assert not (tmp_path / "archive.zip").exists()
    assert not (tmp_path / "archive.zip.part").exists()


def test_a_dropped_connection_is_resumed_with_a_range_request(server: str, tmp_path: Path) -> None:
    path = _fetch(_remote(server, "/drop"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    ranges = [r for p, r in _Handler.requests if p == "/drop"]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_an_existing_part_file_is_continued(server: str, tmp_path: Path) -> None:
    (tmp_path / "archive.zip.part").write_bytes(PAYLOAD[:1000])
    path = _fetch(_remote(server, "/good"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert _Handler.requests == [("/good", "bytes=1000-")]


def test_a_server_ignoring_range_makes_the_download_start_over(server: str, tmp_path: Path) -> None:
    (tmp_path / "archive.zip.part").write_bytes(b"stale bytes that must not survive")
    path = _fetch(_remote(server, "/norange"), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_a_part_file_already_complete_is_accepted_after_416(server: str, tmp_path: Path) -> None:
    (tmp_path / "archive.zip.part").write_bytes(PAYLOAD)
    assert _fetch(_remote(server, "/good"), tmp_path).read_bytes() == PAYLOAD


def test_http_404_fails_at_once_with_manual_instructions(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"HTTP 404.*download archive\.zip from"):
        _fetch(_remote(server, "/missing"), tmp_path)
    assert len(_Handler.requests) == 1  # a client error is not retried


def test_offline_error_says_how_to_place_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteFile(
        url=f"http://127.0.0.1:{port}/x.zip", filename="x.zip", md5=None, page="https://example"
    )
    with pytest.raises(DataError) as info:
        _fetch(remote, tmp_path, retries=1, timeout=2.0)
    message = str(info.value)
    assert "could not download" in message
    assert f"place it at {tmp_path / 'x.zip'}" in message and "https://example" in message
    assert CACHE_ENV in message
    assert not (tmp_path / "x.zip").exists()


def test_unverified_download_warns_with_the_received_md5(server: str, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=PAYLOAD_MD5):
        path = _fetch(_remote(server, "/good", md5=None), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_an_unverified_archive_is_kept_only_whole(server: str, tmp_path: Path) -> None:
    """Without a checksum, a zip is kept only if it opens and every member passes its CRC:
    not another file served as it (an error page), not a resumed .part that began with
    other bytes; nothing of either is left to be taken for it later."""
    zipped = RemoteFile(f"{server}/zip", "archive.zip", md5=None, zip=True)
    with pytest.warns(UserWarning):
        assert _fetch(zipped, tmp_path / "ok").read_bytes() == ZIP_PAYLOAD
    not_a_zip = RemoteFile(f"{server}/good", "archive.zip", md5=None, zip=True)
    with pytest.raises(DataError, match="not a readable zip archive"):
        _fetch(not_a_zip, tmp_path / "page")
    assert not [p for p in (tmp_path / "page").iterdir() if p.suffix != ".lock"]
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "archive.zip.part").write_bytes(b"X" * 5000)  # resumed with a Range request
    with pytest.raises(DataError, match="not a readable zip archive"):
        _fetch(zipped, stale)
    assert ("/zip", "bytes=5000-") in _Handler.requests
    assert not [p for p in stale.iterdir() if p.suffix != ".lock"]
    # a cached file that is no zip is reported, with what to do, and never read as one
    (stale / "archive.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"is not a zip archive.*delete it to download it again"):
        _fetch(zipped, stale)


def test_extraction_that_cannot_write_says_so_and_blames_no_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk names no file; the archive is fine and must not be called damaged."""
    import errno
    import os
    import shutil

    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"x.pkl": b"payload"}))

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(DataError, match=r"cannot write .*x\.pkl.*writable directory with room"):
        extract_member(archive, r"x\.pkl", tmp_path / "x.pkl")
    assert not list(tmp_path.glob("*.part"))


def test_a_cached_file_that_fails_its_checksum_is_reported(tmp_path: Path) -> None:
    (tmp_path / "archive.zip").write_bytes(b"not the archive")
    remote = RemoteFile("http://127.0.0.1:9/never", "archive.zip", md5=PAYLOAD_MD5)
    with pytest.raises(DataError, match="delete it to download it again"):
        _fetch(remote, tmp_path)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "spiketune"


def test_extract_member_by_pattern(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(
        _zip({"data/data_braille_letters_th_1.pkl": b"one", "data/other.pkl": b"two"})
    )
    dest = extract_member(archive, r"data_braille_letters_th_?1(\.pkl)?", tmp_path / "out.pkl")
    assert dest.read_bytes() == b"one"
    with pytest.raises(DataError, match="no member"):
        extract_member(archive, r"nothing\.pkl", tmp_path / "none.pkl")
    with pytest.raises(DataError, match="2 members"):
        extract_member(archive, r".*\.pkl", tmp_path / "two.pkl")


def test_extract_member_refuses_a_damaged_archive(tmp_path: Path) -> None:
    data = bytearray(_zip({"x.pkl": b"payload " * 1000}))
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(bytes(data[:100]))
    with pytest.raises(DataError, match="not a readable zip"):
        extract_member(truncated, r"x\.pkl", tmp_path / "x.pkl")
    # Flip a byte inside the compressed member: either inflating fails or the CRC check
    # does, and neither leaves a file behind.
    for position in (40, 60):
        corrupt = tmp_path / "corrupt.zip"
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        corrupt.write_bytes(bytes(damaged))
        with pytest.raises(DataError, match="not a readable zip"):
            extract_member(corrupt, r"x\.pkl", tmp_path / "y.pkl")
        assert not (tmp_path / "y.pkl").exists()
        assert not list(tmp_path.glob("*.part"))


def test_a_read_only_cache_serves_its_files_and_names_itself_otherwise(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared, read-only cache that holds the verified file needs no lock; one that lacks
    it is named with what to do, not a PermissionError from the lock file."""
    import spiketune.data._download as downloads

    remote = _remote(server, "/good", md5=PAYLOAD_MD5)
    path = _fetch(remote, tmp_path)

    def no_write(lock: Path) -> None:
        raise PermissionError(13, "Permission denied", str(lock))

    monkeypatch.setattr(downloads, "exclusive_lock", no_write)
    assert _fetch(remote, tmp_path) == path and path.read_bytes() == PAYLOAD
    with pytest.raises(DataError, match=r"cannot write into the cache directory.*SPIKETUNE_DATA"):
        _fetch(_remote(server, "/good", md5=PAYLOAD_MD5), tmp_path / "other")


def test_bad_requests_are_refused_before_any_network_access(tmp_path: Path) -> None:
    for name in ("../escaped.bin", "sub/file.bin", "", ".."):
        with pytest.raises(DataError, match=r"RemoteFile\.filename"):
            RemoteFile("http://127.0.0.1:9/x", name)
    remote = RemoteFile("http://127.0.0.1:9/never", "archive.zip")
    with pytest.raises(DataError, match="retries must be an integer >= 0"):
        download(remote, tmp_path, retries=-1)
    (tmp_path / "archive.zip").write_bytes(b"")  # an interrupted copy by hand, say
    with pytest.raises(DataError, match="is empty"):
        download(remote, tmp_path)

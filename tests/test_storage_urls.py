"""Database URLs and their passwords: parsed by SQLAlchemy, masked everywhere, never stored,
never echoed when they cannot be used."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spiketune import ConfigError, Experiment, ExperimentConfig, StorageError
from spiketune.cli import app
from spiketune.engine.storage import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    StudyStore,
    check_url,
    parse_url,
    redact_url,
    resolve_url,
    strip_password,
    url_password,
    with_password,
)

SPECIAL = "/?#@:%&=+ "
#: Each URL-special character alone, then all of them together.
PASSWORDS = [f"Zq7{c}Xw9" for c in SPECIAL] + [f"Zq7{SPECIAL}{{}}Xw9"]
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}


def _forms(password: str) -> list[str]:
    """Every way the password could appear in a text: as is, and percent-encoded."""
    return [password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)]


def _leaks(text: str, password: str) -> bool:
    return any(form in text for form in _forms(password))


# ------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("password", PASSWORDS)
def test_encoded_passwords_are_read_masked_and_stripped(password: str) -> None:
    secret = urllib.parse.quote(password, safe="")
    url = f"postgresql://ana:{secret}@db.example:5432/hpo?sslmode=require"
    assert check_url(url) is None
    assert url_password(url) == password
    assert redact_url(url) == "postgresql://ana:***@db.example:5432/hpo?sslmode=require"
    assert strip_password(url) == "postgresql://ana@db.example:5432/hpo?sslmode=require"
    again = with_password(strip_password(url), password)
    assert check_url(again) is None and url_password(again) == password
    assert parse_url(again).host == "db.example"


def test_unencoded_slash_question_mark_and_hash_in_a_password() -> None:
    """The case that used to print and store the password: the host part no longer ends at
    the first ``/``, ``?`` or ``#`` of the password."""
    url = "postgresql://u:Zq7/se?cr#et@127.0.0.1:5432/db"
    assert url_password(url) == "Zq7/se?cr#et"
    assert redact_url(url) == "postgresql://u:***@127.0.0.1:5432/db"
    assert strip_password(url) == "postgresql://u@127.0.0.1:5432/db"


@pytest.mark.parametrize("url", [
    "postgresql://u:Zq7@Xw9@127.0.0.1/db",  # make_url would take "Xw9@127.0.0.1" as the host
    "postgresql://u:Zq7:Xw9@127.0.0.1/db",
    "postgresql://u@x:Zq7Xw9@127.0.0.1/db",
])
def test_an_unencoded_at_or_colon_is_refused(url: str) -> None:
    with pytest.raises(StorageError) as refused:
        parse_url(url)
    message = str(refused.value)
    assert "percent-encode" in message and "%40" in message
    assert "Zq7" not in message and "Xw9" not in message
    assert redact_url(url).startswith("<URL not shown")
    with pytest.raises(StorageError):
        strip_password(url)


@pytest.mark.parametrize(("url", "says"), [
    ("u:Zq7secret@127.0.0.1/db", "cannot be parsed"),  # no scheme
    ("postgres:/u:Zq7secret@127.0.0.1/db", "cannot be parsed"),
    ("postgresql://u:Zq7secret@127.0.0.1:port/db", "cannot be parsed"),
    ("postgresq://u:Zq7secret@127.0.0.1/db", "unknown database kind 'postgresq'"),
])
def test_a_url_that_cannot_be_used_is_never_echoed(url: str, says: str) -> None:
    problem = check_url(url)
    assert problem is not None and says in problem and "Zq7secret" not in problem
    with pytest.raises(ConfigError) as bad:
        ExperimentConfig(search_space=SPACE, storage=url)
    assert "storage" in str(bad.value) and "Zq7secret" not in str(bad.value)
    assert "Zq7secret" not in redact_url(url)


def test_query_passwords_are_masked_and_stripped() -> None:
    url = "postgresql://db/hpo?user=ana&password=Zq7secret"
    assert url_password(url) == "Zq7secret"
    assert "Zq7secret" not in redact_url(url) and "***" in redact_url(url)
    assert strip_password(url) == "postgresql://db/hpo?user=ana"


def test_password_options_still_fill_the_url(tmp_path: Path, monkeypatch) -> None:
    plain = "postgresql://ana@db.example/hpo"
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_FILE_ENV, raising=False)
    assert resolve_url(plain) == plain
    password = PASSWORDS[-1]
    monkeypatch.setenv(PASSWORD_ENV, password)
    assert url_password(resolve_url(plain)) == password
    monkeypatch.delenv(PASSWORD_ENV)
    secret = tmp_path / "pw"
    secret.write_text(password + "\nignored\n")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    assert url_password(resolve_url(plain)) == password
    assert resolve_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("url", [
    "postgresql://u:Zq7/se@cret@127.0.0.1:1/db",
    "postgresql://u:Zq7%2Fsecret@127.0.0.1:1/db",  # well formed; nothing listens on port 1
    "u:Zq7secret@127.0.0.1/db",
    "postgresq://u:Zq7secret@127.0.0.1:1/db",
])
@pytest.mark.parametrize("command", [["ls"], ["trials", "x"], ["best", "x"]])
def test_cli_errors_never_show_the_password(url: str, command: list[str], exp_root: Path) -> None:
    result = CliRunner().invoke(app, [*command, "--storage", url])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    assert "Zq7" not in result.output and "cret" not in result.output


# ------------------------------------------------------------------------------ PostgreSQL
@pytest.mark.parametrize("password", PASSWORDS)
def test_every_special_character_connects(postgres_server, password: str) -> None:
    url = postgres_server.new_role(password)
    store = StudyStore.open(url, "connects", create=True)
    store.set_study_attr("k", 1)
    assert store.study_attrs() == {"k": 1}
    store.close()
    wrong = with_password(url, password + "!")
    with pytest.raises(StorageError) as refused:
        StudyStore.open(wrong, "connects")
    assert "***" in str(refused.value) or "password authentication failed" in str(refused.value)
    assert not _leaks(str(refused.value), password)
    assert not _leaks(str(refused.value), password + "!")


def _quadratic(params: dict) -> float:
    return -(params["x"] - 0.3) ** 2


@pytest.mark.parametrize("password", [PASSWORDS[-1], "Zq7/se?cr#etXw9"])
def test_the_password_is_stored_nowhere(postgres_server, exp_root: Path, password: str) -> None:
    """Not in experiment.json (twice: its storage and its config), not in the study's
    ``spiketune_config``, not in any row of any table, not in what the CLI prints; with the
    password percent-encoded, and with ``/``, ``?`` and ``#`` written as they are (which
    SQLAlchemy reads right: they used to end the host part)."""
    import psycopg

    url = postgres_server.new_role(password)
    if "@" not in password and ":" not in password and " " not in password:
        url = url.replace(urllib.parse.quote(password, safe=""), password)
    exp = Experiment(trial=_quadratic, search_space=SPACE, max_trials=3, storage=url,
                     experiment_dir=exp_root, tuner="Random", seed=1)
    exp.run()
    stored = strip_password(url)
    meta = json.loads((exp.directory / "experiment.json").read_text())
    assert meta["storage"] == stored and meta["config"]["storage"] == stored
    for path in exp.directory.rglob("*"):
        if path.is_file():
            assert not _leaks(path.read_text(errors="replace"), password), path
    reader = StudyStore.open(url, exp.id, read_only=True)
    assert reader.study_attrs()["spiketune_config"]["storage"] == stored
    reader.close()
    parsed = parse_url(url)
    with psycopg.connect(host="127.0.0.1", port=postgres_server.port, user=parsed.username,
                         password=password, dbname=parsed.database) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "studies" in tables and "spiketune_claims" in tables
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            assert not _leaks(repr(rows), password), table
    runner = CliRunner()
    for command in (["ls"], ["trials", exp.id], ["best", exp.id]):
        result = runner.invoke(app, [*command, "--storage", url])
        assert result.exit_code == 0, result.output
        assert not _leaks(result.output, password)


def test_the_short_postgres_scheme_is_accepted() -> None:
    assert check_url("postgres://ana@db.example/hpo") is None
    assert strip_password("postgres://ana:Zq7@db.example/hpo") == "postgres://ana@db.example/hpo"


# ------------------------------------------------------------------------------ connecting
@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 whose server accepts every connection and never answers (a stuck
    server or pooler, a half-open NAT path): libpq's default would wait for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join()
    for conn in [*accepted, server]:
        conn.close()


def test_a_server_that_never_answers_is_given_up_naming_it_and_the_timeout(
    silent_server: int, exp_root: Path
) -> None:
    """Once, not once per retry of a writer's opening; one error line from the CLI."""
    url = f"postgresql://u:Zq7secret@127.0.0.1:{silent_server}/hpo?connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        StudyStore.open(url, "x", create=True)
    assert time.monotonic() - started < 6
    assert f"no answer from 127.0.0.1:{silent_server} within 2 s" in str(info.value)
    assert "Zq7" not in str(info.value)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["ls", "--storage", url])
    assert time.monotonic() - started < 6
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"127.0.0.1:{silent_server} within 2 s" in errors[0], \
        result.output


def test_a_postgresql_connection_waits_10_s_unless_the_url_says(monkeypatch) -> None:
    """libpq's own default, 0, waits for ever; a URL's connect_timeout is left to libpq."""
    import optuna

    given: list[dict] = []

    def record(url: str, engine_kwargs: dict, **_: object) -> None:
        given.append(engine_kwargs["connect_args"])
        raise RuntimeError("not connecting")

    monkeypatch.setattr(optuna.storages, "RDBStorage", record)
    base = "postgresql://u@db.example/hpo"
    opens = [lambda url: StudyStore.open(url, "x"),
             lambda url: StudyStore.open(url, "x", read_only=True),
             lambda url: StudyStore.join_or_create(url, "x", "x-1", direction="maximize",
                                                   attrs={})]
    for open_ in opens:
        for url in (base, f"{base}?connect_timeout=30"):
            with pytest.raises(StorageError, match="not connecting"):
                open_(url)
    assert [args.get("connect_timeout") for args in given] == [10, None] * 3
    assert given[2]["options"] == "-c default_transaction_read_only=on"  # read-only kept

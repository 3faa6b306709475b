"""Database URLs: parsed, checked, masked and given their password by SQLAlchemy's URL objects
(:func:`sqlalchemy.engine.make_url`), never by string surgery.

A URL is checked before it is used or shown. The rules, and why:

* it must parse as ``scheme://[user[:password]@]host[:port]/database[?query]`` (or
  ``sqlite:///path``): a URL that does not is never repeated in a message, since the part that
  failed may be a password;
* a user name or password must not hold an unencoded ``@`` or ``:``. SQLAlchemy reads
  ``u:a@b@host`` as the password ``a`` on the host ``b@host``, so such a URL would connect
  somewhere else, with a part of the password shown as a host name. Percent-encode them
  (``@`` as ``%40``, ``:`` as ``%3A``; ``urllib.parse.quote(password, safe="")`` encodes every
  character that needs it);
* the scheme must name a database SQLAlchemy knows (a mistyped ``postgresq://`` is refused
  before anything connects).

The password is never stored: the stored form is :func:`strip_password`'s, the shown form
:func:`redact_url`'s. At connection time it comes back from the URL given in this process,
``$SPIKETUNE_DB_PASSWORD``, the file named by ``$SPIKETUNE_DB_PASSWORD_FILE``
(``--password-file``), or libpq's own ``PGPASSWORD`` / ``~/.pgpass`` (:func:`resolve_url`).

A journal URL (``journal:///abs/path/study.log``: Optuna's ``JournalStorage`` in a file, for a
shared disk without a database server) is no database URL: it holds no credentials, so it is
shown and stored as given. Its rules (:func:`journal_problem`): nothing between ``//`` and the
path (a host would be ignored, so it is refused), an absolute path to a file, no ``?query`` or
``#fragment`` (percent-encode ``?`` as ``%3F`` and ``#`` as ``%23`` in a file name;
:func:`journal_url` does).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from spiketune.errors import StorageError

__all__ = [
    "CREDENTIAL_ENVS",
    "HIDDEN_URL",
    "JOURNAL_SCHEME",
    "PASSWORD_ENV",
    "PASSWORD_FILE_ENV",
    "check_url",
    "is_journal_url",
    "journal_file",
    "journal_problem",
    "journal_url",
    "parse_url",
    "read_only_sqlite_url",
    "read_password_file",
    "redact_url",
    "resolve_url",
    "scrub",
    "sqlite_file",
    "sqlite_url",
    "strip_password",
    "url_password",
    "with_driver",
    "with_password",
]

PASSWORD_ENV = "SPIKETUNE_DB_PASSWORD"
PASSWORD_FILE_ENV = "SPIKETUNE_DB_PASSWORD_FILE"
#: Environment variables that carry database credentials; trial processes never inherit them.
CREDENTIAL_ENVS = (PASSWORD_ENV, PASSWORD_FILE_ENV, "PGPASSWORD", "PGPASSFILE")

#: Query parameters that drivers read as a password (``?password=...``).
_QUERY_PASSWORD_KEYS = frozenset({"password", "passwd", "pwd"})
#: Scheme names SQLAlchemy does not know, and the database kind they mean.
_ALIASES = {"postgres": "postgresql"}
#: What a message shows in place of a URL that cannot be parsed.
HIDDEN_URL = "<URL not shown: it may hold a password>"
_FORM = ("it must look like postgresql://user@host:port/database, sqlite:////path/to/study.db "
         "or journal:///path/to/study.log")
#: The scheme of a study in an Optuna journal file (``journal:///abs/path/study.log``).
JOURNAL_SCHEME = "journal"
_JOURNAL_FORM = "journal:///absolute/path/to/study.log"


def is_journal_url(url: str) -> bool:
    """Whether ``url`` names a journal file (``journal:...``), usable or not."""
    return url.split(":", 1)[0].lower() == JOURNAL_SCHEME if ":" in url else False


def journal_problem(url: str) -> str | None:
    """What is wrong with the journal URL ``url`` (the rule it breaks, quoting the part that
    does), or None when it names a file by its absolute path."""
    parts = urllib.parse.urlsplit(url)
    if not url.lower().startswith(JOURNAL_SCHEME + "://"):
        return f"a journal URL starts with {JOURNAL_SCHEME}:// ({_JOURNAL_FORM})"
    if parts.netloc:
        return (f"a journal URL names no host ({parts.netloc!r} given): the file must be on a "
                f"disk this machine mounts; write {_JOURNAL_FORM}, three slashes")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return ("a journal URL takes no ?query or #fragment; percent-encode ? as %3F and # as "
                "%23 in a file name")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        return f"a journal URL names an absolute path ({_JOURNAL_FORM})"
    if path.endswith("/"):
        return f"a journal URL names a file, not a directory ({_JOURNAL_FORM})"
    return None


def journal_file(url: str) -> Path | None:
    """The file of a journal URL (None for a database URL); :class:`StorageError` naming the
    rule when it is a journal URL that cannot be used."""
    if not is_journal_url(url):
        return None
    problem = journal_problem(url)
    if problem is not None:
        raise StorageError(f"the storage URL {url!r} cannot be used: {problem}")
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def journal_url(path: Path) -> str:
    """The journal URL of the file ``path`` (made absolute; characters that mean something in
    a URL, such as ``?``, ``#`` or ``%``, percent-encoded)."""
    return f"{JOURNAL_SCHEME}://" + urllib.parse.quote(str(Path(path).resolve()))


def parse_url(url: str) -> URL:
    """``url`` as a SQLAlchemy :class:`~sqlalchemy.engine.URL`, after the checks of the
    module docstring; :class:`StorageError` (which never quotes ``url``) otherwise. A journal
    URL is no database URL: see :func:`journal_file`."""
    if is_journal_url(url):
        raise StorageError("a journal URL is not a database URL (spiketune opens it as a "
                           "journal file)")
    problem, parsed = _parse(url)
    if parsed is None:
        raise StorageError(f"the storage URL cannot be used: {problem}")
    return parsed


def check_url(url: str) -> str | None:
    """What is wrong with ``url`` in words that never quote it (for configuration errors);
    None if it can be used. A journal URL is checked by :func:`journal_problem`."""
    if is_journal_url(url):
        return journal_problem(url)
    return _parse(url)[0]


def _parse(url: str) -> tuple[str | None, URL | None]:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # no scheme://, or a port that is not a number
        return f"it cannot be parsed; {_FORM}", None
    problem = _userinfo_problem(url, parsed)
    if problem is None:
        try:  # postgres:// is the common short name of postgresql:// (see with_driver)
            parsed.set(drivername=_ALIASES.get(parsed.drivername, parsed.drivername)) \
                .get_dialect()
        except NoSuchModuleError:
            problem = (f"unknown database kind {parsed.drivername!r} (a scheme such as "
                       "postgresql://, postgresql+psycopg://, sqlite:/// or, for a journal "
                       "file, journal:/// is expected)")
    return (problem, None) if problem else (None, parsed)


def _userinfo_problem(url: str, parsed: URL) -> str | None:
    """An unencoded ``@`` or ``:`` in the user name or password (see the module docstring).

    make_url reads the user name up to the first ``:`` or ``/``, and the password from there
    up to the first ``@``; the host then must hold no ``@`` and the raw password no ``:``.
    """
    how = ("percent-encode it (@ as %40, : as %3A; urllib.parse.quote(password, safe='') "
           "does it), or give the password with --password-file or $" + PASSWORD_ENV)
    if parsed.host and "@" in parsed.host:
        return f"its user name or password holds an unencoded '@': {how}"
    if parsed.username and "@" in parsed.username and parsed.password is not None:
        return f"its user name holds an unencoded '@': {how}"
    if parsed.password is not None:
        rest = url.split("://", 1)[1]
        raw_password = rest.split(":", 1)[1].split("@", 1)[0]
        if ":" in raw_password:
            return f"its password holds an unencoded ':': {how}"
    return None


def _query_password(parsed: URL) -> str | None:
    for key, value in parsed.query.items():
        if key.lower() in _QUERY_PASSWORD_KEYS:
            return value if isinstance(value, str) else value[-1]
    return None


def _without_password(parsed: URL) -> URL:
    keys = [k for k in parsed.query if k.lower() in _QUERY_PASSWORD_KEYS]
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                      port=parsed.port, database=parsed.database, query=parsed.query)
    return bare.difference_update_query(keys)


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``, for
    messages; a URL that cannot be parsed is not shown at all. A journal URL holds no
    credentials: it is shown as given (unless it names a user, as ``journal://u:p@...``)."""
    if is_journal_url(url):
        return HIDDEN_URL if "@" in urllib.parse.urlsplit(url).netloc else url
    try:
        parsed = parse_url(url)
    except StorageError:
        return HIDDEN_URL
    keys = [k for k in parsed.query if k.lower() in _QUERY_PASSWORD_KEYS]
    # A query password becomes a marker (SQLAlchemy would percent-encode "***" itself)
    marker = "spiketunehidden"
    parsed = parsed.update_query_dict(dict.fromkeys(keys, marker))
    return parsed.render_as_string(hide_password=True).replace(f"={marker}", "=***")


def strip_password(url: str) -> str:
    """``url`` without its password (``postgresql://user@host/db``): the form that is stored.
    :class:`StorageError` for a URL that cannot be used (it is never stored). A journal URL
    is stored as given."""
    if journal_file(url) is not None:
        return url
    return _without_password(parse_url(url)).render_as_string(hide_password=False)


def url_password(url: str) -> str | None:
    """The password written in ``url`` (percent-decoded) or in its query, if any."""
    if journal_file(url) is not None:
        return None
    parsed = parse_url(url)
    return parsed.password if parsed.password is not None else _query_password(parsed)


def with_password(url: str, password: str) -> str:
    """``url`` carrying ``password`` (percent-encoded by SQLAlchemy); for the driver only."""
    parsed = _without_password(parse_url(url))
    return parsed.set(password=password).render_as_string(hide_password=False)


def read_password_file(path: str | Path) -> str:
    """The first line of a password file; :class:`StorageError` naming the file otherwise."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise StorageError(f"cannot read the password file {path}: {e.strerror or e}") from e
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise StorageError(f"the password file {path} is empty")
    return lines[0]


def resolve_url(url: str) -> str:
    """The URL to connect with: its own password, else ``$SPIKETUNE_DB_PASSWORD``, else the
    first line of the file named by ``$SPIKETUNE_DB_PASSWORD_FILE`` (``--password-file``);
    else the URL as it is (PostgreSQL's driver then reads ``PGPASSWORD`` or ``~/.pgpass``).
    A journal URL is the URL as it is."""
    if journal_file(url) is not None:
        return url
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" or url_password(url) is not None:
        return url
    password = os.environ.get(PASSWORD_ENV)
    if not password and os.environ.get(PASSWORD_FILE_ENV):
        password = read_password_file(os.environ[PASSWORD_FILE_ENV])
    return with_password(url, password) if password else url


def with_driver(url: str) -> str:
    """A plain ``postgresql://`` URL names the psycopg (3) driver, which spiketune installs
    (SQLAlchemy before 2.1 would look for psycopg2 instead)."""
    if journal_file(url) is not None:
        return url
    parsed = parse_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message) with ``url``'s password masked wherever it appears,
    as given and percent-encoded."""
    secrets: set[str] = set()
    for candidate in (url, _resolved_or_none(url)):
        if candidate is None:
            continue
        try:
            password = url_password(candidate)
        except StorageError:
            continue
        if password:
            secrets |= {password, urllib.parse.quote(password, safe=""),
                        urllib.parse.quote_plus(password)}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _resolved_or_none(url: str) -> str | None:
    try:
        return resolve_url(url)
    except StorageError:
        return None


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file ``path`` (made absolute; characters that mean
    something in a URL, such as ``?`` or ``#``, are percent-encoded)."""
    return URL.create("sqlite", database=str(Path(path).resolve())).render_as_string(
        hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database, a journal, or SQLite in memory)."""
    if journal_file(url) is not None:
        return None
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = str(parsed.database)
    if database.startswith("file:"):  # already a SQLite URI filename
        return Path(urllib.parse.unquote(database[len("file:"):].split("?", 1)[0]))
    return Path(database)


def read_only_sqlite_url(path: Path) -> str:
    """A URL that opens the SQLite file ``path`` for reading only (SQLite's ``mode=ro``: the
    driver refuses every write, and never creates the file)."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve()))
    return URL.create("sqlite", database=uri, query={"mode": "ro", "uri": "true"}) \
        .render_as_string(hide_password=False)

"""A throwaway PostgreSQL server for the tests.

:func:`start` finds PostgreSQL's server programs (installing Debian's ``postgresql`` package
with apt-get when they are missing and we are root), creates a cluster in a new temporary
directory, starts it on 127.0.0.1 on a free port, and returns a :class:`Server`;
:meth:`Server.stop` stops it and deletes the directory. The cluster takes connections only
from this machine, with a password (scram-sha-256) for a superuser made for the purpose.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
(created when missing) and its programs run through ``runuser`` (or ``su``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "spiketune"
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


class Unavailable(Exception):
    """PostgreSQL cannot be found, installed or started here; the message says why."""


def _bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, or $PATH's."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("PostgreSQL is not installed, and apt-get is not available to root "
                          "here to install it (apt-get install postgresql)")
    env = dict(os.environ, **_APT_ENV)
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running throwaway cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, bin_dir: Path, root: Path, port: int, password: str,
                 run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.password = password
        self.run_as = run_as
        self._count = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; its URL (with the password)."""
        import psycopg

        self._count += 1
        name = f"t{os.getpid()}_{self._count}_{secrets.token_hex(3)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER,
                             password=self.password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def new_role(self, password: str) -> str:
        """A new login role whose password is ``password`` (any characters), owning a new
        database; the URL of that database as that role, the password percent-encoded."""
        import urllib.parse

        import psycopg
        from psycopg import sql

        database = self.new_database()
        name = database.rsplit("/", 1)[1]
        role = f"r_{name}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER,
                             password=self.password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(role)))
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER,
                             password=self.password, dbname=name, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
        secret = urllib.parse.quote(password, safe="")
        return f"postgresql://{role}:{secret}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _run(self.run_as, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m",
                               "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(run_as: str | None, cmd: list[str], timeout: float = 120) -> None:
    if run_as is not None:
        if shutil.which("runuser"):
            cmd = ["runuser", "-u", run_as, "--", *cmd]
        else:
            import shlex

            cmd = ["su", run_as, "-s", "/bin/sh", "-c", shlex.join(cmd)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-800:]}")


def _system_user() -> str:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _run(None, ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                    "postgres"])
    return "postgres"


def start() -> Server:
    """Start a fresh cluster (see the module docstring); :class:`Unavailable` if impossible."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        _install()
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise Unavailable("apt-get installed postgresql, but initdb and pg_ctl are not in "
                              "/usr/lib/postgresql/*/bin")
    run_as = _system_user() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="spiketune-pg-"))
    try:
        password = secrets.token_urlsafe(12)
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if run_as is not None:
            info = pwd.getpwnam(run_as)
            for path in (root, pwfile):
                os.chown(path, info.pw_uid, info.pw_gid)
        server = Server(bin_dir, root, _free_port(), password, run_as)
        _run(run_as, [str(bin_dir / "initdb"), "-D", str(server.data), "-U", USER,
                      f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                      "-E", "UTF8", "--no-sync", "--no-instructions"])
        options = (f"-p {server.port} -h 127.0.0.1 -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        _run(run_as, [str(bin_dir / "pg_ctl"), "-D", str(server.data), "-l",
                      str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"])
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server

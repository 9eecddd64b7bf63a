"""A real PostgreSQL server for tests, started once per test session.

Why a module of its own: several features (state store, alert rules) need to run their tests
against a real PostgreSQL, and starting one correctly as root in CI takes some care.

Use it from a test module::

    from pg_server import pg_server, pg_url   # noqa: F401  (pytest fixtures)

    def test_something(pg_url):            # a fresh, empty database for this test
        store = open_store(pg_url)

* ``pg_server`` (session scope) runs ``initdb`` in a temporary directory and ``pg_ctl start``
  with a unix socket only (no TCP port to collide with), and stops it at the end of the session.
  Under pytest-xdist every worker gets its own server.
* ``pg_url`` (function scope) gives a ``postgresql+psycopg://`` URL whose connections see
  only a new, empty schema of their own (``search_path`` set through the URL): as isolated
  as a fresh database for anything that does not name schemas, and much cheaper to make
  (``CREATE DATABASE`` copies ~8 MB per test). Use ``pg_server.create_database(name)`` when
  a test needs a whole database.
* PostgreSQL refuses to run as root. When the tests run as root (CI), the server runs as the
  ``postgres`` user that the Debian package creates (or ``nobody``), through ``runuser``.
* The tests are skipped, with the reason, only when the PostgreSQL binaries are absent.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
                     "/usr/lib/postgresql/15/bin")
SUPERUSER = "citystat"
_database_counter = itertools.count(1)


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl: $CITYSTAT_PG_BIN, a Debian path, or $PATH."""
    configured = os.environ.get("CITYSTAT_PG_BIN")
    candidates = [configured] if configured else []
    candidates += list(PG_BIN_CANDIDATES)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _unprivileged_user() -> str | None:
    """Who runs the server when we are root: `postgres` if it exists, else `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists; "
                       "PostgreSQL refuses to run as root")


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL server reachable through a unix socket."""

    bin_dir: Path
    base_dir: Path
    run_as: str | None
    port: int = 5432

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        """SQLAlchemy URL (psycopg 3 driver) for one database (and schema) on this server."""
        url = f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"
        if schema:
            url += f"&options=-csearch_path%3D{schema}"
        return url

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(self.bin_dir / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=100")
        self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-o", options,
                  "-l", self.base_dir / "server.log", "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg  # local: only needed when a PostgreSQL test actually runs

        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER,
                             dbname=database, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')  # names are ours, not input
        return self.url(name)

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """Create an empty schema and return a URL whose connections use only it."""
        self._admin(f'CREATE SCHEMA "{name}"', database)
        return self.url(database, schema=name)


def start_postgres_server() -> PostgresServer:
    """Start a server in a fresh temporary directory, or skip the test if none can exist."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install the Debian "
                    "package `postgresql` or set CITYSTAT_PG_BIN")
    # Not under pytest's tmp_path: that lives in a 0700 root-only folder the
    # unprivileged server user could not enter.
    base_dir = Path(tempfile.mkdtemp(prefix="citystat-pg-"))
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, run_as=_unprivileged_user())
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        log = base_dir / "server.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(base_dir, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL from {bin_dir}:\n{detail}") from None
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_postgres_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """URL of a new, empty schema (private search_path) for this one test."""
    return pg_server.create_schema(f"test_{os.getpid()}_{next(_database_counter)}")

"""Connection URLs, engines and the write-transaction retry loop for both back ends.

SQLite is tuned so that several threads and processes writing at once serialise instead of
failing: WAL journal (readers never block writers), a busy timeout, foreign keys on, and
every write transaction opened with ``BEGIN IMMEDIATE`` so the write lock is taken up front
(a deferred transaction that upgrades from read to write can fail with "database is locked"
without waiting). What still fails with "locked"/"busy" is retried with backoff.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from citystat.store.errors import StoreConfigError

T = TypeVar("T")

#: Execution option marking a connection as a writer (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "citystat_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_RETRY_SQLSTATES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock


def default_url() -> str:
    """Where the state lives when no URL is given.

    ``$CITYSTAT_STATE_URL`` (a URL), else ``$CITYSTAT_STATE`` (a URL or a file path), else
    ``$XDG_DATA_HOME/citystat/state.db`` (``~/.local/share/citystat/state.db``): outside the
    project's ``data/`` folder, which holds replaceable extracts, never state.
    """
    for variable in ("CITYSTAT_STATE_URL", "CITYSTAT_STATE"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value if "://" in value else f"sqlite:///{Path(value).expanduser().resolve()}"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data_home).expanduser().resolve() / 'citystat' / 'state.db'}"


def normalise_url(url: str | sa.URL | None) -> sa.URL:
    """Parse a store URL, choose the driver, and refuse what cannot hold state safely.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3);
    SQLite paths are made absolute; in-memory SQLite and paths inside a project's
    ``data/`` folder are refused.
    """
    text = default_url() if url is None else url
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise StoreConfigError(f"state store URL {str(text)!r} is not a URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend != "sqlite":
        raise StoreConfigError(
            f"state store URL {parsed.render_as_string(hide_password=True)!r}: unsupported "
            "scheme; use sqlite:///abs/path/state.db or postgresql://user@host/db")
    if not parsed.database or parsed.database == ":memory:":
        raise StoreConfigError(
            "state store URL: in-memory SQLite would lose every write when the process ends "
            "and cannot be shared between processes; give a file, e.g. sqlite:////abs/state.db")
    path = Path(parsed.database).expanduser().resolve()
    refuse_project_data_dir(path)
    return parsed.set(drivername="sqlite+pysqlite", database=str(path))


def refuse_project_data_dir(path: Path) -> None:
    """Raise if `path` lies inside a project's ``data/`` folder.

    ``data/`` holds extracts that are regenerated and replaced wholesale; state kept there
    would be deleted or published with them. A ``data`` folder counts as a project's when it
    sits next to a ``metrics.yaml`` or is this repository's own ``data/``.
    """
    for folder in path.parents:
        if folder.name == "data" and (
                (folder.parent / "metrics.yaml").exists() or folder.parent == PROJECT_ROOT):
            raise StoreConfigError(
                f"state store file {path} is inside the project data folder {folder}; "
                "keep state outside data/ (default: ~/.local/share/citystat/state.db, "
                "or set CITYSTAT_STATE_URL)")


def make_engine(url: str | sa.URL | None = None) -> sa.Engine:
    """A SQLAlchemy engine for the store URL, with SQLite tuned for concurrent writers."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection, _connection_record) -> None:
    # Driver-level autocommit: the "begin" listener below issues BEGIN itself, so that
    # writers can ask for BEGIN IMMEDIATE (the sqlite3 module would issue a plain BEGIN).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous = FULL")  # a committed write survives power loss
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _switch_to_wal(cursor, attempts: int = 50) -> None:
    """Put the file in WAL mode (a persistent setting, so usually already done).

    Switching needs an exclusive lock and SQLite does not call the busy handler for it, so
    processes opening a fresh file at the same moment get "database is locked": retry.
    """
    for attempt in range(attempts):
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except Exception as exc:  # sqlite3.OperationalError
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(min(0.2, 0.005 * 2 ** attempt) * (0.5 + random.random()))
            continue
        if str(mode).lower() != "wal":
            raise StoreConfigError(f"SQLite refused WAL mode (journal_mode is {mode!r}); "
                                   "is the state file on a network file system?")
        return


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


def is_retryable(exc: BaseException) -> bool:
    """True for transient lock errors that a new attempt of the same transaction can fix."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.DBAPIError):
        return False
    original = getattr(exc, "orig", None)
    if getattr(original, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    message = str(original or exc).lower()
    return "database is locked" in message or "database is busy" in message


def write_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T],
                      attempts: int = 10) -> T:
    """Run `work(conn)` in one write transaction, retrying transient lock failures.

    `work` must only touch the database through `conn`: a retry runs it again from the
    start in a new transaction, and a failed attempt has been rolled back entirely.
    """
    writer = engine.execution_options(**{WRITE_OPTION: True})
    for attempt in range(attempts):
        try:
            with writer.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            time.sleep(min(1.0, 0.02 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")

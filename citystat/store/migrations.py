"""Schema migrations: an ordered list applied when a store is opened.

The database records the versions it has in ``schema_version``. Opening a store applies,
in order and in one transaction (DDL is transactional on both back ends), every migration
above the recorded version. The run holds a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped
advisory lock), so two processes opening the same fresh database at once cannot both apply
a migration: the second waits, then finds nothing left to do.

To add a migration: append ``Migration(N + 1, "what it does", function)`` to
``MIGRATIONS``; the function receives the open connection and must work on both SQLite and
PostgreSQL (use SQLAlchemy constructs or the helpers below). Change the table in
``schema.py`` as well, so new databases and old ones end up with the same tables. Never edit
or reorder a migration that has been released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from citystat.store import schema
from citystat.store.engine import write_transaction
from citystat.store.errors import SchemaTooNew

#: Arbitrary constant naming CityStat's migration lock among PostgreSQL advisory locks.
ADVISORY_LOCK_KEY = 0x0C175747


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def create_tables(*tables: sa.Table) -> Callable[[sa.Connection], None]:
    """A migration step creating `tables` (with their indexes) if absent."""
    def apply(conn: sa.Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)
    return apply


def add_column(table: sa.Table, column_name: str) -> Callable[[sa.Connection], None]:
    """A migration step adding `table.c[column_name]` (as declared in schema.py) if absent.

    The column must be nullable or have a server default, as for any ALTER TABLE ADD.
    """
    def apply(conn: sa.Connection) -> None:
        existing = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        if column_name in existing:
            return  # a database created after this column joined schema.py already has it
        column = table.c[column_name]
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, commitments, narratives, annotations and the audit log",
              create_tables(schema.sessions, schema.commitments, schema.narratives,
                            schema.annotations, schema.audit_log)),
    Migration(2, "alerts raised by alert rules; saved Explore notebooks",
              create_tables(schema.alerts, schema.notebooks)),
    Migration(3, "deliveries: each session's packet and memo e-mailed exactly once",
              create_tables(schema.deliveries)),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: sa.Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def migrate(engine: sa.Engine, target: int | None = None) -> list[int]:
    """Bring the database up to `target` (default: the latest); return the versions applied.

    Safe to call from several processes at once, and a no-op when already up to date.
    """
    target = LATEST_VERSION if target is None else target
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"target schema version {target} is not between 0 and {LATEST_VERSION}")
    with engine.connect() as conn:
        found = current_version(conn)
    _refuse_newer(found)
    if found >= target:
        return []
    return write_transaction(engine, lambda conn: _apply_locked(conn, target))


def _refuse_newer(found: int) -> None:
    if found > LATEST_VERSION:
        raise SchemaTooNew(
            f"the state database is at schema version {found} but this CityStat only knows "
            f"versions up to {LATEST_VERSION}; upgrade CityStat (never downgrade a store)")


def _apply_locked(conn: sa.Connection, target: int) -> list[int]:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    schema.schema_version.create(conn, checkfirst=True)
    found = current_version(conn)  # again, under the lock: another process may have won
    _refuse_newer(found)
    applied = []
    for migration in MIGRATIONS:
        if found < migration.version <= target:
            migration.apply(conn)
            conn.execute(schema.schema_version.insert().values(
                version=migration.version, description=migration.description,
                applied_at=datetime.now(UTC)))
            applied.append(migration.version)
    return applied

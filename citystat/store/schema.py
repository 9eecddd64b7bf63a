"""The one schema definition shared by SQLite and PostgreSQL (SQLAlchemy Core tables).

Every table a migration creates is defined here; `migrations.py` says which migration
creates or alters which table. Every editable row carries a `version` counter for
optimistic concurrency (see `Store.update_commitment`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

COMMITMENT_STATUSES = ("open", "done", "dropped")
ALERT_STATUSES = ("open", "acknowledged")
AUDIT_ACTIONS = ("create", "update", "delete")
DELIVERY_KINDS = ("packet", "memo")
DELIVERY_STATUSES = ("sending", "sent", "failed")


class UTCDateTime(sa.TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, whatever the back end.

    SQLite has no time-zone type, so it stores naive UTC text; PostgreSQL stores
    `timestamptz`. Naive datetimes are refused on the way in: a naive value is ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timestamps in UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    # none_as_null: Python None is SQL NULL, not the JSON literal 'null'.
    return sa.JSON(none_as_null=True)


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    ]


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("department", sa.String(200), nullable=True),
    sa.Column("topic", sa.String(200), nullable=True),
    sa.Column("title", sa.String(200), nullable=True),
    sa.Column("session_date", sa.Date, nullable=False),
    *_audit_columns(),
    sa.CheckConstraint("department IS NOT NULL OR topic IS NOT NULL",
                       name="session_has_department_or_topic"),
    sa.Index("ix_sessions_department_date", "department", "session_date"),
    sqlite_autoincrement=True,
)

commitments = sa.Table(
    "commitments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("department", sa.String(200), nullable=False),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("metric_id", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    *_audit_columns(),
    sa.CheckConstraint("status IN ('open', 'done', 'dropped')", name="commitment_status"),
    sa.Index("ix_commitments_department_status", "department", "status"),
    sa.Index("ix_commitments_status_due", "status", "due_date"),
    sa.Index("ix_commitments_session", "session_id"),
    sqlite_autoincrement=True,
)

narratives = sa.Table(
    "narratives", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.String(200), nullable=False),
    sa.Column("grain", sa.String(32), nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("what_happened", sa.Text, nullable=False),
    sa.Column("why", sa.Text, nullable=False),
    sa.Column("whats_next", sa.Text, nullable=False),
    *_audit_columns(),
    sa.UniqueConstraint("metric_id", "grain", "period_start", name="uq_narrative_period"),
    sqlite_autoincrement=True,
)

annotations = sa.Table(
    "annotations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.String(200), nullable=False),
    sa.Column("on_date", sa.Date, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    *_audit_columns(),
    sa.Index("ix_annotations_metric", "metric_id", "on_date"),
    sqlite_autoincrement=True,
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("entity_id", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("before", _json(), nullable=True),
    sa.Column("after", _json(), nullable=True),
    sa.CheckConstraint("action IN ('create', 'update', 'delete')", name="audit_action"),
    sa.Index("ix_audit_entity", "entity", "entity_id"),
    sqlite_autoincrement=True,
)

# --- added by migration 2 (alert rules, Explore notebooks) ---------------------------

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rule_id", sa.String(200), nullable=False),
    sa.Column("key", sa.String(500), nullable=False),
    sa.Column("department", sa.String(200), nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("payload", _json(), nullable=True),
    sa.Column("raised_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
    sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
    sa.Column("notified_at", UTCDateTime(), nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("rule_id", "key", name="uq_alert_rule_key"),
    sa.CheckConstraint("status IN ('open', 'acknowledged')", name="alert_status"),
    sa.Index("ix_alerts_status_department", "status", "department"),
    sqlite_autoincrement=True,
)

notebooks = sa.Table(
    "notebooks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("cells", _json(), nullable=False),
    *_audit_columns(),
    sa.UniqueConstraint("name", name="uq_notebook_name"),
    sqlite_autoincrement=True,
)

# --- added by migration 3 (stat-session documents e-mailed by `deliver`) -------------

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("series_id", sa.String(200), nullable=False),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("department", sa.String(200), nullable=True),
    sa.Column("topic", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("recipients", _json(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("message_id", sa.String(500), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("series_id", "session_date", "kind", name="uq_delivery_once"),
    sa.CheckConstraint("kind IN ('packet', 'memo')", name="delivery_kind"),
    sa.CheckConstraint("status IN ('sending', 'sent', 'failed')", name="delivery_status"),
    sqlite_autoincrement=True,
)

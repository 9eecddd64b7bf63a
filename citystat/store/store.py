"""The state store: one small interface over SQLite or PostgreSQL.

Every write takes an `actor` and records an audit row (who, when, before, after) in the same
transaction as the change, so the trail can never disagree with the data. Updates use
optimistic concurrency: the caller passes the `version` it read, and if someone else has
changed the row since, `ConflictError` carries the current row instead of overwriting it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from citystat.store import schema
from citystat.store import validate as check
from citystat.store.engine import make_engine, write_transaction
from citystat.store.errors import ConflictError, InvalidInput, NotFound
from citystat.store.migrations import migrate
from citystat.store.models import (Alert, Annotation, AuditEntry, Commitment, Delivery, Narrative, Notebook, ReviewItem,
                                   Session, from_row)
from citystat.core.periods import GRAINS

T = TypeVar("T")


def open_store(url: str | None = None) -> Store:
    """Open (creating and migrating if needed) the state store at `url`.

    `url` is ``sqlite:///abs/path/state.db`` or ``postgresql://user@host/db``; by default
    ``$CITYSTAT_STATE_URL``, ``$CITYSTAT_STATE``, else ``~/.local/share/citystat/state.db``.
    """
    return Store(make_engine(url))


def _now() -> datetime:
    return datetime.now(UTC)


def _jsonable(row: Any) -> dict:
    """A row as a JSON-ready dict for the audit trail (dates as ISO text)."""
    out = {}
    for key, value in row._mapping.items():
        out[key] = value.isoformat() if isinstance(value, date | datetime) else value
    return out


class Store:
    """Sessions, commitments, narratives, annotations, alerts, notebooks and their audit."""

    def __init__(self, engine: sa.Engine, *, target_version: int | None = None) -> None:
        self.engine = engine
        try:
            migrate(engine, target_version)
        except BaseException:
            engine.dispose()
            raise

    # -- plumbing ----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        return write_transaction(self.engine, work)

    def _rows(self, statement: sa.Executable) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(statement))

    def _audit(self, conn: sa.Connection, actor: str, entity: str, entity_id: Any,
               action: str, before: sa.Row | None, after: sa.Row | None) -> None:
        conn.execute(schema.audit_log.insert().values(
            at=_now(), actor=actor, entity=entity, entity_id=str(entity_id), action=action,
            before=None if before is None else _jsonable(before),
            after=None if after is None else _jsonable(after)))

    def _insert(self, conn: sa.Connection, table: sa.Table, entity: str, actor: str,
                values: dict) -> sa.Row:
        now = _now()
        if "created_at" in table.c:
            values = {"created_at": now, "created_by": actor, "updated_at": now,
                      "updated_by": actor, **values}
        row = conn.execute(table.insert().values(**values).returning(*table.c)).one()
        self._audit(conn, actor, entity, row.id, "create", None, row)
        return row

    @staticmethod
    def _locked(conn: sa.Connection, table: sa.Table, row_id: int) -> sa.Row | None:
        # FOR UPDATE on PostgreSQL; on SQLite BEGIN IMMEDIATE already holds the write lock.
        statement = sa.select(table).where(table.c.id == row_id).with_for_update()
        return conn.execute(statement).one_or_none()

    def _update(self, conn: sa.Connection, table: sa.Table, entity: str, model: type,
                row_id: int, expected_version: int | None, actor: str,
                changes: dict | Callable[[sa.Row], dict]) -> sa.Row:
        """Apply `changes` to one row if it is still at `expected_version`; audit it."""
        before = self._locked(conn, table, row_id)
        if before is None:
            raise NotFound(entity, row_id)
        if expected_version is not None and before.version != expected_version:
            raise ConflictError(entity, row_id, expected_version, from_row(model, before))
        values = changes(before) if callable(changes) else dict(changes)
        if "updated_at" in table.c:
            values.update(updated_at=_now(), updated_by=actor)
        result = conn.execute(
            table.update()
            .where(table.c.id == row_id, table.c.version == before.version)
            .values(**values, version=before.version + 1))
        if result.rowcount != 1:  # cannot happen while we hold the lock; never hide it
            raise ConflictError(entity, row_id, before.version, from_row(model, before))
        after = conn.execute(sa.select(table).where(table.c.id == row_id)).one()
        self._audit(conn, actor, entity, row_id, "update", before, after)
        return after

    def _delete(self, conn: sa.Connection, table: sa.Table, entity: str, model: type,
                row_id: int, expected_version: int | None, actor: str) -> None:
        before = self._locked(conn, table, row_id)
        if before is None:
            raise NotFound(entity, row_id)
        if expected_version is not None and before.version != expected_version:
            raise ConflictError(entity, row_id, expected_version, from_row(model, before))
        conn.execute(table.delete().where(table.c.id == row_id))
        self._audit(conn, actor, entity, row_id, "delete", before, None)

    def _get(self, table: sa.Table, model: type[T], entity: str, row_id: int) -> T:
        check.identifier(f"{entity}_id", row_id)
        rows = self._rows(sa.select(table).where(table.c.id == row_id))
        if not rows:
            raise NotFound(entity, row_id)
        return from_row(model, rows[0])

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, department: str | None, session_date: date | str,
                       title: str | None = None, topic: str | None = None, *,
                       actor: str) -> Session:
        """Record a stat session of a department, or of a cross-department topic."""
        actor = check.name("actor", actor)
        department = None if department is None else check.name("department", department)
        topic = check.optional_text("topic", topic, max_length=check.NAME_MAX)
        if department is None and topic is None:
            raise InvalidInput("department", "give a department, or a topic for a "
                                             "cross-department session")
        values = {"department": department, "topic": topic,
                  "title": check.optional_text("title", title, max_length=check.NAME_MAX),
                  "session_date": check.a_date("session_date", session_date)}
        row = self._write(lambda conn: self._insert(conn, schema.sessions, "session", actor,
                                                    values))
        return from_row(Session, row)

    def get_session(self, session_id: int) -> Session:
        return self._get(schema.sessions, Session, "session", session_id)

    def list_sessions(self, department: str | None = None) -> list[Session]:
        """Sessions, newest first; only one department's when given."""
        t = schema.sessions
        statement = sa.select(t).order_by(t.c.session_date.desc(), t.c.id.desc())
        if department is not None:
            statement = statement.where(t.c.department == department)
        return [from_row(Session, r) for r in self._rows(statement)]

    def previous_session(self, department: str, before_date: date | str) -> Session | None:
        """The department's latest session strictly before `before_date`."""
        before_date = check.a_date("before_date", before_date)
        t = schema.sessions
        rows = self._rows(sa.select(t)
                          .where(t.c.department == department, t.c.session_date < before_date)
                          .order_by(t.c.session_date.desc(), t.c.id.desc()).limit(1))
        return from_row(Session, rows[0]) if rows else None

    # -- commitments -------------------------------------------------------------------

    def create_commitment(self, session_id: int, what: str, owner: str,
                          due_date: date | str, metric_id: str | None = None,
                          department: str | None = None, *, actor: str) -> Commitment:
        """Record a commitment made at a session; its department defaults to the session's."""
        actor = check.name("actor", actor)
        check.identifier("session_id", session_id)
        values = {"session_id": session_id, "what": check.text("what", what),
                  "owner": check.name("owner", owner),
                  "due_date": check.a_date("due_date", due_date),
                  "metric_id": None if metric_id is None else check.name("metric_id", metric_id),
                  "status": "open"}
        if department is not None:
            department = check.name("department", department)

        def work(conn: sa.Connection) -> sa.Row:
            session = conn.execute(sa.select(schema.sessions)
                                   .where(schema.sessions.c.id == session_id)).one_or_none()
            if session is None:
                raise InvalidInput("session_id", f"no session with id {session_id}")
            owning = department or session.department
            if owning is None:
                raise InvalidInput("department", "required for a commitment made at the "
                                                 f"cross-department session {session_id}")
            return self._insert(conn, schema.commitments, "commitment", actor,
                                {**values, "department": owning})

        return from_row(Commitment, self._write(work))

    def get_commitment(self, commitment_id: int) -> Commitment:
        return self._get(schema.commitments, Commitment, "commitment", commitment_id)

    def update_commitment(self, commitment_id: int, *, expected_version: int, actor: str,
                          status: str | None = None, note: str | None = None,
                          due_date: date | str | None = None, owner: str | None = None,
                          what: str | None = None) -> Commitment:
        """Change a commitment read at `expected_version`; raises ConflictError if stale.

        Closing it (done/dropped) stamps `closed_at`; reopening clears it.
        """
        actor = check.name("actor", actor)
        check.identifier("commitment_id", commitment_id)
        check.version("expected_version", expected_version)
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = check.one_of("status", status, schema.COMMITMENT_STATUSES)
        if note is not None:
            changes["note"] = check.text("note", note)
        if due_date is not None:
            changes["due_date"] = check.a_date("due_date", due_date)
        if owner is not None:
            changes["owner"] = check.name("owner", owner)
        if what is not None:
            changes["what"] = check.text("what", what)
        if not changes:
            raise InvalidInput("status", "nothing to update: give status, note, due_date, "
                                         "owner or what")

        def with_closed_at(before: sa.Row) -> dict:
            values = dict(changes)
            new_status = values.get("status", before.status)
            if new_status == "open":
                values["closed_at"] = None
            elif before.status == "open":
                values["closed_at"] = _now()
            return values

        row = self._write(lambda conn: self._update(
            conn, schema.commitments, "commitment", Commitment, commitment_id,
            expected_version, actor, with_closed_at))
        return from_row(Commitment, row)

    def list_commitments(self, status: str | None = None, department: str | None = None,
                         owner: str | None = None, overdue_on: date | str | None = None,
                         metric_id: str | None = None,
                         session_id: int | None = None) -> list[Commitment]:
        """Commitments across the city, by due date; every filter given must match.

        `overdue_on` keeps only open commitments due before that date.
        """
        t = schema.commitments
        statement = sa.select(t).order_by(t.c.due_date, t.c.id)
        if status is not None:
            statement = statement.where(
                t.c.status == check.one_of("status", status, schema.COMMITMENT_STATUSES))
        if overdue_on is not None:
            statement = statement.where(t.c.status == "open",
                                        t.c.due_date < check.a_date("overdue_on", overdue_on))
        for column, value in (("department", department), ("owner", owner),
                              ("metric_id", metric_id), ("session_id", session_id)):
            if value is not None:
                statement = statement.where(t.c[column] == value)
        return [from_row(Commitment, r) for r in self._rows(statement)]

    def commitments_for_review(self, department: str,
                               session_date: date | str) -> list[ReviewItem]:
        """What a department's session on `session_date` should review.

        Every commitment of the department made at an earlier session (of any department
        or topic) that is still open, plus those closed since the department's previous
        session (or ever, when there was none). Overdue means still open and due before
        `session_date`. Overdue first, then the rest of the open ones, then the closed,
        each by due date.
        """
        department = check.name("department", department)
        session_date = check.a_date("session_date", session_date)
        previous = self.previous_session(department, session_date)
        c, s = schema.commitments, schema.sessions
        rows = self._rows(sa.select(c).join(s, s.c.id == c.c.session_id)
                          .where(c.c.department == department, s.c.session_date < session_date)
                          .order_by(c.c.due_date, c.c.id))
        since = (datetime.combine(previous.session_date, datetime.min.time(), UTC)
                 if previous else None)
        until = datetime.combine(session_date, datetime.max.time(), UTC)
        items = []
        for row in rows:
            commitment = from_row(Commitment, row)
            if commitment.status == "open":
                items.append(ReviewItem(commitment, commitment.is_overdue(session_date), False))
            elif (commitment.closed_at is not None and commitment.closed_at <= until
                  and (since is None or commitment.closed_at >= since)):
                items.append(ReviewItem(commitment, False, True))
        return sorted(items, key=lambda i: (not i.overdue, i.closed_since_previous))

    # -- narratives --------------------------------------------------------------------

    def save_narrative(self, metric_id: str, grain: str, period_start: date | str,
                       what_happened: str, why: str, whats_next: str, *, actor: str,
                       expected_version: int | None = None) -> Narrative:
        """Create the story of one KPI period, or replace it (pass the version you read).

        With `expected_version=None` the caller believes there is no story yet; if one
        exists (perhaps written a moment ago by someone else) ConflictError carries it.
        """
        actor = check.name("actor", actor)
        key = {"metric_id": check.name("metric_id", metric_id),
               "grain": check.one_of("grain", grain, GRAINS),
               "period_start": check.a_date("period_start", period_start)}
        story = {"what_happened": check.text("what_happened", what_happened),
                 "why": self._maybe_empty("why", why),
                 "whats_next": self._maybe_empty("whats_next", whats_next)}
        if expected_version is not None:
            check.version("expected_version", expected_version)
        t = schema.narratives

        def work(conn: sa.Connection) -> sa.Row:
            existing = conn.execute(
                sa.select(t).where(*(t.c[k] == v for k, v in key.items())).with_for_update()
            ).one_or_none()
            if existing is None:
                if expected_version is not None:
                    raise NotFound("narrative", tuple(key.values()))
                return self._insert(conn, t, "narrative", actor, {**key, **story})
            if expected_version is None:
                raise ConflictError("narrative", existing.id, None,
                                    from_row(Narrative, existing))
            return self._update(conn, t, "narrative", Narrative, existing.id,
                                expected_version, actor, story)

        try:
            row = self._write(work)
        except sa.exc.IntegrityError:
            # PostgreSQL: another writer created the same story between our check and insert.
            current = self.get_narrative(**key)
            raise ConflictError("narrative", getattr(current, "id", None), expected_version,
                                current) from None
        return from_row(Narrative, row)

    @staticmethod
    def _maybe_empty(field: str, value: Any) -> str:
        """Text that may be left blank ('why' is not always known yet)."""
        if isinstance(value, str) and not value.strip():
            return value
        return check.text(field, value)

    def get_narrative(self, metric_id: str, grain: str,
                      period_start: date | str) -> Narrative | None:
        t = schema.narratives
        rows = self._rows(sa.select(t).where(
            t.c.metric_id == metric_id, t.c.grain == grain,
            t.c.period_start == check.a_date("period_start", period_start)))
        return from_row(Narrative, rows[0]) if rows else None

    def list_narratives(self, metric_id: str, grain: str | None = None) -> list[Narrative]:
        """A KPI's stories, newest period first."""
        t = schema.narratives
        statement = (sa.select(t).where(t.c.metric_id == metric_id)
                     .order_by(t.c.period_start.desc(), t.c.grain))
        if grain is not None:
            statement = statement.where(t.c.grain == grain)
        return [from_row(Narrative, r) for r in self._rows(statement)]

    # -- annotations -------------------------------------------------------------------

    def add_annotation(self, metric_id: str, on_date: date | str, text: str, *,
                       actor: str) -> Annotation:
        """A dated note drawn on every trend chart of the KPI."""
        actor = check.name("actor", actor)
        values = {"metric_id": check.name("metric_id", metric_id),
                  "on_date": check.a_date("on_date", on_date), "text": check.text("text", text)}
        row = self._write(lambda conn: self._insert(conn, schema.annotations, "annotation",
                                                    actor, values))
        return from_row(Annotation, row)

    def update_annotation(self, annotation_id: int, *, expected_version: int, actor: str,
                          text: str | None = None,
                          on_date: date | str | None = None) -> Annotation:
        actor = check.name("actor", actor)
        check.identifier("annotation_id", annotation_id)
        check.version("expected_version", expected_version)
        changes: dict[str, Any] = {}
        if text is not None:
            changes["text"] = check.text("text", text)
        if on_date is not None:
            changes["on_date"] = check.a_date("on_date", on_date)
        if not changes:
            raise InvalidInput("text", "nothing to update: give text or on_date")
        row = self._write(lambda conn: self._update(
            conn, schema.annotations, "annotation", Annotation, annotation_id,
            expected_version, actor, changes))
        return from_row(Annotation, row)

    def list_annotations(self, metric_id: str, start: date | str | None = None,
                         end: date | str | None = None) -> list[Annotation]:
        """A KPI's notes in date order, optionally only those from `start` to `end`."""
        t = schema.annotations
        statement = sa.select(t).where(t.c.metric_id == metric_id).order_by(t.c.on_date, t.c.id)
        if start is not None:
            statement = statement.where(t.c.on_date >= check.a_date("start", start))
        if end is not None:
            statement = statement.where(t.c.on_date <= check.a_date("end", end))
        return [from_row(Annotation, r) for r in self._rows(statement)]

    def delete_annotation(self, annotation_id: int, *, actor: str,
                          expected_version: int | None = None) -> None:
        """Delete a note; the audit trail keeps its text."""
        actor = check.name("actor", actor)
        check.identifier("annotation_id", annotation_id)
        self._write(lambda conn: self._delete(conn, schema.annotations, "annotation",
                                              Annotation, annotation_id, expected_version,
                                              actor))

    # -- alerts ------------------------------------------------------------------------

    def raise_alert(self, rule_id: str, key: str, summary: str, *, actor: str,
                    department: str | None = None, payload: Any = None,
                    raised_at: datetime | None = None) -> tuple[Alert, bool]:
        """Raise an alert unless (rule_id, key) was raised before: returns (alert, created).

        Atomic under concurrency: the unique constraint on (rule_id, key) and
        INSERT .. ON CONFLICT DO NOTHING mean that of several writers racing with the
        same key exactly one creates the alert; the others get that alert back.
        """
        actor = check.name("actor", actor)
        if raised_at is not None and raised_at.tzinfo is None:
            raise InvalidInput("raised_at", "must be timezone-aware (UTC)")
        values = {"rule_id": check.name("rule_id", rule_id),
                  "key": check.text("key", key, max_length=check.KEY_MAX),
                  "summary": check.text("summary", summary),
                  "department": None if department is None
                  else check.name("department", department),
                  "payload": check.json_value("payload", payload),
                  "raised_at": raised_at or _now(), "status": "open"}
        t = schema.alerts

        def work(conn: sa.Connection) -> tuple[sa.Row, bool]:
            dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
            statement = (dialect.insert(t).values(**values)
                         .on_conflict_do_nothing(index_elements=["rule_id", "key"])
                         .returning(*t.c))
            row = conn.execute(statement).one_or_none()
            if row is not None:
                self._audit(conn, actor, "alert", row.id, "create", None, row)
                return row, True
            existing = conn.execute(sa.select(t).where(
                t.c.rule_id == values["rule_id"], t.c.key == values["key"])).one()
            return existing, False

        row, created = self._write(work)
        return from_row(Alert, row), created

    def get_alert(self, alert_id: int) -> Alert:
        return self._get(schema.alerts, Alert, "alert", alert_id)

    def mark_notified(self, alert_id: int, *, actor: str,
                      at: datetime | None = None) -> Alert:
        """Record that the owners were told about the alert (e-mail sent)."""
        actor = check.name("actor", actor)
        check.identifier("alert_id", alert_id)
        if at is not None and at.tzinfo is None:
            raise InvalidInput("at", "must be timezone-aware (UTC)")
        row = self._write(lambda conn: self._update(
            conn, schema.alerts, "alert", Alert, alert_id, None, actor,
            {"notified_at": at or _now()}))
        return from_row(Alert, row)

    def acknowledge(self, alert_id: int, *, actor: str) -> Alert:
        """Mark an alert acknowledged by `actor`; acknowledging twice keeps the first."""
        actor = check.name("actor", actor)
        check.identifier("alert_id", alert_id)
        t = schema.alerts

        def work(conn: sa.Connection) -> sa.Row:
            current = self._locked(conn, t, alert_id)
            if current is None:
                raise NotFound("alert", alert_id)
            if current.status == "acknowledged":
                return current
            return self._update(conn, t, "alert", Alert, alert_id, current.version, actor,
                                {"status": "acknowledged", "acknowledged_by": actor,
                                 "acknowledged_at": _now()})

        return from_row(Alert, self._write(work))

    def list_alerts(self, status: str | None = None, department: str | None = None,
                    rule_id: str | None = None,
                    notified: bool | None = None) -> list[Alert]:
        """Alerts, newest first; `notified=False` gives those nobody was told about yet."""
        t = schema.alerts
        statement = sa.select(t).order_by(t.c.raised_at.desc(), t.c.id.desc())
        if status is not None:
            statement = statement.where(
                t.c.status == check.one_of("status", status, schema.ALERT_STATUSES))
        if department is not None:
            statement = statement.where(t.c.department == department)
        if rule_id is not None:
            statement = statement.where(t.c.rule_id == rule_id)
        if notified is not None:
            statement = statement.where(
                t.c.notified_at.is_not(None) if notified else t.c.notified_at.is_(None))
        return [from_row(Alert, r) for r in self._rows(statement)]

    # -- deliveries (stat-session packets and memos e-mailed by `deliver`) -----------------

    def claim_delivery(self, series_id: str, session_date: date | str, kind: str, *, actor: str,
                       recipients: list[str], department: str | None = None,
                       topic: str | None = None, at: datetime | None = None,
                       stale_after: float = 3600.0) -> Delivery | None:
        """Claim the right to send one session's document; None when it is not ours to send.

        Exactly once: the unique key (series, session date, kind) and INSERT .. ON CONFLICT
        DO NOTHING mean that of several processes racing, one claims it. A claim that failed
        (``finish_delivery(sent=False)``) can be claimed again by a later run; so can one
        left ``sending`` for `stale_after` seconds (its process died mid-send).
        """
        actor = check.name("actor", actor)
        values = {"series_id": check.name("series_id", series_id),
                  "session_date": check.a_date("session_date", session_date),
                  "kind": check.one_of("kind", kind, schema.DELIVERY_KINDS),
                  "department": department, "topic": topic,
                  "recipients": check.json_value("recipients", list(recipients)),
                  "status": "sending", "attempts": 1,
                  "claimed_at": at or _now(), "claimed_by": actor}
        if values["claimed_at"].tzinfo is None:
            raise InvalidInput("at", "must be timezone-aware (UTC)")
        t = schema.deliveries

        def work(conn: sa.Connection) -> sa.Row | None:
            dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
            row = conn.execute(dialect.insert(t).values(**values)
                               .on_conflict_do_nothing(index_elements=["series_id", "session_date", "kind"])
                               .returning(*t.c)).one_or_none()
            if row is not None:
                self._audit(conn, actor, "delivery", row.id, "create", None, row)
                return row
            existing = conn.execute(sa.select(t).where(
                t.c.series_id == values["series_id"], t.c.session_date == values["session_date"],
                t.c.kind == values["kind"]).with_for_update()).one()
            stale = (existing.status == "sending"
                     and (values["claimed_at"] - existing.claimed_at).total_seconds() > stale_after)
            if existing.status != "failed" and not stale:
                return None
            return self._update(conn, t, "delivery", Delivery, existing.id, existing.version, actor,
                                {"status": "sending", "attempts": existing.attempts + 1,
                                 "claimed_at": values["claimed_at"], "claimed_by": actor,
                                 "recipients": values["recipients"], "error": None})

        row = self._write(work)
        return None if row is None else from_row(Delivery, row)

    def finish_delivery(self, delivery_id: int, *, actor: str, sent: bool, at: datetime | None = None,
                        message_id: str | None = None, error: str | None = None) -> Delivery:
        """Record that a claimed document went out (``sent``) or failed (retried by the next run)."""
        actor = check.name("actor", actor)
        check.identifier("delivery_id", delivery_id)
        changes = {"status": "sent" if sent else "failed", "error": error,
                   "sent_at": (at or _now()) if sent else None, "message_id": message_id}
        row = self._write(lambda conn: self._update(conn, schema.deliveries, "delivery", Delivery,
                                                    delivery_id, None, actor, changes))
        return from_row(Delivery, row)

    def list_deliveries(self, series_id: str | None = None, kind: str | None = None,
                        status: str | None = None) -> list[Delivery]:
        """Deliveries, newest session first."""
        t = schema.deliveries
        statement = sa.select(t).order_by(t.c.session_date.desc(), t.c.kind, t.c.id)
        for column, value in (("series_id", series_id), ("kind", kind), ("status", status)):
            if value is not None:
                statement = statement.where(t.c[column] == value)
        return [from_row(Delivery, r) for r in self._rows(statement)]

    # -- notebooks ---------------------------------------------------------------------

    def save_notebook(self, name: str, cells: list, *, actor: str,
                      expected_version: int | None = None,
                      overwrite: bool = False) -> Notebook:
        """Save an Explore notebook under `name`.

        A new name is created. An existing one is replaced only if `expected_version` is
        the version the caller loaded, or `overwrite=True` (deliberate last-writer-wins;
        the replaced cells stay in the audit trail). Otherwise ConflictError.
        """
        actor = check.name("actor", actor)
        name = check.name("name", name)
        if not isinstance(cells, list):
            raise InvalidInput("cells", f"must be a list of cells, got {type(cells).__name__}")
        check.json_value("cells", cells)
        if expected_version is not None:
            check.version("expected_version", expected_version)
        t = schema.notebooks

        def work(conn: sa.Connection) -> sa.Row:
            existing = conn.execute(
                sa.select(t).where(t.c.name == name).with_for_update()).one_or_none()
            if existing is None:
                if expected_version is not None:
                    raise NotFound("notebook", name)
                return self._insert(conn, t, "notebook", actor,
                                    {"name": name, "owner": actor, "cells": cells})
            if expected_version is None and not overwrite:
                raise ConflictError("notebook", name, None, from_row(Notebook, existing))
            return self._update(conn, t, "notebook", Notebook, existing.id,
                                None if overwrite else expected_version, actor,
                                {"cells": cells})

        try:
            row = self._write(work)
        except sa.exc.IntegrityError:
            raise ConflictError("notebook", name, expected_version,
                                self.load_notebook(name)) from None
        return from_row(Notebook, row)

    def load_notebook(self, name: str) -> Notebook | None:
        t = schema.notebooks
        rows = self._rows(sa.select(t).where(t.c.name == name))
        return from_row(Notebook, rows[0]) if rows else None

    def list_notebooks(self, owner: str | None = None) -> list[Notebook]:
        t = schema.notebooks
        statement = sa.select(t).order_by(t.c.name)
        if owner is not None:
            statement = statement.where(t.c.owner == owner)
        return [from_row(Notebook, r) for r in self._rows(statement)]

    def delete_notebook(self, name: str, *, actor: str,
                        expected_version: int | None = None) -> None:
        actor = check.name("actor", actor)
        t = schema.notebooks

        def work(conn: sa.Connection) -> None:
            existing = conn.execute(sa.select(t.c.id).where(t.c.name == name)).one_or_none()
            if existing is None:
                raise NotFound("notebook", name)
            self._delete(conn, t, "notebook", Notebook, existing.id, expected_version, actor)

        self._write(work)

    # -- audit -------------------------------------------------------------------------

    def audit_log(self, entity: str | None = None, entity_id: Any = None,
                  actor: str | None = None, limit: int | None = 100) -> list[AuditEntry]:
        """Changes, newest first; `limit=None` for all of them."""
        t = schema.audit_log
        statement = sa.select(t).order_by(t.c.id.desc())
        if entity is not None:
            statement = statement.where(t.c.entity == entity)
        if entity_id is not None:
            statement = statement.where(t.c.entity_id == str(entity_id))
        if actor is not None:
            statement = statement.where(t.c.actor == actor)
        if limit is not None:
            statement = statement.limit(limit)
        return [from_row(AuditEntry, r) for r in self._rows(statement)]

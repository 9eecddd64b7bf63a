"""Plain records returned by the store. Dates are `date`; timestamps are aware UTC."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, TypeVar

R = TypeVar("R")


def from_row(cls: type[R], row: Any) -> R:
    """Build a record from a SQLAlchemy row mapping, taking only the fields it declares."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Session:
    """A stat session: a department (or a cross-department topic) on a date."""

    id: int
    department: str | None
    topic: str | None
    title: str | None
    session_date: date
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int


@dataclass(frozen=True, slots=True)
class Commitment:
    """Something promised at a session: what, who, by when; open until done or dropped."""

    id: int
    session_id: int
    department: str
    what: str
    owner: str
    due_date: date
    metric_id: str | None
    status: str
    note: str | None
    closed_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int

    def is_overdue(self, on: date) -> bool:
        """Still open and its due date is before `on`."""
        return self.status == "open" and self.due_date < on


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One commitment on the review list of a session."""

    commitment: Commitment
    overdue: bool
    closed_since_previous: bool


@dataclass(frozen=True, slots=True)
class Narrative:
    """The department's story behind the curve of one KPI in one period."""

    id: int
    metric_id: str
    grain: str
    period_start: date
    what_happened: str
    why: str
    whats_next: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int


@dataclass(frozen=True, slots=True)
class Annotation:
    """A dated note drawn on every trend chart of a KPI."""

    id: int
    metric_id: str
    on_date: date
    text: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert raised by a rule; (rule_id, key) is unique, so it is raised only once."""

    id: int
    rule_id: str
    key: str
    department: str | None
    summary: str
    payload: Any
    raised_at: datetime
    status: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    notified_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class Notebook:
    """A saved Explore-page notebook: a name and its list of cells (JSON)."""

    id: int
    name: str
    owner: str
    cells: list
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who, when, what, and the row before and after (None on create/delete)."""

    id: int
    at: datetime
    actor: str
    entity: str
    entity_id: str
    action: str
    before: dict | None
    after: dict | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A session document (packet or memo) claimed for e-mailing, then sent or failed."""

    id: int
    series_id: str
    session_date: date
    kind: str
    department: str | None
    topic: str | None
    status: str
    recipients: list | None
    attempts: int
    claimed_at: datetime
    claimed_by: str
    sent_at: datetime | None
    message_id: str | None
    error: str | None
    version: int

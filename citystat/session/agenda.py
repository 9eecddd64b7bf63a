"""The weekly stat session: who is on stage, what the agenda is, and what was promised.

The agenda is built from the data, in the order a CitiStat panel works (docs: DOMAIN.md,
"The weekly stat session"):

1. **review** — commitments made at earlier sessions that are still open (overdue ones
   marked) or were closed since the last session: relentless follow-up comes first;
2. **signal** — KPIs whose latest period shows a process-behaviour signal (a real change,
   not noise);
3. **off target** — KPIs off track, then at risk;
4. **the rest** — on track, watched (no target), not enough data.

Every KPI is read for its latest period complete on the session's eve (never the wall
clock), so a packet built on Friday and the screen shown on Monday agree.

Writes (commitments, narratives, annotations) go through the functions here so the role
check runs on the server, and the form's field errors come back as one ``FormError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from citystat.auth import PermissionDenied, User
from citystat.core.periods import period_end, period_label
from citystat.core.status import STATUS_LABELS, Status
from citystat.display.format import plural
from citystat.kpis.frames import (ChangeExplanation, OverviewRow, assurance_of, change_explanations, data_end_day,
                                  main_explanation)

if TYPE_CHECKING:  # pragma: no cover
    from citystat.api import CityStat
    from citystat.store import Commitment, Narrative, ReviewItem, Session, Store

# Agenda sections, in order.
REVIEW, SIGNAL, OFF_TARGET, OTHER = "review", "signal", "off_target", "other"
SECTION_TITLES = {
    REVIEW: "Follow-up from earlier sessions",
    SIGNAL: "Signals: a real change in the process",
    OFF_TARGET: "Off target",
    OTHER: "Everything else",
}
_STATUS_RANK = {Status.OFF_TRACK.value: 0, Status.AT_RISK.value: 1, Status.ON_TRACK.value: 2,
                Status.NO_TARGET.value: 3, Status.NO_DATA.value: 4}
# How much history an agenda chart shows: about two years.
CHART_PERIODS = {"day": 90, "week": 104, "month": 36, "quarter": 16, "fiscal_year": 10}


# --------------------------------------------------------------------------- the agenda
@dataclass(frozen=True)
class AgendaItem:
    """One agenda item: the follow-up review, or one KPI, with the reasons it is where it is."""

    section: str
    title: str
    reasons: tuple[str, ...]
    metric_id: str | None = None
    department: str | None = None
    grain: str | None = None
    period_start: date | None = None
    period_text: str = ""
    unit: str = "number"
    direction: str = "neutral"  # higher / lower is better, or neutral
    current: dict | None = None  # the KPI frame row of the period
    frame: pl.DataFrame | None = None  # the KPI frame up to the period (about two years)
    annotations: tuple[tuple[date, str], ...] = ()
    breakdown: ChangeExplanation | None = None  # the headline: what drove the change since the prior period
    explanations: tuple[ChangeExplanation, ...] = ()  # every dimension, vs prior period and last year
    signal_text: str = ""  # the signal at this period in words (same as the Metric card and the packet)
    assurance: str = ""  # can the process meet its target? (key of citystat.core.assurance)
    narrative: "Narrative | None" = None
    open_commitments: tuple["Commitment", ...] = ()
    review: tuple["ReviewItem", ...] = ()

    @property
    def status(self) -> str:
        return self.current["status"] if self.current else Status.NO_DATA.value

    @property
    def signal(self) -> bool:
        return bool(self.current and self.current["signal"])

    @property
    def key(self) -> str:
        return self.metric_id or self.section


@dataclass(frozen=True)
class Agenda:
    """A session's agenda: who, when, the data's period and the ordered items."""

    session_date: date
    as_of_day: date  # the last day of data the KPIs are read at (the session's eve or earlier)
    department: str | None
    topic: str | None
    title: str
    items: tuple[AgendaItem, ...]
    open_commitments: int = 0
    overdue_commitments: int = 0

    def kpi_items(self) -> list[AgendaItem]:
        return [i for i in self.items if i.metric_id]

    def section(self, name: str) -> list[AgendaItem]:
        return [i for i in self.items if i.section == name]

    def headline(self) -> dict[str, int]:
        """The cover's numbers: KPIs by status, signals, open and overdue commitments."""
        kpis = self.kpi_items()
        counts = {s.value: 0 for s in Status}
        for item in kpis:
            counts[item.status] += 1
        return {"kpis": len(kpis), **counts, "signals": sum(i.signal for i in kpis),
                "open_commitments": self.open_commitments,
                "overdue_commitments": self.overdue_commitments}


def default_session_date(stat: "CityStat") -> date | None:
    """The next weekday after the data's latest complete week (the usual Monday session)."""
    week = stat.as_of("week")
    if week is None:
        return None
    day = period_end(week, "week", stat.registry.city.fiscal_year_start_month) + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def as_of_for(stat: "CityStat", session_date: date) -> date:
    """The day the KPIs are read at: the session's eve, or the last day of data if earlier."""
    eve = session_date - timedelta(days=1)
    last = data_end_day(stat.registry, stat.rollup)
    return min(eve, last) if last else eve


def agenda_metrics(stat: "CityStat", department: str | None = None, topic: str | None = None) -> list:
    """The KPIs on stage: a department's own, or every metric tagged with the topic."""
    registry = stat.registry
    if (department is None) == (topic is None):
        raise ValueError("give either a department or a topic (a metric tag), not both or neither")
    if department is not None:
        if department not in registry.departments:
            known = ", ".join(sorted(registry.departments))
            raise ValueError(f"unknown department {department!r} in {stat.registry_path}; known: {known}")
        return registry.metrics_of(department)
    metrics = registry.metrics_tagged(topic)
    if not metrics:
        tags = sorted({t for m in registry.metrics.values() for t in m.tags})
        raise ValueError(f"no metric in {stat.registry_path} is tagged {topic!r}; tags: {', '.join(tags)}")
    return metrics


def session_title(stat: "CityStat", department: str | None, topic: str | None) -> str:
    if department is not None:
        return stat.registry.departments[department].name
    return f"Topic: {topic}"


def build_agenda(stat: "CityStat", store: "Store", *, department: str | None = None,
                 topic: str | None = None, session_date: date | None = None,
                 grain: str | None = None) -> Agenda:
    """The ordered agenda of a department's (or a topic's) session on ``session_date``.

    ``grain`` None shows each KPI at its own grain (a monthly KPI stays monthly).
    """
    metrics = agenda_metrics(stat, department, topic)
    session_date = session_date or default_session_date(stat)
    if session_date is None:
        raise ValueError(f"no complete period in the data of {stat.registry_path}: nothing to review")
    as_of_day = as_of_for(stat, session_date)
    rows = stat.overview(as_of_day, grain=grain, metrics=metrics)
    order = {m.id: i for i, m in enumerate(metrics)}

    review = review_items(store, department=department, topic=topic, session_date=session_date,
                          metric_ids=[m.id for m in metrics])
    open_list = _open_commitments(store, department, [m.id for m in metrics])
    items: list[AgendaItem] = []
    if review:
        overdue = sum(r.overdue for r in review)
        still_open = sum(r.commitment.status == "open" for r in review)
        reasons = [f"{plural(still_open, 'open commitment')} from earlier sessions"]
        if overdue:
            reasons.append(f"{overdue} overdue")
        closed = len(review) - still_open
        if closed:
            reasons.append(f"{closed} closed since the last session")
        items.append(AgendaItem(section=REVIEW, title=SECTION_TITLES[REVIEW], reasons=tuple(reasons),
                                department=department, review=tuple(review)))

    kpi_items = [_kpi_item(stat, store, row, open_list) for row in rows]
    kpi_items.sort(key=lambda i: (_section_rank(i.section), _STATUS_RANK.get(i.status, 9),
                                  order.get(i.metric_id, 0)))
    items.extend(kpi_items)
    return Agenda(session_date=session_date, as_of_day=as_of_day, department=department, topic=topic,
                  title=session_title(stat, department, topic), items=tuple(items),
                  open_commitments=len(open_list),
                  overdue_commitments=sum(c.is_overdue(session_date) for c in open_list))


def _section_rank(section: str) -> int:
    return (REVIEW, SIGNAL, OFF_TARGET, OTHER).index(section)


def section_and_reasons(current: dict | None, direction: str, signal_text: str = "") -> tuple[str, tuple[str, ...]]:
    """Why a KPI is where it is on the agenda (pure: tested on hand-made rows).

    ``signal_text`` is the signal in words (`citystat.kpis.frames.signal_sentence`)."""
    if not current or current.get("value") is None:
        return OTHER, ("no data for the period",)
    reasons = []
    section = OTHER
    if current.get("signal"):
        section = SIGNAL
        reasons.append(signal_text.rstrip(".") or "a real change in the process (a process-behaviour signal)")
    status = current.get("status")
    if status in (Status.OFF_TRACK.value, Status.AT_RISK.value):
        if section == OTHER:
            section = OFF_TARGET
        reasons.append(STATUS_LABELS[Status(status)].lower() + " against the target")
    if not reasons:
        reasons.append(STATUS_LABELS[Status(status)].lower() if status else "on the agenda")
    return section, tuple(reasons)


def _kpi_item(stat: "CityStat", store: "Store", row: OverviewRow,
              open_list: list["Commitment"]) -> AgendaItem:
    metric = row.metric
    fy = stat.registry.city.fiscal_year_start_month
    signal_text = row.signal_sentence if row.current else ""
    headline = row.signal_headline if row.current else ""
    section, reasons = section_and_reasons(row.current, metric.direction.value, headline)
    frame = row.frame.tail(CHART_PERIODS.get(row.grain, 104))
    first = frame["period_start"][0] if frame.height else row.period_start
    last = period_end(row.period_start, row.grain, fy)
    notes = [(c.date, c.note) for c in metric.process_changes if first <= c.date <= last]
    notes += [(a.on_date, a.text) for a in store.list_annotations(metric.id, start=first, end=last)]
    # the same for every view of the same rollup: kept with it (`CityStat.memo`)
    explanations = (stat.memo(("change_explanations", metric.id, row.grain, row.period_start),
                              lambda: change_explanations(stat.registry, stat.rollup, stat.metric(metric.id), row.grain,
                                                          row.period_start, kpi=stat._cached_kpi))
                    if row.current else [])
    return AgendaItem(
        section=section, title=metric.title, reasons=reasons, metric_id=metric.id,
        department=metric.department, grain=row.grain, period_start=row.period_start,
        period_text=period_label(row.period_start, row.grain, fy), unit=metric.unit.value,
        direction=metric.direction.value,
        current=row.current, frame=frame, annotations=tuple(sorted(notes, key=lambda n: n[0])),
        breakdown=main_explanation(explanations), explanations=tuple(explanations),
        signal_text=signal_text, assurance=assurance_of(row.current, metric),
        narrative=store.get_narrative(metric.id, row.grain, row.period_start),
        open_commitments=tuple(c for c in open_list if c.metric_id == metric.id),
    )


def _open_commitments(store: "Store", department: str | None, metric_ids: list[str]) -> list["Commitment"]:
    """Open commitments of the department, or (topic) linked to the topic's KPIs."""
    if department is not None:
        return store.list_commitments(status="open", department=department)
    wanted = set(metric_ids)
    return [c for c in store.list_commitments(status="open") if c.metric_id in wanted]


def review_items(store: "Store", *, department: str | None, topic: str | None, session_date: date,
                 metric_ids: list[str] = ()) -> list["ReviewItem"]:
    """Commitments a session reviews first.

    A department session uses the store's rule (``commitments_for_review``). A topic session
    reviews what earlier sessions of the same topic promised, plus any open commitment linked
    to one of the topic's KPIs: still open, or closed since the topic's previous session.
    """
    if department is not None:
        return store.commitments_for_review(department, session_date)
    from datetime import UTC, datetime

    from citystat.store import ReviewItem

    earlier = [s for s in store.list_sessions() if s.topic == topic and s.department is None
               and s.session_date < session_date]
    since = (datetime.combine(earlier[0].session_date, datetime.min.time(), UTC) if earlier else None)
    seen: dict[int, Any] = {}
    for s in earlier:
        for c in store.list_commitments(session_id=s.id):
            seen[c.id] = c
    wanted = set(metric_ids)
    for c in store.list_commitments(status="open"):
        if c.metric_id in wanted and store.get_session(c.session_id).session_date < session_date:
            seen[c.id] = c
    items = []
    for c in seen.values():
        if c.status == "open":
            items.append(ReviewItem(c, c.is_overdue(session_date), False))
        elif c.closed_at is not None and (since is None or c.closed_at >= since):
            items.append(ReviewItem(c, False, True))
    items.sort(key=lambda i: (i.commitment.due_date, i.commitment.id))
    return sorted(items, key=lambda i: (not i.overdue, i.closed_since_previous))


# --------------------------------------------------------------------------- the session row
def find_session(store: "Store", *, department: str | None, topic: str | None,
                 session_date: date) -> "Session | None":
    """The recorded session of this department (or topic) on this date, if any."""
    for s in store.list_sessions(department):
        if s.session_date == session_date and s.department == department and s.topic == topic:
            return s
    return None


def ensure_session(store: "Store", *, department: str | None, topic: str | None, session_date: date,
                   actor: str) -> "Session":
    """The recorded session, created on first need (the first commitment made at it)."""
    return find_session(store, department=department, topic=topic, session_date=session_date) or \
        store.create_session(department, session_date, topic=topic, actor=actor)


# --------------------------------------------------------------------------- writes
@dataclass
class FormError(Exception):
    """Field errors of a form, to show next to the fields; the typed text stays in the form."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.errors.items())


def _check_can_edit(user: User, department: str | None) -> None:
    if not user.can_edit_department(department):
        raise PermissionDenied(f"{user.name} may not edit the commitments, narratives or annotations "
                               f"of department {department!r}")


def make_commitment(store: "Store", user: User, *, session_department: str | None, topic: str | None,
                    session_date: date, what: str, owner: str, due_date: date | None,
                    metric_id: str | None = None, department: str | None = None) -> "Commitment":
    """Record a commitment made at a session (creating the session row on first need).

    ``department`` is who owns the commitment (defaults to the session's department; needed
    at a topic session). Checks the user's role for that department on the server.
    """
    owning = department or session_department
    errors = {}
    if not (what or "").strip():
        errors["what"] = "Say what will be done."
    if not (owner or "").strip():
        errors["owner"] = "Name the person who owns it."
    if due_date is None:
        errors["due_date"] = "Give a due date."
    elif due_date < session_date:
        errors["due_date"] = f"The due date is before the session ({session_date:%Y-%m-%d})."
    if owning is None:
        errors["department"] = "Choose the department that owns it."
    if errors:
        raise FormError(errors)
    _check_can_edit(user, owning)
    from citystat.store import InvalidInput

    try:
        session = ensure_session(store, department=session_department, topic=topic,
                                 session_date=session_date, actor=user.actor)
        return store.create_commitment(session.id, what, owner, due_date, metric_id=metric_id,
                                       department=owning, actor=user.actor)
    except InvalidInput as exc:
        raise FormError({exc.field: str(exc)}) from exc


def update_commitment(store: "Store", user: User, commitment: "Commitment", *, status: str,
                      note: str | None) -> "Commitment":
    """Change a commitment's status (open/done/dropped) with a note; ConflictError if stale."""
    _check_can_edit(user, commitment.department)
    from citystat.store import InvalidInput

    note = note if note and note.strip() else None
    if status == commitment.status and note is None:
        raise FormError({"status": "Nothing changed: pick another status or add a note."})
    try:
        return store.update_commitment(commitment.id, expected_version=commitment.version,
                                       actor=user.actor, status=status, note=note)
    except InvalidInput as exc:
        raise FormError({exc.field: str(exc)}) from exc


def save_narrative(store: "Store", user: User, *, metric_id: str, department: str, grain: str,
                   period_start: date, what_happened: str, why: str, whats_next: str,
                   expected_version: int | None) -> "Narrative":
    """Save the story behind the curve; ConflictError (with theirs) if someone saved first."""
    _check_can_edit(user, department)
    if not any((t or "").strip() for t in (what_happened, why, whats_next)):
        raise FormError({"what_happened": "Write at least one of: what happened, why, what's next."})
    from citystat.store import InvalidInput

    try:
        return store.save_narrative(metric_id, grain, period_start, what_happened or "", why or "",
                                    whats_next or "", actor=user.actor, expected_version=expected_version)
    except InvalidInput as exc:
        raise FormError({exc.field: str(exc)}) from exc


def add_annotation(store: "Store", user: User, *, metric_id: str, department: str, on_date: date | None,
                   text: str) -> Any:
    """Add a dated note drawn on every trend chart of the KPI."""
    _check_can_edit(user, department)
    errors = {}
    if on_date is None:
        errors["on_date"] = "Give the date."
    if not (text or "").strip():
        errors["text"] = "Write the note."
    if errors:
        raise FormError(errors)
    from citystat.store import InvalidInput

    try:
        return store.add_annotation(metric_id, on_date, text, actor=user.actor)
    except InvalidInput as exc:
        raise FormError({exc.field: str(exc)}) from exc



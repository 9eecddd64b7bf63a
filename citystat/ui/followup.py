"""Follow-through where people look: commitments, stories, the session calendar, what needs attention.

Pages call one function each (the Metric and Department pages ``followup_section``, the
Overview ``attention_list``, the Stat session and Department pages ``calendar_note``), so they
stay thin. Everything people typed is shown through ``citystat.display.safetext`` (inert text).

The state store may be down while the extracts are fine. Pages that cannot work without it
(Commitments, Stat session, Alerts) call ``require_store``: it shows "The commitments database is
not answering; retrying in N s…" and retries on its own. Pages that only decorate their numbers
with it (Overview, Metric, Department) call ``optional_store`` and keep serving without it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import TYPE_CHECKING

import polars as pl
import sqlalchemy as sa
import streamlit as st

from citystat.core.periods import period_label
from citystat.display.format import format_date, format_day
from citystat.display.safetext import user_markdown
from citystat.store.errors import OUTAGE_ERRORS
from citystat.ui.tables import show_table

if TYPE_CHECKING:  # pragma: no cover
    from citystat.api import CityStat
    from citystat.kpis.frames import OverviewRow
    from citystat.store import Commitment, Store

RETRY_SECONDS = 5


# --------------------------------------------------------------------------- the store, up or down
def _ping(state: "Store") -> None:
    with state.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _reachable_store() -> "Store":
    from citystat.ui.context import store

    state = store()
    _ping(state)
    return state


def optional_store() -> "Store | None":
    """The state store, or None (after a one-line notice) when it is not answering."""
    try:
        return _reachable_store()
    except OUTAGE_ERRORS:
        st.caption(":material/warning: Commitments and stories are not shown: the commitments database is not answering.")
        return None


def require_store(what: str = "commitments database") -> "Store":
    """The state store; when it is down, a clear message, an automatic retry, and the page stops."""
    try:
        return _reachable_store()
    except OUTAGE_ERRORS as exc:
        error = exc
    retry_at = datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS)
    st.error(f"The {what} is not answering; retrying in {RETRY_SECONDS} s… The KPIs on the Overview and "
             "Metric pages are still available.", icon=":material/power_off:")
    with st.expander("Details for the administrator"):
        st.text(f"{type(error).__name__}: {str(error).splitlines()[0][:300]}")

    @st.fragment(run_every=RETRY_SECONDS)
    def _retry() -> None:
        if datetime.now(UTC) < retry_at:
            return
        try:
            _reachable_store()
        except OUTAGE_ERRORS:
            st.caption(f"Still not answering at {datetime.now(UTC):%H:%M:%S} UTC; trying again in "
                       f"{RETRY_SECONDS} s.")
            return
        st.rerun(scope="app")

    _retry()
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


# --------------------------------------------------------------------------- commitments and stories
def commitment_rows(commitments: list["Commitment"], on: date, titles: dict[str, str]) -> pl.DataFrame:
    """A table of commitments: overdue said in words, dates as dates, people's text as plain text."""
    return pl.DataFrame([{
        "Status": ("OVERDUE" if c.is_overdue(on) else c.status.capitalize()),
        "What": " ".join(c.what.split()), "Owner": " ".join(c.owner.split()), "Due": c.due_date,
        "KPI": titles.get(c.metric_id or "", ""),
    } for c in commitments], schema={"Status": pl.Utf8, "What": pl.Utf8, "Owner": pl.Utf8, "Due": pl.Date,
                                     "KPI": pl.Utf8})


def followup_section(stat: "CityStat", metric_ids: list[str], *, on: date, heading: str = "Follow-through",
                     grain: str | None = None) -> None:
    """Open commitments on these KPIs (overdue first) and each KPI's latest story behind the curve."""
    st.subheader(heading)
    state = optional_store()
    if state is None:
        return
    try:
        wanted = set(metric_ids)
        titles = {m.id: m.title for m in stat.registry.metrics.values()}
        open_ones = [c for c in state.list_commitments(status="open") if c.metric_id in wanted]
        open_ones.sort(key=lambda c: (not c.is_overdue(on), c.due_date))
        stories = []
        for metric_id in metric_ids:
            found = state.list_narratives(metric_id, grain)
            if found:
                stories.append((metric_id, found[0]))
    except OUTAGE_ERRORS:
        st.caption(":material/warning: Commitments and stories are not shown: the commitments database is not answering.")
        return
    overdue = sum(c.is_overdue(on) for c in open_ones)
    if open_ones:
        st.markdown(f"**Open commitments** — {len(open_ones)} open"
                    + (f", **{overdue} overdue** (past their due date on {format_day(on)})" if overdue else ""))
        show_table(commitment_rows(open_ones, on, titles), width="stretch",
                     column_config={"Due": st.column_config.DateColumn("Due", format="ddd D MMM YYYY"),
                                    "KPI": None if len(metric_ids) == 1 else st.column_config.TextColumn("KPI")})
    else:
        st.caption("No open commitment on " + ("this KPI." if len(metric_ids) == 1 else "these KPIs.")
                   + " Commitments are made at the department's stat session (Stat session page).")
    if not stories:
        st.caption("No story behind the curve yet. The department writes it on the Stat session page.")
        return
    fy = stat.registry.city.fiscal_year_start_month
    for metric_id, story in stories:
        label = period_label(story.period_start, story.grain, fy)
        who = "" if len(metric_ids) == 1 else f"{titles.get(metric_id, metric_id)} · "
        parts = "".join(f"<p><strong>{name}</strong></p>{user_markdown(text)}"
                        for name, text in (("What happened", story.what_happened), ("Why", story.why),
                                           ("What's next", story.whats_next)) if text and text.strip())
        with st.container(border=True):
            st.markdown(f"**Story behind the curve** · {who}{label}")
            st.html(parts)
            st.caption(f"Written by {story.updated_by}, {format_day(story.updated_at)}")


# --------------------------------------------------------------------------- the calendar
def calendar_now(stat: "CityStat") -> datetime:
    """'Now' for the calendar: the start of the day after the data's last day (never the wall clock)."""
    from zoneinfo import ZoneInfo

    last = stat.rollup.last_data_day() or date.today()
    return datetime.combine(last + timedelta(days=1), time(0), ZoneInfo(stat.registry.city.timezone))


def load_calendar_or_note(stat: "CityStat"):
    """The session calendar, or None after naming the file and line of its problems."""
    from citystat.session.calendar import SessionsFileError, load_default_calendar

    try:
        return load_default_calendar(stat.registry)
    except SessionsFileError as exc:
        st.warning("The session calendar has problems, so dates come from the data instead:\n\n"
                   + "\n".join(f"- `{p}`" for p in exc.problems))
        return None


def calendar_note(stat: "CityStat", *, department: str | None = None, topic: str | None = None,
                  calendar=None) -> None:
    """One line: when the department (or topic) meets, its next session and its last ones."""
    calendar = calendar if calendar is not None else load_calendar_or_note(stat)
    if calendar is None:
        return
    series = calendar.for_department(department) if department else calendar.for_topic(topic or "")
    if not series:
        st.caption(f"No stat session is scheduled in {calendar.path.name} for this "
                   f"{'department' if department else 'topic'}; add one there to have packets e-mailed.")
        return
    upcoming, past = calendar.next_and_past(series, calendar_now(stat))
    cadence = "; ".join(s.cadence_text() for s in series)
    text = f":material/event: Meets {cadence} ({calendar.timezone})"
    if upcoming:
        text += f" · **next: {format_date(upcoming.starts_at.date())} {upcoming.starts_at:%H:%M}**"
    if past:
        text += " · last: " + ", ".join(format_date(o.day).rsplit(" ", 1)[0] for o in past)
    people = sorted({p.name for s in series for p in s.attendees})
    text += f" · attendees: {', '.join(people)} · prepared by {', '.join(sorted({s.analyst.name for s in series}))}"
    st.markdown(text)


# --------------------------------------------------------------------------- what needs attention
def attention_items(stat: "CityStat", rows: list["OverviewRow"], on: date,
                    commitments: list["Commitment"] | None) -> list[dict]:
    """KPIs off track, newly signalling, or with overdue commitments, each with its reasons in words."""
    from citystat.display.format import format_value

    overdue: dict[str, list] = {}
    for c in commitments or []:
        if c.metric_id and c.is_overdue(on):
            overdue.setdefault(c.metric_id, []).append(c)
    items = []
    for row in rows:
        reasons, rank = [], 9
        current = row.current or {}
        unit = row.metric.unit.value
        if row.status == "off_track":
            target = current.get("target")
            reasons.append(f"off track: {format_value(current.get('value'), unit)} against a target of "
                           f"{format_value(target, unit)}" if target is not None else "off track")
            rank = min(rank, 1)
        if row.signal:
            frame = row.frame
            earlier = frame.filter(pl.col("period_start") < row.period_start)
            new = earlier.is_empty() or not bool(earlier["signal"][-1])
            if new:
                said = row.signal_sentence.rstrip(".")
                reasons.append(f"newly signalling: {said[0].lower() + said[1:]}")
                rank = min(rank, 0)
        late = overdue.get(row.metric.id, [])
        if late:
            oldest = min(c.due_date for c in late)
            reasons.append(f"{len(late)} overdue commitment{'s' if len(late) > 1 else ''} (due since "
                           f"{format_day(oldest)})")
            rank = min(rank, 2)
        if reasons:
            items.append({"metric_id": row.metric.id, "rank": rank, "kpi": row.metric.title,
                          "department": stat.registry.departments[row.metric.department].name,
                          "period": period_label(row.period_start, row.grain, stat.registry.city.fiscal_year_start_month),
                          "why": "; ".join(reasons)})
    items.sort(key=lambda i: (i["rank"], i["department"], i["kpi"]))
    return items


def attention_list(stat: "CityStat", rows: list["OverviewRow"], on: date, limit: int = 8) -> None:
    """The Overview's first block: what needs attention this week, each KPI one click away."""
    state = optional_store()
    commitments = None
    if state is not None:
        try:
            commitments = state.list_commitments(status="open", overdue_on=on)
        except OUTAGE_ERRORS:
            commitments = None
    items = attention_items(stat, rows, on, commitments)
    st.subheader("Needs attention")
    if not items:
        st.success("Nothing needs attention: no KPI is off track or newly signalling, and no commitment is overdue.")
        return
    shown = items[:limit]
    for item in shown:
        # the KPI's name on its own line (never cut short on a small screen), the reason under it
        with st.container(gap=None):
            st.page_link("pages/metric.py", label=f"**{item['kpi']}**", icon=":material/arrow_forward:",
                         query_params={"metric": item["metric_id"]},
                         help=f"Open {item['kpi']} ({item['department']})")
            st.markdown(f"<div style='margin:-0.4rem 0 0.6rem 2rem;font-size:0.95rem'>{escape(item['department'])} · "
                        f"{escape(item['period'])} — {escape(item['why'])}</div>", unsafe_allow_html=True)
    if len(items) > limit:
        st.caption(f"… and {len(items) - limit} more below (off-track KPIs say Off track in the tables).")

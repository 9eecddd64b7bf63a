"""Stat session: the agenda first, one item at a time with a large chart, packet and memo at the top.

Presenting mode shows one item per screen for the projector. Commitments, stories and notes typed
by people are shown as inert text (citystat.display.safetext).
"""

from datetime import date, timedelta
from html import escape

import polars as pl
import streamlit as st

from citystat.auth import PermissionDenied, Role
from citystat.display.charts import trend_chart, trend_summary, trend_table
from citystat.display.format import delta_colour, format_date, format_day, metric_delta, plural, status_counts_text
from citystat.display.report import table_html
from citystat.display.safetext import user_inline, user_markdown
from citystat.kpis.frames import ASSURANCE_TEXT
from citystat.session.agenda import (
    REVIEW,
    SECTION_TITLES,
    FormError,
    add_annotation,
    build_agenda,
    default_session_date,
    find_session,
    make_commitment,
    save_narrative,
)
from citystat.session.packet import (
    CONTRIBUTION_HEADERS,
    breakdown_text,
    build_followup_html,
    build_packet_html,
    contribution_rows,
    data_gap_text,
    html_to_pdf,
    numbers_rows,
    packet_filename,
)
from citystat.store import ConflictError
from citystat.ui.charts import chart_spec, show_chart
from citystat.ui.context import city, current_user
from citystat.ui.followup import calendar_note, commitment_rows, load_calendar_or_note, require_store
from citystat.ui.guard import require_role
from citystat.ui.tables import show_table
from citystat.ui.widgets import HOW_SIGNAL, HOW_STATUS, data_notice, how_computed, status_badge, status_chip

require_role(Role.STAFF)
user = current_user()
stat = city()
state = require_store()
registry = stat.registry
departments = {d.id: d.name for d in registry.departments.values()}
tags = sorted({t for m in registry.metrics.values() for t in m.tags})
calendar = load_calendar_or_note(stat)

top = st.columns([3, 3, 2])
wanted_topic = st.query_params.get("topic")
kind = top[0].segmented_control("Session of", ["Department", "Topic"],
                                default="Topic" if wanted_topic in tags else "Department", key="kind") \
    or "Department"
department = topic = None
if kind == "Department":
    own = sorted(user.departments & set(departments))
    choices = own + [d for d in departments if d not in own]
    wanted = st.query_params.get("department")
    department = top[1].selectbox("Department", choices, index=choices.index(wanted) if wanted in choices else 0,
                                  format_func=departments.get, key="department")
    st.query_params["department"] = department
    st.query_params.pop("topic", None)
else:
    topic = top[1].selectbox("Topic (metrics with this tag, across departments)", tags,
                             index=tags.index(wanted_topic) if wanted_topic in tags
                             else tags.index("cityscore") if "cityscore" in tags else 0, key="topic")
    st.query_params["topic"] = topic
    st.query_params.pop("department", None)
data_date = default_session_date(stat)
if data_date is None:
    st.warning("No complete week in the data yet: nothing to review.")
    st.stop()
default_date = data_date
if calendar is not None:
    series = calendar.for_department(department) if department else calendar.for_topic(topic)
    default_date = calendar.first_on_or_after(series, data_date) or data_date
try:
    linked = date.fromisoformat(st.query_params.get("date", ""))
except ValueError:
    linked = None
session_date = top[2].date_input("Session date", value=linked or default_date, key="session_date",
                                 format="YYYY-MM-DD",
                                 help="Defaults to the department's next session in the calendar (sessions.yaml) "
                                      "after the latest complete week of data. KPIs are read at their latest period "
                                      "complete on the session's eve.")

agenda = build_agenda(stat, state, department=department, topic=topic, session_date=session_date)
session = find_session(state, department=department, topic=topic, session_date=session_date)
items = list(agenda.items)
# One agenda item is open at a time; a new department, topic or date starts at item 1.
if st.session_state.get("agenda_for") != (department, topic, session_date):
    st.session_state["agenda_for"] = (department, topic, session_date)
    st.session_state["agenda_item"] = 0
    st.session_state.pop("agenda_table_pick", None)
if items:
    st.session_state["agenda_item"] = min(st.session_state.get("agenda_item", 0), len(items) - 1)


# ----------------------------------------------------------------------------- helpers
REVIEW_CSS = """<style>
.review-table {border-collapse: collapse; width: 100%; font-size: 1rem;}
.review-table th, .review-table td {border-bottom: 1px solid #d0d7de; padding: .35rem .5rem; text-align: left;
  vertical-align: top;}
.review-table th {background: #f3f5f8;}
</style>"""


def field_error(placeholder, errors: dict, name: str) -> None:
    if name in errors:
        placeholder.error(errors[name])


def show_review(item) -> None:
    """The commitments under review, as a plain HTML table (people's text escaped, readable on a projector)."""
    rows = [("OVERDUE — still open" if r.overdue else
             f"Closed since the last session ({r.commitment.status})" if r.closed_since_previous else "Open",
             " ".join(r.commitment.what.split()), r.commitment.owner, f"{format_date(r.commitment.due_date)}",
             registry.metrics[r.commitment.metric_id].title if r.commitment.metric_id in registry.metrics else "",
             r.commitment.note or "") for r in item.review]
    columns = ("Where it stands", "What", "Owner", "Due", "KPI", "Note")
    if not any(row[-1] for row in rows):  # no notes yet: no empty column
        columns, rows = columns[:-1], [row[:-1] for row in rows]
    st.html(REVIEW_CSS + table_html(columns, rows, css_class="review-table"))
    st.page_link("pages/commitments.py", label="Update these commitments", icon=":material/task_alt:")


def show_narrative(item) -> None:
    n = item.narrative
    if n is None:
        st.caption("No story behind the curve yet for this period.")
        return
    for label, text in (("What happened", n.what_happened), ("Why", n.why), ("What's next", n.whats_next)):
        if text and text.strip():
            st.markdown(f"**{label}**")
            st.html(user_markdown(text))  # restricted Markdown: no images, links, headings or HTML
    st.caption(f"Written by {n.updated_by}, {format_day(n.updated_at)} {n.updated_at:%H:%M} UTC")


def narrative_form(item) -> None:
    key = f"nar_{item.metric_id}_{item.grain}_{item.period_start}"
    n = item.narrative
    if f"{key}_version" not in st.session_state:
        st.session_state[f"{key}_version"] = n.version if n else None
        for part in ("what_happened", "why", "whats_next"):
            st.session_state[f"{key}_{part}"] = getattr(n, part) if n else ""
    theirs = st.session_state.get(f"{key}_conflict")
    if theirs is not None:
        st.warning(f"{theirs.updated_by} saved this story while you were editing. Theirs is below; yours is "
                   "still in the form. Merge what you want to keep and save again (this replaces theirs).")
        st.text(f"What happened: {theirs.what_happened}\nWhy: {theirs.why}\nWhat's next: {theirs.whats_next}")
    with st.form(f"{key}_form", clear_on_submit=False):
        st.text_area("What happened", key=f"{key}_what_happened", height=80)
        error_what = st.empty()
        st.text_area("Why", key=f"{key}_why", height=80)
        st.text_area("What's next", key=f"{key}_whats_next", height=80)
        error_any = st.empty()
        saved = st.form_submit_button("Save the story")
    if saved:
        try:
            result = save_narrative(
                state, user, metric_id=item.metric_id, department=item.department, grain=item.grain,
                period_start=item.period_start, what_happened=st.session_state[f"{key}_what_happened"],
                why=st.session_state[f"{key}_why"], whats_next=st.session_state[f"{key}_whats_next"],
                expected_version=st.session_state[f"{key}_version"])
        except FormError as exc:
            field_error(error_what, exc.errors, "what_happened")
            if "what_happened" not in exc.errors:
                error_any.error(str(exc))
        except ConflictError as exc:
            st.session_state[f"{key}_conflict"] = exc.current
            st.session_state[f"{key}_version"] = exc.current.version
            st.rerun()
        except PermissionDenied as exc:
            error_any.error(str(exc))
        else:
            st.session_state[f"{key}_version"] = result.version
            st.session_state.pop(f"{key}_conflict", None)
            st.toast("Story saved.")
            st.rerun()


def annotation_form(item) -> None:
    key = f"ann_{item.metric_id}"
    with st.form(f"{key}_form", clear_on_submit=False):
        cols = st.columns([1, 3])
        cols[0].date_input("Date", value=item.period_start, key=f"{key}_date", format="YYYY-MM-DD")
        error_date = cols[0].empty()
        cols[1].text_input("Note drawn on every chart of this KPI", key=f"{key}_text",
                           placeholder="e.g. New pothole crew started")
        error_text = cols[1].empty()
        added = st.form_submit_button("Add annotation")
    if added:
        try:
            add_annotation(state, user, metric_id=item.metric_id, department=item.department,
                           on_date=st.session_state[f"{key}_date"], text=st.session_state[f"{key}_text"])
        except FormError as exc:
            field_error(error_date, exc.errors, "on_date")
            field_error(error_text, exc.errors, "text")
        except PermissionDenied as exc:
            st.error(str(exc))
        else:
            del st.session_state[f"{key}_text"]
            st.toast("Annotation added.")
            st.rerun()


def commitment_form(item=None) -> None:
    """Record a commitment; field errors show under the fields and the typed text stays."""
    metric = registry.metrics.get(item.metric_id) if item is not None and item.metric_id else None
    key = f"com_{metric.id if metric else 'general'}"
    with st.form(f"{key}_form", clear_on_submit=False):
        st.text_input("What will be done", key=f"{key}_what",
                      placeholder="e.g. Clear the graffiti backlog in District 5")
        error_what = st.empty()
        cols = st.columns(3)
        cols[0].text_input("Owner", value=metric.owner if metric else "", key=f"{key}_owner")
        error_owner = cols[0].empty()
        cols[1].date_input("Due", value=session_date + timedelta(days=14), key=f"{key}_due", format="YYYY-MM-DD")
        error_due = cols[1].empty()
        owning = department
        if department is None:
            default = metric.department if metric else list(departments)[0]
            owning = cols[2].selectbox("Department", list(departments), index=list(departments).index(default),
                                       format_func=departments.get, key=f"{key}_dept")
        error_dept = cols[2].empty()
        made = st.form_submit_button("Record commitment")
    if made:
        try:
            make_commitment(state, user, session_department=department, topic=topic, session_date=session_date,
                            what=st.session_state[f"{key}_what"], owner=st.session_state[f"{key}_owner"],
                            due_date=st.session_state[f"{key}_due"], metric_id=metric.id if metric else None,
                            department=owning)
        except FormError as exc:
            for placeholder, name in ((error_what, "what"), (error_owner, "owner"), (error_due, "due_date"),
                                      (error_dept, "department")):
                field_error(placeholder, exc.errors, name)
            other = {k: v for k, v in exc.errors.items() if k not in ("what", "owner", "due_date", "department")}
            if other:
                st.error("; ".join(other.values()))
        except PermissionDenied as exc:
            st.error(str(exc))
        else:
            del st.session_state[f"{key}_what"]
            st.toast("Commitment recorded; it will be reviewed at the next session.")
            st.rerun()


def show_item(number: int, item, big: bool = False) -> None:
    heading = f"{number}. {item.title}"
    if big:
        st.header(heading)
    else:
        st.subheader(heading)
    if item.section == REVIEW:
        st.markdown(f"*{'; '.join(item.reasons)}*")
        show_review(item)
        return
    meta = f"{status_badge(item.status)} · {ASSURANCE_TEXT[item.assurance]}" + \
        f" · {SECTION_TITLES[item.section]} · *{'; '.join(item.reasons)}*"
    if department is None:
        meta += f" · {departments[item.department]}"
    st.markdown(meta)
    numbers = dict(numbers_rows(item))
    c = item.current or {}
    cards = st.columns(4)
    cards[0].metric("Value", numbers["Value"], border=True, help=f"The KPI for {item.period_text}.")
    cards[0].caption(item.period_text)
    cards[1].metric("Target", numbers["Target"], border=True, help=HOW_STATUS)
    # st.metric reads the delta's sign from an ASCII minus; colour follows the KPI's direction.
    colour = delta_colour(item.direction)
    for card, label, shown, key in ((cards[2], "Prior period", numbers["Prior period"], "change_vs_prior"),
                                    (cards[3], "Same period last year", numbers["Same period last year"],
                                     "change_vs_last_year")):
        delta = metric_delta(c.get(key), item.unit, item.direction)
        card.metric(label, shown, delta=delta, delta_color=colour, border=True)
    if item.frame is not None and item.frame.height:
        columns, rows = trend_table(item.frame, unit=item.unit)
        show_chart(chart_spec(trend_chart, item.frame, title=item.title, unit=item.unit,
                              annotations=list(item.annotations), height=460 if big else 380,
                              direction=item.direction),
                   trend_summary(item.frame, title=item.title, unit=item.unit, grain=item.grain),
                   columns=columns, rows=rows, table_label="Data table (newest first)", width="stretch")
    st.markdown(f"**Signal:** {item.signal_text}")
    st.caption(f"Natural process limits {numbers['Natural process limits']}")
    if item.breakdown is not None:
        st.markdown(f"**What drove the change.** {breakdown_text(item)}")
        if not big:
            b = item.breakdown
            st.caption(b.heading)
            show_table(pl.DataFrame(contribution_rows(b, item.unit, 10), schema=list(CONTRIBUTION_HEADERS),
                                    orient="row"), width="stretch")
    st.markdown("**Story behind the curve**")
    show_narrative(item)
    if item.open_commitments:
        st.markdown("**Open commitments on this KPI**")
        st.html("<ul>" + "".join(
            f"<li>{'<strong>OVERDUE</strong> · ' if com.is_overdue(session_date) else ''}{user_inline(com.what)} — "
            f"<em>{user_inline(com.owner)}</em>, due {format_day(com.due_date)}</li>"
            for com in item.open_commitments) + "</ul>")
    if not big:
        can_edit = user.can_edit_department(item.department)
        with st.expander("Make a commitment on this KPI"):
            if can_edit:
                commitment_form(item)
            else:
                st.info("Only the department's leads can record commitments.")
        with st.expander("Edit the story behind the curve · add an annotation"):
            if can_edit:
                narrative_form(item)
                annotation_form(item)
            else:
                st.info("Only the department's leads can edit stories and annotations.")


# ----------------------------------------------------------------------------- presenting mode
def move(step: int) -> None:
    st.session_state["agenda_item"] = max(0, min(len(items) - 1, st.session_state.get("agenda_item", 0) + step))


presenting = st.toggle("Presenting mode (one item per screen, for the projector)", key="presenting")
if presenting:
    st.markdown("""<style>
    [data-testid="stSidebar"], [data-testid="stHeader"] {display: none;}
    .block-container {max-width: 96vw; padding-top: 1rem;}
    .stMarkdown p, .stMarkdown li, .stCaption p {font-size: 1.55rem !important; line-height: 1.4;}
    h1, h2 {font-size: 2.8rem !important;}
    [data-testid="stMetricValue"] {font-size: 2.8rem !important;}
    [data-testid="stMetricLabel"] p {font-size: 1.3rem !important;}
    .review-table {font-size: 1.45rem !important;}
    </style>""", unsafe_allow_html=True)
    if not items:
        st.info("Nothing on the agenda.")
        st.stop()
    index = st.session_state["agenda_item"]
    nav = st.columns([1, 3, 1])
    nav[0].button("◀ Previous", on_click=move, args=(-1,), disabled=index == 0, key="previous", width="stretch")
    nav[1].markdown(f"<div style='text-align:center;font-size:1.6rem'><b>{escape(agenda.title)}</b> · "
                    f"item {index + 1} of {len(items)}</div>", unsafe_allow_html=True)
    nav[2].button("Next ▶", on_click=move, args=(1,), disabled=index == len(items) - 1, key="next",
                  width="stretch")
    show_item(index + 1, items[index], big=True)
    st.stop()

# ----------------------------------------------------------------------------- normal mode
st.title(f"{agenda.title} — stat session {format_date(session_date)}")
calendar_note(stat, department=department, topic=topic, calendar=calendar)
data_notice(stat, [m for m in registry.metrics.values() if m.id in {i.metric_id for i in items}])
if data_gap_text(agenda):
    st.warning(data_gap_text(agenda), icon="⏰")

# Packet and memo first: they are what the analyst comes here for before and after the meeting.
packet_key = ("packet", department, topic, session_date)
actions = st.columns([2, 2, 3])
if actions[0].button("Build packet", key="build_packet", icon=":material/description:", type="primary",
                     help="The briefing packet (HTML and PDF) of this session: every agenda item with its chart."):
    bar = st.progress(0.0, text="Building the briefing packet…")
    steps = len(items) + 2

    def progress(done: int, total: int, what: str) -> None:
        bar.progress(min(done / steps, 1.0), text=f"Building: {what}")

    html = build_packet_html(stat, state, agenda, progress=progress)
    bar.progress((steps - 1) / steps, text="Printing the PDF…")
    st.session_state["packet"] = (packet_key, html, html_to_pdf(html))
    bar.empty()
built = st.session_state.get("packet")
if built and built[0] == packet_key:
    actions[0].download_button("Packet (PDF)", built[2], file_name=packet_filename(agenda, "packet", "pdf"),
                               mime="application/pdf", icon=":material/download:", key="packet_pdf")
    actions[0].download_button("Packet (HTML)", built[1], file_name=packet_filename(agenda, "packet", "html"),
                               mime="text/html", icon=":material/download:", key="packet_html")
following = None
if calendar is not None:
    series = calendar.for_department(department) if department else calendar.for_topic(topic)
    following = calendar.first_on_or_after(series, session_date + timedelta(days=1))
followup = build_followup_html(stat, state, agenda, session, next_session=following)
if actions[1].button("Follow-up memo", key="build_followup_pdf", icon=":material/edit_note:",
                     help="Every commitment made at this session with owner and due date, and the data the next "
                          "session will read."):
    with st.spinner("Printing the memo…"):
        st.session_state["followup_pdf"] = (packet_key, followup, html_to_pdf(followup))
memo = st.session_state.get("followup_pdf")
if memo and memo[0] == packet_key and memo[1] == followup:
    actions[1].download_button("Memo (PDF)", memo[2], file_name=packet_filename(agenda, "followup", "pdf"),
                               mime="application/pdf", icon=":material/download:", key="followup_pdf_download")
actions[1].download_button("Memo (HTML)", followup, file_name=packet_filename(agenda, "followup", "html"),
                           mime="text/html", icon=":material/download:", key="followup_html")
h = agenda.headline()
actions[2].markdown(
    f"**{h['kpis']} KPIs** · {status_counts_text(i.status for i in agenda.kpi_items())} · "
    f"{plural(h['signals'], 'signal')}  \n**{plural(h['open_commitments'], 'open commitment')}**, {h['overdue_commitments']} overdue")
actions[2].caption(f"KPIs as of {format_date(agenda.as_of_day)} (their latest period complete on the session's eve)"
                   + (f" · session recorded (#{session.id})" if session
                      else " · the session is recorded with its first commitment"))

if not items:
    st.info("Nothing on the agenda: this department has no KPI yet.")
    st.stop()

st.markdown("#### Agenda")
table = pl.DataFrame([{"#": i + 1, "Item": it.title, "Why it is here": SECTION_TITLES[it.section],
                       "Status": "" if it.section == REVIEW else status_chip(it.status),
                       "Reasons": "; ".join(it.reasons)} for i, it in enumerate(items)])
picked = show_table(table, width="stretch", on_select="rerun", selection_mode="single-row",
                    key="agenda_table", height=min(38 + 35 * len(items), 400))
rows = list(picked.selection.rows) if picked and picked.selection else []
if rows and rows != st.session_state.get("agenda_table_pick"):
    st.session_state["agenda_table_pick"] = rows
    st.session_state["agenda_item"] = rows[0]
st.caption("Select a row, or use Previous / Next, to open one item at a time.")

index = st.session_state["agenda_item"]
nav = st.columns([1, 4, 1], vertical_alignment="bottom")
nav[0].button("◀ Previous", on_click=move, args=(-1,), disabled=index == 0, key="item_previous", width="stretch")
nav[1].selectbox("Agenda item", list(range(len(items))), key="agenda_item",
                 format_func=lambda i: f"{i + 1}. {items[i].title}"
                 + ("" if items[i].section == REVIEW else f" — {status_chip(items[i].status)}"))
nav[2].button("Next ▶", on_click=move, args=(1,), disabled=index == len(items) - 1, key="item_next",
              width="stretch")
with st.container(border=True):
    show_item(index + 1, items[index])

st.markdown("#### Commitments made at this session")
made = state.list_commitments(session_id=session.id) if session else []
if made:
    titles = {m.id: m.title for m in registry.metrics.values()}
    show_table(commitment_rows(made, session_date, titles), width="stretch")
else:
    st.caption("None yet. Record one on an agenda item above, or below for one not tied to a KPI.")
with st.expander("Make a commitment not tied to one KPI"):
    if department is None or user.can_edit_department(department):
        commitment_form(None)
    else:
        st.info("Only the department's leads can record commitments.")
how_computed(HOW_STATUS, HOW_SIGNAL,
             "**Agenda order**: first the commitments due for review from earlier sessions (overdue first), then "
             "KPIs with a process signal in their latest period, then KPIs off track and at risk, then the rest. "
             "**What drove the change**: each value of a dimension (district, channel) gets its part of the change "
             "since the prior period; the parts add up to the total change. For a count, a value's part is its own "
             "change; for a rate, N_i′/D′ − N_i/D (its own rate moving, and its share of the cases moving). Medians "
             "and percentiles do not add up: each value's own change is shown instead. The value named is one "
             "that moved the KPI the way it moved — never an improvement as the cause of a worsening.")

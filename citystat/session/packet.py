"""Briefing packets (before a stat session) and follow-up memos (after it).

The packet is the analysts' pre-meeting memo: a cover with the session's headline numbers,
then one section per agenda item, in agenda order, with its chart, numbers, breakdown,
narrative and open commitments. The follow-up memo lists every commitment made at the
session, with owner and due date, and where the reviewed ones stand.

Both are self-contained HTML (citystat.display.report) and print to PDF; the page's download
buttons and ``python -m citystat packet|followup`` call the same functions.

    build_packet_html(stat, store, agenda, *, progress=None, page_size="A4") -> str
    build_followup_html(stat, store, agenda, session, *, page_size="A4") -> str
    packet_filename(agenda, kind, extension) -> str
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING

from citystat.display.charts import format_value, trend_chart, trend_summary, trend_table
from citystat.core.status import STATUS_LABELS, Status
from citystat.display.report import Section, chart_svg, escape, figure_html, html_to_pdf, render_html, table_html
from citystat.display.safetext import user_markdown
from citystat.session.agenda import REVIEW, SECTION_TITLES, Agenda, AgendaItem
from citystat.kpis.frames import ASSURANCE_TEXT
from citystat.display.format import change_text, format_date, format_day, human_label
from citystat.kpis.frames import ChangeExplanation, value_subject

if TYPE_CHECKING:  # pragma: no cover
    from citystat.api import CityStat
    from citystat.store import Commitment, ReviewItem, Session, Store

Progress = Callable[[int, int, str], None]  # (done, total, what is being built)

__all__ = ["build_followup_html", "build_packet_html", "html_to_pdf", "item_chart", "packet_filename"]

PACKET_CSS = """
.item-head { display: flex; gap: .5rem; align-items: baseline; flex-wrap: wrap; }
.numbers { width: 100%; }
.agenda-list td:first-child { width: 2rem; }
"""


def packet_filename(agenda: Agenda, kind: str, extension: str) -> str:
    """e.g. ``citystat-packet-pw-2026-11-16.pdf``."""
    who = agenda.department or f"topic-{agenda.topic}"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in who)
    return f"citystat-{kind}-{safe}-{agenda.session_date.isoformat()}.{extension}"


def item_chart(item: AgendaItem, *, height: int = 230):
    """The item's trend chart (value, target, limits, signals, annotations) for print."""
    return trend_chart(item.frame, title=f"{item.title} — {item.period_text}", unit=item.unit,
                       annotations=list(item.annotations), height=height, direction=item.direction)


def item_figure(item: AgendaItem, svg: str, *, table_periods: int = 26) -> str:
    """The item's chart with its text alternative: a one-sentence summary and the latest
    periods as a table (on screen; the printed packet has the numbers table instead)."""
    columns, rows = trend_table(item.frame, unit=item.unit)
    summary = trend_summary(item.frame, title=item.title, unit=item.unit, grain=item.grain)
    return figure_html(svg, summary, table_label=f"{item.title}, latest {min(table_periods, len(rows))} periods",
                       table_html=table_html(columns, rows[:table_periods], row_headers=True,
                                             numeric=("Value", "Target")))


def _chip(status: str) -> str:
    return f'<span class="chip {escape(status)}">{escape(STATUS_LABELS[Status(status)])}</span>'


def _date(d: date | None) -> str:
    return format_date(d) if d else ""


def commitments_table(commitments: list["Commitment"], session_date: date, *,
                      metric_titles: dict[str, str], caption: str | None = None) -> str:
    """Commitments with owner and due date; overdue ones marked in words (not only colour)."""
    rows = []
    for c in commitments:
        status = "OVERDUE" if c.is_overdue(session_date) else human_label(c.status)
        rows.append((c.what, c.owner, format_date(c.due_date), status,
                     metric_titles.get(c.metric_id or "", c.metric_id or ""), c.note or ""))
    return table_html(("What", "Owner", "Due", "Status", "KPI", "Note"), rows, caption=caption)


def _review_html(item: AgendaItem, session_date: date, metric_titles: dict[str, str]) -> str:
    reviews: list["ReviewItem"] = list(item.review)
    still_open = [r.commitment for r in reviews if r.commitment.status == "open"]
    closed = [r.commitment for r in reviews if r.commitment.status != "open"]
    parts = [f'<p class="reason">{escape("; ".join(item.reasons))}</p>']
    if still_open:
        parts.append(commitments_table(still_open, session_date, metric_titles=metric_titles,
                                       caption="Still open (overdue first)"))
    if closed:
        parts.append(commitments_table(closed, session_date, metric_titles=metric_titles,
                                       caption="Closed since the last session"))
    return "".join(parts)


def numbers_rows(item: AgendaItem) -> list[tuple[str, str]]:
    """The item's numbers as (label, text) pairs, in the KPI's unit."""
    c, unit = item.current or {}, item.unit
    limits = (f"{format_value(c.get('lower_limit'), unit)} – {format_value(c.get('upper_limit'), unit)}"
              if c.get("centre") is not None else "not enough data yet")
    return [
        ("Period", item.period_text),
        ("Value", format_value(c.get("value"), unit)),
        ("Target", format_value(c.get("target"), unit) if c.get("target") is not None else "none"),
        ("Status", STATUS_LABELS[Status(item.status)]),
        ("Assurance", ASSURANCE_TEXT[item.assurance] if item.assurance else "—"),
        ("Prior period", format_value(c.get("prior_value"), unit)),
        ("Change vs prior", change_text(c.get("change_vs_prior"), unit, item.direction)),
        ("Same period last year", format_value(c.get("last_year_value"), unit)),
        ("Change vs last year", change_text(c.get("change_vs_last_year"), unit, item.direction)),
        ("Centre line", format_value(c.get("centre"), unit) if c.get("centre") is not None else "—"),
        ("Natural process limits", limits),
    ]


def breakdown_text(item: AgendaItem) -> str:
    """The sentence that says what drove the change since the prior period (the same sentence as
    on the Stat session and Metric pages)."""
    return item.breakdown.sentence if item.breakdown is not None else ""


def contribution_rows(explanation: ChangeExplanation, unit: str, limit: int | None = None) -> list[tuple]:
    """(value, before, after, own change, part of the total change) per dimension value, as text."""
    att = explanation.attribution
    rows = []
    table = explanation.table if limit is None else explanation.table.head(limit)
    for r in table.iter_rows(named=True):
        part = (change_text(r["contribution"], unit, arrow=False) if att.decomposable
                else "does not add up")
        rows.append((value_subject(explanation.dimension, r["dimension_value"]), format_value(r["before"], unit),
                     format_value(r["after"], unit), change_text(r["own_change"], unit, arrow=False), part))
    return rows


CONTRIBUTION_HEADERS = ("Value", "Before", "Now", "Its own change", "Its part of the total change")


def _breakdown_html(item: AgendaItem, limit: int = 8) -> str:
    b = item.breakdown
    if b is None or b.table.is_empty():
        return ""
    others = [e for e in item.explanations if e is not b]
    more = ("<ul>" + "".join(f"<li><strong>{escape(e.heading)}.</strong> {escape(e.sentence)}</li>"
                             for e in others) + "</ul>") if others else ""
    return (f"<h3>What drove the change</h3><p>{escape(breakdown_text(item))}</p>"
            + table_html(CONTRIBUTION_HEADERS, contribution_rows(b, item.unit, limit),
                         numeric=CONTRIBUTION_HEADERS[1:], caption=b.heading)
            + more)


def narrative_html(item: AgendaItem) -> str:
    """The story behind the curve, as restricted Markdown (no images, links, headings or HTML)."""
    n = item.narrative
    if n is None:
        return '<p class="muted">No narrative yet for this period.</p>'
    parts = []
    for label, text in (("What happened", n.what_happened), ("Why", n.why), ("What's next", n.whats_next)):
        if text and text.strip():
            parts.append(f"<h4>{escape(label)}</h4>{user_markdown(text)}")
    by = f'<p class="muted">Written by {escape(n.updated_by)}, {format_day(n.updated_at)}</p>'
    return f'<div class="narrative">{"".join(parts)}{by}</div>'


def kpi_item_html(item: AgendaItem, session_date: date, metric_titles: dict[str, str],
                  svg: str | None = None) -> str:
    """One KPI's section: status and reasons, chart, numbers, breakdown, notes, story, commitments."""
    head = (f'<p class="item-head">{_chip(item.status)}'
            + (f'<span class="chip">{escape(ASSURANCE_TEXT[item.assurance])}</span>' if item.assurance else "")
            + f'<span class="reason">{escape("; ".join(item.reasons))}</span></p>'
            + (f'<p><strong>Signal:</strong> {escape(item.signal_text)}</p>' if item.signal_text else ""))
    if svg is None and item.frame is not None and item.frame.height:
        svg = chart_svg(item_chart(item))
    chart = item_figure(item, svg) if svg else '<p class="muted">No data to chart.</p>'
    pairs = numbers_rows(item)
    half = (len(pairs) + 1) // 2
    left, right = pairs[:half], pairs[half:] + [("", "")] * (2 * half - len(pairs))
    numbers = table_html(("Measure", "Value", "Measure ", "Value "),
                         [(a, b, c, d) for (a, b), (c, d) in zip(left, right)],
                         numeric=("Value", "Value "), caption="Numbers")
    notes = ""
    if item.annotations:
        notes = "<h3>Annotations</h3><ul>" + "".join(
            f"<li>{format_day(d)}: {escape(t)}</li>" for d, t in item.annotations) + "</ul>"
    commitments = ""
    if item.open_commitments:
        commitments = "<h3>Open commitments</h3>" + commitments_table(
            list(item.open_commitments), session_date, metric_titles=metric_titles)
    return (head + chart + numbers + _breakdown_html(item) + notes
            + "<h3>Story behind the curve</h3>" + narrative_html(item) + commitments)


def data_gap_text(agenda: Agenda) -> str:
    """A warning when the session is well after the data ends (a session on 3 Dec reading data
    to 15 Nov): empty when the data reaches the session's eve or nearly (a weekend)."""
    gap = (agenda.session_date - agenda.as_of_day).days - 1
    if gap <= 3:
        return ""
    return (f"This session is on {format_date(agenda.session_date)}, but the data ends on "
            f"{format_date(agenda.as_of_day)}: the {gap} days before the session are not in these figures.")


def freshness_html(stat: "CityStat", agenda: Agenda) -> str:
    """When the data ends, the sources (read by the agenda's KPIs) late for their declared
    refresh, rows dated in the future, and the sample-data notice -- as on every page."""
    from citystat.checks.health import data_freshness

    fresh = data_freshness(stat)
    read = {s for i in agenda.kpi_items() for s in stat.registry.sources_of(stat.registry.metrics[i.metric_id])}
    late = [x for x in fresh.late if x[0] in read]
    fresh = type(fresh)(now=fresh.now, data_end=fresh.data_end, late=tuple(late),
                        future={k: v for k, v in fresh.future.items() if k in read}, sample_until=fresh.sample_until)
    parts = [f'<p class="meta"><strong>{escape(fresh.ends_text())}</strong>'
             + (f' · {escape(fresh.sample_text())}' if fresh.sample_until else "") + "</p>"]
    for text in (data_gap_text(agenda), fresh.late_text(), fresh.future_text()):
        if text:
            parts.append(f'<p class="reason"><strong>Note:</strong> {escape(text)}</p>')
    return "".join(parts)


def cover_html(stat: "CityStat", agenda: Agenda, kind: str = "Briefing packet") -> str:
    registry = stat.registry
    h = agenda.headline()
    tiles = [
        (h["kpis"], "KPIs"), (h["off_track"], "Off track"), (h["at_risk"], "At risk"),
        (h["on_track"], "On track"), (h["no_target"], "No target"), (h["no_data"], "Not enough data"),
        (h["signals"], "signals"),
        (h["open_commitments"], "open commitments"), (h["overdue_commitments"], "overdue commitments"),
    ]
    tile_html = "".join(f'<div class="tile"><span class="n">{n}</span><span class="l">{escape(label)}</span></div>'
                        for n, label in tiles)
    head = ""
    if agenda.department:
        dept = registry.departments[agenda.department]
        head = f" · presented by the {escape(dept.head)}" if dept.head else ""
    agenda_rows = [(str(i + 1), item.title, SECTION_TITLES[item.section],
                    "" if item.section == REVIEW else STATUS_LABELS[Status(item.status)],
                    "; ".join(item.reasons)) for i, item in enumerate(agenda.items)]
    return (f'<p class="meta">{escape(registry.city.name)} · {escape(kind)} · session on '
            f'{escape(_date(agenda.session_date))}{head}</p>'
            f'<p class="meta">KPIs as of {escape(_date(agenda.as_of_day))} (each KPI\'s latest period '
            f'complete on the session\'s eve).</p>'
            + freshness_html(stat, agenda)
            + f'<div class="headline">{tile_html}</div>'
            + table_html(("#", "Agenda item", "Why it is here", "Status", "Reasons"), agenda_rows,
                         caption="Agenda", css_class="data agenda-list"))


def build_packet_html(stat: "CityStat", store: "Store", agenda: Agenda, *,
                      progress: Progress | None = None, page_size: str = "A4") -> str:
    """The briefing packet as one self-contained HTML document (charts inline as SVG)."""
    metric_titles = {m.id: m.title for m in stat.registry.metrics.values()}
    total = len(agenda.items) + 1
    # vl-convert renders in native code: a few threads overlap the charts (about 0.5 s each).
    charted = [i for i in agenda.items if i.frame is not None and i.frame.height]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {item.key: pool.submit(lambda it: chart_svg(item_chart(it)), item) for item in charted}
        sections = []
        for i, item in enumerate(agenda.items):
            if progress:
                progress(i, total, item.title)
            if item.section == REVIEW:
                sections.append(Section(f"{i + 1}. {item.title}",
                                        _review_html(item, agenda.session_date, metric_titles),
                                        anchor=f"item-{i + 1}"))
                continue
            svg = futures[item.key].result() if item.key in futures else None
            body = kpi_item_html(item, agenda.session_date, metric_titles, svg)
            sub = f"{SECTION_TITLES[item.section]} · {stat.registry.departments[item.department].name}"
            sections.append(Section(f"{i + 1}. {item.title}", body, anchor=f"item-{i + 1}", subtitle=sub))
    if progress:
        progress(total - 1, total, "assembling")
    title = f"{agenda.title} — stat session {format_date(agenda.session_date)}"
    html = render_html(title, sections, PACKET_CSS, cover_html=cover_html(stat, agenda),
                       subtitle="Briefing packet", footer=f"{stat.registry.city.name} · {title}",
                       page_size=page_size)
    if progress:
        progress(total, total, "HTML ready")
    return html


def data_requests(stat: "CityStat", made: list["Commitment"], next_session: date) -> list[tuple[str, str, str]]:
    """(KPI, period, why) the next session will read: each KPI a commitment was made on."""
    from citystat.core.periods import latest_complete_period, period_label
    from citystat.session.agenda import as_of_for

    fy = stat.registry.city.fiscal_year_start_month
    eve = as_of_for(stat, next_session)
    rows: dict[str, tuple[str, str, list[str]]] = {}
    for c in made:
        metric = stat.registry.metrics.get(c.metric_id or "")
        if metric is None:
            continue
        period = period_label(latest_complete_period(eve, metric.grain, fy), metric.grain, fy)
        rows.setdefault(metric.id, (metric.title, period, []))[2].append(c.what)
    return [(title, period, "to check: " + "; ".join(whats)) for title, period, whats in rows.values()]


def build_followup_html(stat: "CityStat", store: "Store", agenda: Agenda, session: "Session | None", *,
                        page_size: str = "A4", next_session: date | None = None) -> str:
    """The follow-up memo: every commitment made at the session, with owner and due date, and
    the data the next session (on `next_session`, when known) will read to check them."""
    metric_titles = {m.id: m.title for m in stat.registry.metrics.values()}
    made = store.list_commitments(session_id=session.id) if session else []
    sections = []
    if made:
        body = (f"<p>{len(made)} commitment(s) were made at this session. They are reviewed first at "
                "the next session.</p>"
                + commitments_table(made, agenda.session_date, metric_titles=metric_titles))
    else:
        body = '<p class="muted">No commitment was recorded at this session.</p>'
    sections.append(Section("Commitments made", body, anchor="made", page_break=False))
    if next_session is not None:
        wanted = data_requests(stat, made, next_session)
        body = (f"<p>The next session, on {escape(_date(next_session))}, starts by reviewing the commitments "
                "above. It will read these data:</p>"
                + table_html(("KPI", "Period", "Why"), wanted) if wanted else
                f'<p class="muted">The next session, on {escape(_date(next_session))}, starts by reviewing '
                "the commitments above; no KPI was linked to them.</p>")
        sections.append(Section("Data required at the next session", body, anchor="next", page_break=False))
    review = [i for i in agenda.items if i.section == REVIEW]
    if review:
        sections.append(Section("Commitments reviewed", _review_html(review[0], agenda.session_date,
                                                                     metric_titles),
                                anchor="reviewed", page_break=False))
    title = f"{agenda.title} — follow-up to the stat session of {format_date(agenda.session_date)}"
    cover = (f'<p class="meta">{escape(stat.registry.city.name)} · Follow-up memo · session on '
             f'{escape(_date(agenda.session_date))}</p>')
    return render_html(title, sections, PACKET_CSS, cover_html=cover, subtitle="Follow-up memo",
                       footer=f"{stat.registry.city.name} · {title}", page_size=page_size, contents=False)

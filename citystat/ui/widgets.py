"""Widgets shared by several pages: the period picker, the KPI table, status chips, notes."""

from __future__ import annotations

from datetime import date

import polars as pl
import streamlit as st

from citystat.api import CityStat
from citystat.core.periods import period_end, period_label
from citystat.core.status import STATUS_LABELS, Status
from citystat.display.format import display_frame, format_date, plural
from citystat.kpis.frames import OverviewRow, overview_table
from citystat.ui.tables import show_table

# Status is always said in words; in Markdown the words sit in a coloured badge with a Material
# icon (a font Streamlit ships), never an emoji, so nothing depends on colour or on an emoji font.
STATUS_ICONS = {
    Status.ON_TRACK: ":material/check_circle:",
    Status.AT_RISK: ":material/warning:",
    Status.OFF_TRACK: ":material/cancel:",
    Status.NO_DATA: ":material/help:",
    Status.NO_TARGET: ":material/visibility:",
}
STATUS_BADGE_COLOURS = {Status.ON_TRACK: "green", Status.AT_RISK: "orange", Status.OFF_TRACK: "red",
                        Status.NO_DATA: "gray", Status.NO_TARGET: "gray"}
GRAIN_NAMES = {"day": "Day", "week": "Week", "month": "Month", "quarter": "Quarter", "fiscal_year": "Fiscal year"}

HOW_STATUS = (
    "**Status** compares the period's value with the target in force for that period: "
    "*on track* = meets the target; *at risk* = misses it by at most 10 % of the target (or the "
    "metric's own band); *off track* = further off; *not enough data*; *no target* = watched only. "
    "Direction matters: for a 'lower is better' KPI, meeting the target means at or below it."
)
HOW_SIGNAL = (
    "**Signal** marks a real change rather than week-to-week noise (process-behaviour / XmR "
    "chart), said in words with its way (better or worse for the KPI) and since when. A KPI "
    "signals when its latest period does: a point outside the natural process limits (centre ± "
    "2.66 × average moving range, from a baseline of the first 20 periods of the current phase); "
    "8 or more periods in a row on one side of the centre line; 3 of 4 periods beyond the half-way "
    "line to a limit on one side; or a sudden jump (the change from the period before is above the "
    "upper range limit, 3.268 × average moving range). The chart marks every period that signalled."
)
HOW_ASSURANCE = (
    "**Assurance** compares the target with the process limits (NHS 'Making Data Count'): "
    "*consistently meets* = even the worst routine value meets the target; *consistently misses* = "
    "the target lies beyond the limits, so only a change to the process will meet it; *hit and miss* "
    "= the target lies inside the limits, so the KPI meets it some periods and misses it others at "
    "random — praise or blame from period to period is noise."
)
HOW_TARGETS = (
    "**Targets** are dated: the target in force on the first day of a period applies to it. Targets of "
    "counts and sums are set per period of the KPI's own grain (e.g. per week) and scaled by the "
    "period's length when the KPI is shown at another grain."
)
HOW_CITYSCORE = (
    "**CityScore** (Boston's method): each CityScore KPI scores actual ÷ target when higher is "
    "better, target ÷ actual when lower is better (1.00 = on target, above 1 = beating it); the "
    "CityScore is the mean of those scores for the latest complete day, week, month and quarter."
)


def status_chip(status: str) -> str:
    """The status in words, for tables and metric cards: "On track"."""
    return STATUS_LABELS[Status(status)]


def status_badge(status: str) -> str:
    """The status for Markdown: its words in a coloured badge with an icon."""
    status = Status(status)
    return f":{STATUS_BADGE_COLOURS[status]}-badge[{STATUS_ICONS[status]} {STATUS_LABELS[status]}]"


def as_of_choices(stat: CityStat, grain: str = "week") -> list[tuple[date, str]]:
    """The days a reporting period closes on, newest first, each with what closes that day.

    A weekly picker alone cannot reach a month that ends mid-week (data to Mon 30 Nov: the last
    complete week ends Sun 29 Nov, on which November is not yet complete), so the month and
    quarter ends of the KPIs shown are choices too. KPIs are then shown for their latest period
    complete on the chosen day, whatever their grain.
    """
    def compute() -> list[tuple[date, str]]:
        fy = stat.registry.city.fiscal_year_start_month
        grains = [grain] + [g for g in ("month", "quarter")
                            if g != grain and any(m.grain == g for m in stat.registry.metrics.values())]
        closing: dict[date, list[str]] = {}
        for g in grains:
            for start in stat.periods(g):
                closing.setdefault(period_end(start, g, fy), []).append(period_label(start, g, fy))
        return [(day, " · ".join(labels)) for day, labels in sorted(closing.items(), reverse=True)]

    return stat.memo(("as_of_choices", grain), compute)


def as_of_picker(stat: CityStat, key: str = "as_of", grain: str = "week") -> date:
    """Pick the reporting day; defaults to the latest day a period closes on in the data.

    Returns that day: KPIs are shown for their latest period complete on it. The choice lives
    in the URL (?as_of=YYYY-MM-DD) so links share it; a date inside a period means the first
    choice on or after it (the end of its week).
    """
    choices = as_of_choices(stat, grain)
    if not choices:
        st.warning("No complete period in the data yet.")
        st.stop()
    days = [day for day, _ in choices]
    labels = dict(choices)
    wanted = st.query_params.get(key)
    index = 0
    if wanted:
        try:
            chosen = date.fromisoformat(wanted)
            later = [i for i, day in enumerate(days) if day >= chosen]
            index = later[-1] if later else 0
        except ValueError:
            st.warning(f"Ignored the period in the address ({wanted[:40]!r}): not a date.")
    day = st.selectbox(
        "As of", days, index=index, key=f"{key}_select",
        format_func=lambda d: format_date(d) + f" ({labels[d]}" + (", latest)" if d == days[0] else ")"),
        help="KPIs are shown for their latest period complete on this day: weeks end on Sundays; "
             "month and quarter ends are listed too. Defaults to the latest such day in the data, "
             "not today's date.")
    if day != days[0]:
        st.query_params[key] = day.isoformat()
    elif key in st.query_params:
        del st.query_params[key]
    return day


def kpi_table(stat: CityStat, rows: list[OverviewRow], *, key: str, show_department: bool = False,
              stale: dict[str, str] | None = None) -> str | None:
    """Show KPIs as a table with status, value, target, trend and signal; returns a clicked KPI id.

    `stale` maps metric id -> a marker (``citystat.checks.health.stale_marker``) for KPIs reading stale data.
    """
    shown = _kpi_table_frame(stat, rows, show_department, stale)
    if shown is None:
        st.info("No KPIs to show for this selection.")
        return None
    metric_ids, frame = shown
    event = show_table(
        frame,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=key,
        column_config={
            "Status": st.column_config.TextColumn(width=120),  # "Not enough data" whole
            "Assurance": st.column_config.TextColumn(help=HOW_ASSURANCE),
            "KPI": st.column_config.TextColumn(width=300),  # "EMS response time (90th percentile)" whole
            "Trend (last 26 periods)": st.column_config.LineChartColumn(width="medium", color="#1F4E79"),
            "Signal": st.column_config.TextColumn(help=HOW_SIGNAL),
            "Data": st.column_config.TextColumn(help="A source this KPI reads has missed two or more "
                                                "expected refreshes: see Data health."),
        },
    )
    selected = event.selection.rows if event and event.selection else []
    if selected:
        return metric_ids[selected[0]]
    return None


def _kpi_table_frame(stat: CityStat, rows: list[OverviewRow], show_department: bool,
                     stale: dict[str, str] | None) -> tuple[list[str], pl.DataFrame] | None:
    """(metric ids, the table as shown) for these overview rows, or None when there are none.

    Kept with the rows (`CityStat.overview` keeps its rows, so every view of a selection gets
    the same row objects): found by the rows' identities and used only if they are the very
    rows given (identities of rows since freed can be taken by others).
    """
    def build():
        table = overview_table(stat.registry, rows)
        if table.is_empty():
            return None
        table = table.with_columns(
            pl.col("status").map_elements(status_chip, return_dtype=pl.Utf8).alias("status_text"))
        columns = ["status_text", "kpi", "value", "target", "vs_prior", "signal", "assurance", "period", "trend"]
        if show_department:
            columns.insert(2, "department")
        if stale and any(stale.get(m) for m in table["metric_id"]):
            table = table.with_columns(pl.col("metric_id").replace_strict(stale, default="", return_dtype=pl.Utf8)
                                       .alias("data"))
            columns.append("data")
        headers = {"status_text": "Status", "assurance": "Assurance", "department": "Department", "kpi": "KPI",
                   "period": "Period", "value": "Value", "target": "Target", "vs_prior": "Change vs prior period",
                   "trend": "Trend (last 26 periods)", "signal": "Signal", "data": "Data"}
        return table["metric_id"].to_list(), display_frame(table.select(columns), headers=headers)

    key = ("kpi_table", tuple(id(row) for row in rows), show_department,
           tuple(sorted(stale.items())) if stale else None)
    kept_rows, shown = stat.memo(key, lambda: (tuple(rows), build()))
    if len(kept_rows) != len(rows) or any(a is not b for a, b in zip(kept_rows, rows)):
        return build()
    return shown


def open_metric(metric_id: str) -> None:
    st.query_params.clear()
    st.switch_page("pages/metric.py", query_params={"metric": metric_id})


def data_notice(stat: CityStat, metrics=None) -> None:
    """Say when the data ends, once; flag sources late for their declared refresh (those the
    given KPIs read, or all) and rows dated in the future. Sample data gets one calm notice."""
    from citystat.checks.health import clock_setting, data_freshness, reference_time

    now = reference_time(stat)
    if clock_setting() == "wall" and stat.registry.city.sample_data_until is None:
        fresh = data_freshness(stat, now)  # judged against the wall clock: changes by the second
    else:  # the freshness clock stands still (the data's own end, or the sample's last day);
        # future-dated rows are counted in the extracts the engine reads now: their fingerprint
        fresh = stat.memo(("data_freshness", now, stat.engine.data_fingerprint()), lambda: data_freshness(stat, now))
    if metrics is not None:
        read = {s for m in metrics for s in stat.registry.sources_of(m)}
        fresh = type(fresh)(now=fresh.now, data_end=fresh.data_end, late=tuple(x for x in fresh.late if x[0] in read),
                            future={k: v for k, v in fresh.future.items() if k in read},
                            sample_until=fresh.sample_until)
    st.caption(f"**{fresh.ends_text()}**" + (f" · {fresh.sample_text()}" if fresh.sample_until else ""))
    if fresh.late:
        st.warning(fresh.late_text(), icon=":material/schedule:")
    if fresh.future:
        st.warning(fresh.future_text(), icon=":material/warning:")


def problems_banner(stat: CityStat) -> None:
    problems = [p for p in stat.problems() if p.severity == "error"]
    if problems:
        st.warning(f"{plural(len(problems), 'registry or data problem')}: the affected KPIs are left out and "
                   "everything else is shown. See **Data health** for details.", icon=":material/warning:")


def problems_notice(problems, left_out: str) -> None:
    """List configuration problems (file:line [entry]: message) above a page that still serves the rest."""
    if not problems:
        return
    box = st.error if any(p.severity == "error" for p in problems) else st.warning
    box(f"{plural(len(problems), 'problem')}; {left_out} are left out.\n\n" + "\n".join(f"- `{p}`" for p in problems))


def how_computed(*texts: str) -> None:
    with st.expander("How these numbers are computed"):
        for text in texts:
            st.markdown(text)

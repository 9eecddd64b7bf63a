"""Metric detail: trend against target with process limits, comparisons, breakdowns, data, definition."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.display.charts import breakdown_chart, trend_chart, trend_summary, trend_table
from citystat.display.format import (N_HELP, delta_colour, display_frame, format_value, human_label,
                                     metric_delta)
from citystat.kpis.frames import assurance_label, assurance_sentence, explain_change, signal_sentence
from datetime import timedelta

from citystat.core.periods import period_end, period_label
from citystat.kpis.rollup import metric_sql
from citystat.ui.context import annotations_for, city
from citystat.ui.followup import followup_section
from citystat.ui.charts import chart_spec, show_chart
from citystat.ui.tables import show_table
from citystat.ui.guard import require_role
from citystat.ui.widgets import GRAIN_NAMES, HOW_ASSURANCE, data_notice, HOW_SIGNAL, HOW_STATUS, HOW_TARGETS, how_computed, status_chip
from citystat.files.csv import csv_text

require_role(Role.STAFF)
stat = city()
registry = stat.registry
failed = stat.rollup.failed_metrics()
metric_ids = [m for m in registry.metrics if m not in failed]
if not metric_ids:
    st.error("No healthy metric to show. See Data health.")
    st.stop()
departments = {d.id: d.name for d in registry.departments.values()}
wanted = st.query_params.get("metric")
if wanted and wanted not in registry.metrics:
    st.warning(f"There is no KPI called {wanted[:80]!r}; showing the first one instead.")
index = metric_ids.index(wanted) if wanted in metric_ids else 0
metric_id = st.selectbox(
    "KPI", metric_ids, index=index,
    format_func=lambda m: f"{registry.metrics[m].title} — {departments[registry.metrics[m].department]}")
st.query_params["metric"] = metric_id
metric = registry.metrics[metric_id]
unit = metric.unit.value
fy = registry.city.fiscal_year_start_month

st.title(metric.title)
st.caption(f"{departments[metric.department]} · owner: {metric.owner} · "
           f"{'higher is better' if metric.direction == 'higher' else 'lower is better' if metric.direction == 'lower' else 'watched (no target)'}"
           + (f" · tags: {', '.join(metric.tags)}" if metric.tags else ""))
st.markdown(metric.description)
data_notice(stat, [metric])

grains = ["week", "month", "quarter", "fiscal_year"] if metric.grain != "day" else ["day", "week", "month", "quarter"]
grain = st.segmented_control("Grain", grains, default=metric.grain if metric.grain in grains else grains[0],
                             format_func=GRAIN_NAMES.get, key="grain") or metric.grain
frame = stat.kpi(metric_id, grain)
if frame.is_empty() or frame["value"].drop_nulls().is_empty():
    st.info("No complete period with data for this KPI yet.")
    st.stop()

periods = frame["period_start"].to_list()
as_of = st.select_slider("Period shown in the cards", options=periods, value=periods[-1],
                         format_func=lambda p: period_label(p, grain, fy))
current = frame.filter(pl.col("period_start") == as_of).row(0, named=True)

shown = frame.filter(pl.col("period_start") <= as_of)
direction = metric.direction.value
# Three cards a row: at 1024 px four would cut "On track" and "(worse)" short.
cards = st.columns(3)
# Card labels stay short (a label is cut, not wrapped, in a narrow card): the period is named
# by the picker above and under the value; assurance is a caption under status, which wraps.
cards[0].metric("Value", format_value(current["value"], unit), border=True,
                help=f"The KPI for {current['label']}, the period chosen above.")
cards[0].caption(current["label"])
cards[1].metric("Target", format_value(current["target"], unit) if current["target"] is not None else "none",
                border=True)
cards[2].metric("Status", status_chip(current["status"]), border=True, help=HOW_STATUS + "\n\n" + HOW_ASSURANCE)
cards[2].caption(f"Assurance: {assurance_label(shown, metric)}")
comparison = st.columns(2)
comparison[0].metric("Prior period", format_value(current["prior_value"], unit),
                     delta=metric_delta(current["change_vs_prior"], unit, direction),
                     delta_color=delta_colour(direction), border=True,
                     help="The prior period's value and the change since.")
comparison[1].metric("Same period last year", format_value(current["last_year_value"], unit),
                     delta=metric_delta(current["change_vs_last_year"], unit, direction),
                     delta_color=delta_colour(direction), border=True)
if current["score"] is not None:
    st.caption(f"KPI score {current['score']:.2f} (CityScore method: actual ÷ target when higher is better, "
               "target ÷ actual when lower is better; 1.00 = on target).")
signal = stat.memo(("signal_sentence", metric_id, grain, as_of), lambda: signal_sentence(shown, direction, grain))
st.markdown(f"**Signal:** {signal}", help=HOW_SIGNAL)
st.caption(f"**Assurance:** {assurance_sentence(current, metric)}")
if current["centre"] is not None:
    st.caption(f"Natural process limits for this phase: {format_value(current['lower_limit'], unit)} to "
               f"{format_value(current['upper_limit'], unit)} around a centre of "
               f"{format_value(current['centre'], unit)}. Values inside them are routine variation.")

annotations = [(change.date, change.note) for change in metric.process_changes] + annotations_for(metric_id)
columns, rows = stat.memo(("trend_table", metric_id, grain), lambda: trend_table(frame, unit=unit))
show_chart(chart_spec(trend_chart, frame, title=f"{metric.title} by {GRAIN_NAMES[grain].lower()}", unit=unit,
                      annotations=annotations, height=320, direction=direction),
           stat.memo(("trend_summary", metric_id, grain), lambda: trend_summary(frame, title=metric.title, unit=unit,
                                                                                grain=grain)),
           columns=columns, rows=rows,
           table_label="Data table (newest first)", width="stretch", height=420)

followup_section(stat, [metric_id], on=period_end(as_of, grain, fy) + timedelta(days=1),
                 heading="Commitments and the story behind the curve")

if metric.dimensions:
    st.subheader("Breakdown")
    tabs = st.tabs([d.replace("_", " ").title() for d in metric.dimensions])
    for tab, dimension in zip(tabs, metric.dimensions):
        with tab:
            table = stat.breakdown(metric_id, grain, dimension, as_of)
            if table.is_empty():
                st.info("No data for this period.")
                continue
            for comparison in ("prior", "last_year"):
                explained = stat.memo(("explain_change", metric_id, grain, as_of, dimension, comparison),
                                      lambda: explain_change(stat.registry, stat.rollup, stat.metric(metric_id), grain,
                                                             as_of, dimension, comparison))
                if explained is not None:
                    st.markdown(explained.sentence)
            left, right = st.columns([3, 2])
            show_chart(chart_spec(breakdown_chart, table, dimension=dimension, unit=unit),
                       f"{metric.title} by {dimension.replace('_', ' ')}, {table.height} values; "
                       "the table beside the chart lists them.", where=left, width="stretch")
            show_table(stat.memo(("breakdown_table", metric_id, grain, dimension, as_of), lambda: display_frame(
                           table.select("dimension_value", "value", "prior_value", "change", "n"),
                           headers={"dimension_value": human_label(dimension), "change": "Its own change"},
                           units={"value": unit, "prior_value": unit, "n": "count"},
                           labels=["dimension_value"], changes={"change": (unit, direction)})),
                       where=right, width="stretch")
            st.caption(N_HELP)
            # the file is written when the button is clicked (not stored on every view)
            right.download_button(f"Download the breakdown by {human_label(dimension).lower()} (CSV)",
                                  lambda table=table: csv_text(table),
                                  key=f"breakdown-{dimension}",
                                  file_name=f"{metric_id}_{grain}_{dimension}_{as_of}.csv", mime="text/csv")

st.subheader("Data")
data_columns = ["label", "value", "numerator", "denominator", "n", "target", "status", "centre", "lower_limit",
                "upper_limit", "prior_value", "change_vs_prior", "last_year_value", "change_vs_last_year"]
show_table(stat.memo(("data_table", metric_id, grain), lambda: display_frame(
               frame.select(data_columns).reverse().with_columns(
                   pl.col("status").map_elements(status_chip, return_dtype=pl.Utf8)),
               units={c: unit for c in ("value", "target", "centre", "lower_limit", "upper_limit", "prior_value",
                                        "last_year_value")} | {"numerator": "number", "denominator": "number",
                                                               "n": "count"},
               changes={"change_vs_prior": (unit, direction), "change_vs_last_year": (unit, direction)})),
           width="stretch")
st.caption(N_HELP + " The CSV holds every column, unrounded.")
st.download_button("Download CSV", lambda: csv_text(frame),
                   file_name=f"{metric_id}_{grain}.csv", mime="text/csv", icon=":material/download:")

st.subheader("Definition")
targets = pl.DataFrame([{"From": t.from_, "Target": t.value, "Note": t.note or ""}
                        for t in metric.targets]) if metric.targets else None
if targets is not None:
    show_table(display_frame(targets, units={"Target": unit}))
st.markdown(f"Computed as a **{metric.kind}**"
            + (f" over source `{metric.source}`" if metric.source else "")
            + (f"; dimensions: {', '.join(metric.dimensions)}" if metric.dimensions else "") + ".")
st.code(metric_sql(registry, metric, grain), language="sql", wrap_lines=True)
how_computed(HOW_STATUS, HOW_TARGETS, HOW_SIGNAL,
             "Partial periods at either end of the data are left out. Rates are numerator ÷ denominator "
             "within the period; the CSV holds both so every value can be checked.")

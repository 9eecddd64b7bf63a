"""Overview: the city at a glance for the mayor's office."""

from datetime import timedelta

import streamlit as st

from citystat.auth import Role
from citystat.checks.health import stale_marker, stale_sources
from citystat.display.format import status_counts_text
from citystat.ui.context import city
from citystat.ui.followup import attention_list
from citystat.ui.guard import require_role
from citystat.ui.widgets import (HOW_ASSURANCE, HOW_CITYSCORE, HOW_SIGNAL, HOW_STATUS, HOW_TARGETS, as_of_picker, how_computed, kpi_table,
                                 data_notice, open_metric, problems_banner)

require_role(Role.STAFF)
stat = city()
registry = stat.registry

st.title(f"{registry.city.name} CityStat")
top = st.columns([3, 3, 2])  # the As of picker names day and period: room to read it whole
with top[0]:
    as_of_day = as_of_picker(stat)
departments = {d.id: d.name for d in registry.departments.values()}
with top[1]:
    chosen_departments = st.multiselect("Departments", list(departments), format_func=departments.get,
                                        placeholder="All departments")
all_tags = sorted({t for m in registry.metrics.values() for t in m.tags})
with top[2]:
    chosen_tags = st.multiselect("Tags", all_tags, placeholder="Any tag")
problems_banner(stat)
data_notice(stat, list(registry.metrics.values()))

scores = stat.city_scores(as_of_day)
st.subheader("CityScore", help=HOW_CITYSCORE)
score_columns = st.columns(len(scores) or 1)
for column, row in zip(score_columns, scores.iter_rows(named=True)):
    value = "—" if row["score"] is None else f"{row['score']:.2f}"
    column.metric(f"{row['window'].title()} · {row['label']}", value,
                  help=f"Mean of {row['metrics_scored']} of {row['metrics']} CityScore KPIs with data. "
                       "1.00 = on target.", border=True)

metrics = [m for m in registry.metrics.values()
           if (not chosen_departments or m.department in chosen_departments)
           and (not chosen_tags or set(chosen_tags) & set(m.tags))]
rows = stat.overview(as_of_day, metrics=metrics)
attention_list(stat, rows, as_of_day + timedelta(days=1))
st.caption(f"{len(rows)} KPIs · " + status_counts_text(r.status for r in rows))

stale = stale_sources(stat)
stale_markers = {r.metric.id: stale_marker(stat, r.metric, stale) for r in rows}
clicked = None
for department_id in [d for d in departments if not chosen_departments or d in chosen_departments]:
    department_rows = [r for r in rows if r.metric.department == department_id]
    if not department_rows:
        continue
    st.markdown(f"#### {departments[department_id]}")
    clicked = kpi_table(stat, department_rows, key=f"kpis_{department_id}", stale=stale_markers) or clicked
if clicked:
    open_metric(clicked)
how_computed(HOW_STATUS, HOW_ASSURANCE, HOW_TARGETS, HOW_SIGNAL, HOW_CITYSCORE,
             "Each KPI is shown at its own reporting grain (weekly or monthly) for its latest period "
             "that is complete on the chosen date. Click a row to open the KPI.")

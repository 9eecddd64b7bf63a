"""Department: one department's KPIs, its standard KPIs, and their statuses."""

from datetime import timedelta

import streamlit as st

from citystat.auth import Role
from citystat.ui.context import city, current_user
from citystat.ui.followup import calendar_note, followup_section
from citystat.ui.guard import require_role
from citystat.ui.widgets import HOW_SIGNAL, HOW_STATUS, HOW_TARGETS, as_of_picker, data_notice, how_computed, kpi_table, open_metric

require_role(Role.STAFF)
user = current_user()
stat = city()
registry = stat.registry
departments = {d.id: d.name for d in registry.departments.values()}
own = sorted(user.departments & set(departments))
choices = own or list(departments)
wanted = st.query_params.get("department")
index = choices.index(wanted) if wanted in choices else 0

top = st.columns([3, 2])
with top[0]:
    department_id = st.selectbox("Department", choices, index=index, format_func=departments.get)
st.query_params["department"] = department_id
with top[1]:
    as_of_day = as_of_picker(stat)
department = registry.departments[department_id]
st.title(department.name)
if department.head:
    st.caption(f"Presented by the {department.head}")
data_notice(stat, registry.metrics_of(department_id))

calendar_note(stat, department=department_id)
rows = stat.overview(as_of_day, metrics=registry.metrics_of(department_id))
clicked = kpi_table(stat, rows, key="department_kpis")
if clicked:
    open_metric(clicked)

followup_section(stat, [m.id for m in registry.metrics_of(department_id)], on=as_of_day + timedelta(days=1),
                 heading="Commitments and stories behind the curve")

standard = stat.standard_kpis(department_id, as_of_day)
if standard:
    st.markdown("#### Standard KPIs (every department reports these)")
    clicked = kpi_table(stat, standard, key="standard_kpis")
    if clicked:
        open_metric(clicked)
how_computed(HOW_STATUS, HOW_TARGETS, HOW_SIGNAL,
             "Standard KPIs (unscheduled overtime, sick time, injuries) are the city-wide HR measures "
             "broken down to this department; they use the city-wide target.")

"""Alerts: open alerts raised by the rules in alerts.yaml; staff acknowledge them here."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.display.format import plural
from citystat.ui.context import city
from citystat.ui.followup import require_store
from citystat.ui.guard import require_role

user = require_role(Role.STAFF)
stat = city()
st.title("Alerts")
state = require_store("alerts database")
st.caption("Raised by `python -m citystat alerts` (run from cron) from the rules in alerts.yaml. "
           "Each case is raised once and e-mailed to its owners; acknowledge it when someone is on it.")

departments = {d.id: d.name for d in stat.registry.departments.values()}
top = st.columns(3)
status = top[0].segmented_control("Show", ["open", "acknowledged", "all"], default="open", key="alert_status")
department = top[1].selectbox("Department", [None, *departments], format_func=lambda d: "All" if d is None
                              else departments[d], key="alert_department")
alerts = state.list_alerts(status=None if status in (None, "all") else status, department=department)
rule_ids = sorted({a.rule_id for a in alerts})
rule = top[2].selectbox("Rule", [None, *rule_ids], format_func=lambda r: "All" if r is None else r, key="alert_rule")
alerts = [a for a in alerts if rule is None or a.rule_id == rule]

if not alerts:
    st.success("No alerts to show.")
    st.stop()
table = pl.DataFrame([{
    "id": a.id, "raised": a.raised_at.strftime("%Y-%m-%d %H:%M"), "rule": a.rule_id,
    "department": departments.get(a.department or "", a.department or ""), "summary": a.summary,
    "e-mailed": a.notified_at.strftime("%Y-%m-%d %H:%M") if a.notified_at else "not yet",
    "status": a.status, "acknowledged by": a.acknowledged_by or "",
} for a in alerts])
st.caption(plural(len(alerts), "alert"))
event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
                     key="alerts_table", column_config={"summary": st.column_config.TextColumn("summary", width="large")})
chosen = [table["id"][i] for i in (event.selection.rows if event and event.selection else [])]
open_chosen = [i for i in chosen if next(a for a in alerts if a.id == i).status == "open"]
if st.button(f"Acknowledge {len(open_chosen)} selected", disabled=not open_chosen, type="primary"):
    current = require_role(Role.STAFF)  # checked again on the server right before the write
    for alert_id in open_chosen:
        state.acknowledge(int(alert_id), actor=current.actor)
    st.toast(f"Acknowledged {plural(len(open_chosen), 'alert')}.")
    st.rerun()

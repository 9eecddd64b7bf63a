"""Commitments: every commitment across the city, filterable; update status with a note."""

from datetime import date

import polars as pl
import streamlit as st

from citystat.auth import PermissionDenied, Role
from citystat.display.format import format_day, plural
from citystat.files.csv import csv_text
from citystat.session.agenda import FormError, update_commitment
from citystat.store import ConflictError
from citystat.ui.context import city, current_user
from citystat.ui.followup import require_store
from citystat.ui.guard import require_role

require_role(Role.STAFF)
user = current_user()
stat = city()
state = require_store()
registry = stat.registry
departments = {d.id: d.name for d in registry.departments.values()}
st.title("Commitments")
st.caption("What departments promised at stat sessions. Open ones are reviewed first at the department's next session.")

filters = st.columns([2, 2, 2, 2])
status = filters[0].selectbox("Status", ["open", "done", "dropped", "all"], key="status")
dept = filters[1].selectbox("Department", ["all", *departments], format_func=lambda d: "All" if d == "all"
                            else departments[d], key="dept")
owner_text = filters[2].text_input("Owner contains", key="owner")
overdue_on = filters[3].date_input("Overdue on", value=date.today(), key="overdue_on", format="YYYY-MM-DD",
                                   help="An open commitment due before this date is overdue.")
only_overdue = st.checkbox("Only overdue", key="only_overdue")

commitments = state.list_commitments(status=None if status == "all" else status,
                                     department=None if dept == "all" else dept,
                                     overdue_on=overdue_on if only_overdue else None)
if owner_text.strip():
    commitments = [c for c in commitments if owner_text.strip().lower() in c.owner.lower()]
if not commitments:
    if not state.list_commitments():
        st.info("No commitment yet. Commitments are made at stat sessions: open the Stat session page, pick the "
                "department, open an agenda item and use \"Make a commitment on this KPI\" (or \"Make a commitment "
                "not tied to one KPI\" below the agenda). Open ones are reviewed first at the next session.")
        st.page_link("pages/session.py", label="Open the Stat session page", icon=":material/event:")
    else:
        st.info("No commitment matches these filters. Choose \"all\" under Status, or another department.")
    st.stop()
sessions = {s.id: s for s in state.list_sessions()}
table = pl.DataFrame([{
    "id": c.id, "": "OVERDUE" if c.is_overdue(overdue_on) else "",
    "What": c.what, "Owner": c.owner, "Due": c.due_date, "Status": c.status,
    "Department": departments.get(c.department, c.department),
    "KPI": registry.metrics[c.metric_id].title if c.metric_id in registry.metrics else (c.metric_id or ""),
    "Made at": (f"{sessions[c.session_id].session_date} "
                f"{sessions[c.session_id].department or 'topic ' + (sessions[c.session_id].topic or '')}")
    if c.session_id in sessions else "",
    "Note": c.note or ""} for c in commitments])
st.markdown(f"**{plural(len(commitments), 'commitment')}**; {sum(c.is_overdue(overdue_on) for c in commitments)} overdue. "
            "Select a row to update it.")
event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                     key="table", column_config={"id": None})
st.download_button("Download CSV", csv_text(table.drop("")), file_name="commitments.csv", mime="text/csv",
                   icon=":material/download:")

picked = event.selection.rows if event and event.selection else []
chosen_id = table["id"][picked[0]] if picked else st.session_state.get("chosen")
by_id = {c.id: c for c in commitments}
if chosen_id not in by_id:
    st.stop()
st.session_state["chosen"] = chosen_id
key = f"upd_{chosen_id}"
# The version the user is editing: the one shown, or theirs after a conflict.
base = st.session_state.get(f"{key}_base") or by_id[chosen_id]
st.subheader(f"Update: {base.what}")
st.caption(f"Owner {base.owner} · due {format_day(base.due_date)} · now {base.status} · version {base.version}")
theirs = st.session_state.get(f"{key}_conflict")
if theirs is not None:
    st.warning(f"{theirs.updated_by} changed this commitment while you were editing: it is now **{theirs.status}** "
               f"with the note below. Your note is still in the form; save again to apply yours on top.")
    st.text(theirs.note or "(no note)")
if not user.can_edit_department(base.department):
    st.info("Only the department's leads can update its commitments.")
    st.stop()
with st.form(f"{key}_form", clear_on_submit=False):
    st.selectbox("Status", ["open", "done", "dropped"], index=["open", "done", "dropped"].index(base.status),
                 key=f"{key}_status")
    error_status = st.empty()
    st.text_area("Note (what was done, or why it was dropped)", key=f"{key}_note", height=90)
    error_note = st.empty()
    saved = st.form_submit_button("Save")
if saved:
    try:
        update_commitment(state, user, base, status=st.session_state[f"{key}_status"],
                          note=st.session_state[f"{key}_note"])
    except FormError as exc:
        if "note" in exc.errors:
            error_note.error(exc.errors["note"])
        if "status" in exc.errors:
            error_status.error(exc.errors["status"])
    except ConflictError:
        current = state.get_commitment(chosen_id)
        st.session_state[f"{key}_conflict"] = current
        st.session_state[f"{key}_base"] = current
        st.rerun()
    except PermissionDenied as exc:
        st.error(str(exc))
    else:
        st.session_state.pop(f"{key}_conflict", None)
        st.session_state.pop(f"{key}_base", None)
        del st.session_state[f"{key}_note"]
        st.toast("Commitment updated.")
        st.rerun()

"""Data health: registry and query problems (freshness and quality checks join here)."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.ui.context import city
from citystat.ui.guard import require_role

require_role(Role.STAFF)
stat = city()
st.title("Data health")
problems = stat.problems()
errors = [p for p in problems if p.severity == "error"]
st.subheader("Registry and queries")
if not problems:
    st.success(f"All {len(stat.registry.metrics)} metrics and {len(stat.registry.sources)} sources validate.")
else:
    st.error(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s). "
             "Broken metrics are left out; every other KPI is served.")
    st.dataframe(pl.DataFrame([{"severity": p.severity, "file": p.file, "line": p.line, "entry": p.entry,
                                "problem": p.message} for p in problems]), hide_index=True, width="stretch")
st.caption("Run `python -m citystat validate` to see the same list on the command line.")

"""Data health: registry and query problems, then freshness and quality checks per source."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.checks.health import clock_setting, data_freshness, health_report, health_table, reference_time
from citystat.display.format import display_frame, format_date, plural
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
    st.error(f"{plural(len(errors), 'error')}, {plural(len(problems) - len(errors), 'warning')}. "
             "Broken metrics are left out; every other KPI is served.")
    st.dataframe(display_frame(pl.DataFrame([{"severity": p.severity, "file": p.file, "line": p.line,
                                              "entry": p.entry, "problem": p.message} for p in problems]),
                               labels=["severity"]), hide_index=True, width="stretch")
st.caption("Run `python -m citystat validate` to see the same list on the command line.")

st.subheader("Freshness and quality")
clocks = {"wall": "today (the real clock)", "data": "the newest data in any source (extract cut)"}
clock = st.radio("Judge freshness against", list(clocks), format_func=clocks.get, horizontal=True,
                 index=list(clocks).index(clock_setting()), key="health_clock")
now = reference_time(stat, clock)
report = health_report(stat, now=now)
freshness = data_freshness(stat, now=now)
st.caption(f"**{freshness.ends_text()}**" + (f" · {freshness.sample_text()}" if freshness.sample_until else ""))
if freshness.future:
    st.warning(freshness.future_text(), icon=":material/warning:")
flagged = [h for h in report if h.freshness.flagged]
failing = [h for h in report if any(c.check != "freshness" and not c.passed for c in h.checks) or h.error]
if flagged:
    st.warning(f"{plural(len(flagged), 'source')} late or stale: " + ", ".join(h.title for h in flagged)
               + ". KPIs that read a stale source are marked on the Overview and Metric pages.")
if failing:
    st.warning(f"{plural(len(failing), 'source')} failing a quality check: " + ", ".join(h.title for h in failing))
if not flagged and not failing:
    st.success("Every source is fresh and passes its checks.")
st.caption(f"Judged as of {format_date(now)}." if now else "No data time known.")
st.dataframe(display_frame(health_table(report, freshness.future).drop("source_id"), headers={
    "last_data": "Newest data", "expected_refresh": "Expected refresh", "change_since_last_refresh":
    "Rows since last refresh", "future_rows": "Rows dated in the future"}), hide_index=True, width="stretch")

st.markdown("#### Checks per source")
for item in report:
    failed = [c for c in item.checks if not c.passed]
    label = f"{':material/warning:' if failed or item.error else ':material/check_circle:'} {item.title} — {len(item.checks) - len(failed)} of {len(item.checks)} passed"
    with st.expander(label):
        if item.error:
            st.error(item.error)
        st.dataframe(display_frame(pl.DataFrame([{"check": c.check, "column": c.column or "", "passed": c.passed,
                                                  "result": c.message} for c in item.checks]), labels=["check"]),
                     hide_index=True, width="stretch")
with st.expander("How freshness and checks work"):
    st.markdown(
        "Freshness is judged against today (or, for sample data, the day its data ends). Each source declares "
        "how often it should be refreshed (`refresh:` in metrics.yaml, e.g. `P1D` daily). "
        "**Fresh**: the newest record is no older than one interval; **late**: one refresh missed; "
        "**stale**: two or more missed, and every KPI that reads the source is marked stale. Weekends do not count "
        "for sources refreshed daily to every few days (no permits are issued on Sundays). Months count as 30 days.\n\n"
        "Checks come from each source's `checks:` in metrics.yaml: `key_columns` (largest share of empty values), "
        "`ranges` (plausible minimum and maximum), `unique` and `allowed_values`. *Rows since last refresh* compares "
        "the row count with the count when the extract last changed; a shrinking extract is flagged.")

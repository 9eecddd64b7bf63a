"""City performance: the public page for residents (no sign-in).

Shows only what `citystat.publish.public` builds from KPIs tagged `public`: plain-language
values, targets, trends and whether the city is on track. Nothing internal (narratives,
commitments, owners, non-public sources) is read here.
"""

import streamlit as st

from citystat.publish.public import (public_chart, public_chart_summary, public_city_score, public_data_note,
                                     public_kpis, public_trend_rows)
from citystat.auth import Role
from citystat.ui.context import city
from citystat.ui.charts import show_chart
from citystat.ui.guard import require_role

require_role(Role.PUBLIC)  # also puts a deep-linked first visit inside the app's shell
stat = city()
name = stat.registry.city.name
st.title(f"How {name} is doing")
st.markdown(f"The measures {name} uses to track its services, updated from city data. "
            "Each one shows the latest complete week or month, the target the city set, and "
            "whether the city is on track.")
st.caption(public_data_note(stat))

scores = public_city_score(stat)
if scores:
    st.subheader("CityScore", help="Each measure scores its value against its target (1.00 = exactly on target); "
                                   "the CityScore is the average over the city's headline measures.")
    columns = st.columns(len(scores))
    for column, score in zip(columns, scores):
        column.metric(f"{score['window'].title()} · {score['label']}", f"{score['score']:.2f}", border=True,
                      help="1.00 means on target on average; above 1.00 is better than target.")
    st.caption("1.00 means the city met its targets on average; above 1.00 is better than target.")

kpis = public_kpis(stat)
if not kpis:
    st.info("No public measures are available yet.")
departments = list(dict.fromkeys(k.department for k in kpis))
for department in departments:
    st.header(department, divider="gray")
    for kpi in [k for k in kpis if k.department == department]:
        with st.container(border=True):
            left, right = st.columns([3, 2])
            with left:
                st.markdown(f"#### {kpi.title}")
                st.markdown(f"**{kpi.status_badge}** · {kpi.period}")
                st.markdown(kpi.sentence)
                st.caption(f"What it means: {kpi.meaning}")
                if kpi.stale:
                    st.warning(kpi.stale)
                if kpi.privacy_note:
                    st.caption(f":material/lock: {kpi.privacy_note}")
            with right:
                if kpi.trend.height:
                    columns, rows = public_trend_rows(kpi)
                    show_chart(public_chart(kpi), public_chart_summary(kpi), columns=columns, rows=rows,
                               width="stretch")
st.caption("Data you can download: see **Open data**.")

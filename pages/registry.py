"""Registry browser: every metric and source, searchable, with definitions, targets and state."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.display.format import display_frame, refresh_words
from citystat.analyst.reference import metric_catalog, search_catalog
from citystat.kpis.rollup import metric_sql
from citystat.ui.context import city
from citystat.ui.guard import require_role
from citystat.ui.widgets import open_metric

require_role(Role.ANALYST)
stat = city()
registry = stat.registry
STATE_ICONS = {"ok": "ok", "warning": "warning", "error": "error"}

st.title("Registry")
st.caption(f"{registry.path} · {len(registry.metrics)} metrics · {len(registry.sources)} sources. "
           "States come from the last load of the registry and extracts (see Data health); "
           "run `python -m citystat validate` for the full check. Field reference: docs/registry-reference.md.")
query = st.text_input("Search", key="registry_search", placeholder="words in an id, title, owner, tag, source…")
metrics_tab, sources_tab = st.tabs(["Metrics", "Sources"])

with metrics_tab:
    catalog = search_catalog(metric_catalog(stat), query)
    st.caption(f"{catalog.height} of {len(registry.metrics)} metrics")
    shown = catalog.with_columns(pl.col("state").replace_strict(STATE_ICONS, default=pl.col("state")))
    st.dataframe(display_frame(shown.select("state", "id", "title", "department", "owner", "kind", "unit",
                                            "direction", "grain", "sources", "targets", "tags"),
                               headers={"id": "Id", "kind": "Computed as"}),
                 hide_index=True, width="stretch", key="metric_table")
    if catalog.height:
        metric_id = st.selectbox("Details of", catalog["id"].to_list(), key="registry_metric",
                                 format_func=lambda m: f"{m} — {registry.metrics[m].title}")
        row = catalog.filter(pl.col("id") == metric_id).row(0, named=True)
        metric = registry.metrics[metric_id]
        with st.container(border=True):
            st.subheader(metric.title)
            st.markdown(metric.description)
            st.markdown(f"**State:** {STATE_ICONS[row['state']]}" + (f" — {row['problems']}" if row["problems"] else ""))
            facts = st.columns(4)
            facts[0].markdown(f"**Department**  \n{row['department']}")
            facts[1].markdown(f"**Owner**  \n{metric.owner}")
            facts[2].markdown(f"**Unit · direction**  \n{metric.unit.value} · {metric.direction.value}")
            facts[3].markdown(f"**Sources**  \n{row['sources'] or '—'}")
            st.markdown(f"**Definition:** `{row['definition']}`")
            if metric.dimensions:
                st.markdown("**Dimensions:** " + ", ".join(metric.dimensions))
            if metric.tags:
                st.markdown("**Tags:** " + ", ".join(metric.tags))
            st.markdown("**Targets over time**")
            if metric.targets:
                st.dataframe(pl.DataFrame([{"from": t.from_.isoformat(), "target": t.value, "note": t.note}
                                           for t in metric.targets],
                                          schema={"from": pl.Utf8, "target": pl.Float64, "note": pl.Utf8}),
                             hide_index=True)
            else:
                st.caption("No targets (watched).")
            st.markdown("**Query** (at the default grain)")
            try:
                st.code(metric_sql(registry, metric, metric.grain), language="sql", wrap_lines=True)
            except (OSError, KeyError) as exc:
                st.error(f"Cannot show the query: {exc}")
            if row["state"] != "error":
                st.button("Open the metric page", key="open_metric", on_click=open_metric, args=(metric_id,))

with sources_tab:
    sources = stat.sources()
    words = query.strip()
    if words:
        keep = search_catalog(sources.drop("columns").with_columns(pl.all().cast(pl.Utf8)), words)["id"].to_list()
        sources = sources.filter(pl.col("id").is_in(keep))
    st.caption(f"{sources.height} of {len(registry.sources)} sources")
    st.dataframe(display_frame(sources.select("id", "title", "rows", "first_time", "last_time", "last_refresh",
                                              pl.col("refresh").map_elements(refresh_words, return_dtype=pl.Utf8),
                                              "department", "sensitive", "publishable", "available"),
                               headers={"id": "Id", "first_time": "Data from", "last_time": "Data to",
                                        "last_refresh": "File changed", "refresh": "Expected refresh"}),
                 hide_index=True, width="stretch", key="source_table")
    for source in sources.iter_rows(named=True):
        label = f"`{source['id']}` — {source['title']}" + ("" if source["available"] else " :material/error: unavailable")
        with st.expander(label):
            st.markdown(source["description"])
            st.caption(f"From `{source['location']}` · time column: `{source['time_column'] or '—'}` · "
                       f"expected refresh {source['refresh']}"
                       + (f" · rows {source['rows']:,}" if source["rows"] is not None else ""))
            if source["problems"]:
                st.error(source["problems"])
            st.dataframe(pl.DataFrame(source["columns"], schema={"column": pl.Utf8, "description": pl.Utf8}),
                         hide_index=True, width="stretch")

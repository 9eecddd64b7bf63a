"""Open data: every publishable source with its dictionary, time range, size, licence and downloads."""

import json

import polars as pl
import streamlit as st

from citystat.publish.catalog import (CatalogError, catalog_document, catalog_entries, download_bytes,
                                      file_name)
from citystat.publish.dcat import MEDIA_TYPES
from citystat.auth import Role
from citystat.checks.health import data_freshness
from citystat.display.format import display_frame, format_date, format_day, refresh_words
from citystat.ui.context import city
from citystat.ui.guard import require_role

require_role(Role.PUBLIC)  # also puts a deep-linked first visit inside the app's shell
stat = city()
st.title("Open data")
st.markdown(f"Data the City of {stat.registry.city.name} publishes, free to reuse under the licence shown. "
            "Records about people are only published as monthly counts, with small numbers hidden.")

entries = catalog_entries(stat)
freshness = data_freshness(stat)
late = {x[0] for x in freshness.late}
st.caption(freshness.sample_text() or freshness.ends_text())
if not entries:
    st.info("No dataset is published yet.")
for entry in entries:
    with st.container(border=True):
        st.subheader(entry.title)
        st.markdown(entry.source.description)
        span = (f"{format_day(entry.first_time)} – {format_day(entry.last_time)}"
                if entry.first_time and entry.last_time else "—")
        ends = format_date(entry.last_time.date()) if entry.last_time else "—"
        st.markdown(f"**Time range:** {span}  \n**Rows:** {entry.rows:,}  \n"
                    f"**Data to:** {ends} · expected to be updated {refresh_words(entry.source.refresh)}")
        if entry.source.id in late:
            st.warning(f"Late: this data should be updated {refresh_words(entry.source.refresh)}, but the newest "
                       f"record is from {ends}.", icon=":material/schedule:")
        st.markdown(f"Licence: [{entry.license}]({entry.license})"
                   + (" · Published as suppressed monthly counts (data about people)." if entry.aggregated else ""))
        with st.expander("Data dictionary"):
            st.dataframe(display_frame(pl.DataFrame([{"Column": f["name"], "Type": f.get("type", ""),
                                                      "Description": f["description"]} for f in entry.dictionary])),
                         hide_index=True, width="stretch")
        buttons = st.columns(3)
        for column, fmt in zip(buttons, ("csv", "parquet", "xlsx")):
            column.download_button(
                f"Download {fmt.upper()}", data=lambda i=entry.id, f=fmt: download_bytes(stat, i, f),
                file_name=file_name(entry.id, fmt), mime=MEDIA_TYPES[fmt], key=f"dl_{entry.id}_{fmt}",
                on_click="ignore", icon=":material/download:")

st.subheader("Catalog for machines")
try:
    document = catalog_document(stat)
    st.download_button("Download data.json (DCAT-US 1.1)", json.dumps(document, indent=2), file_name="data.json",
                       mime="application/json", on_click="ignore")
    st.caption("Project Open Data v1.1 catalog, the format Data.gov harvests.")
except CatalogError as exc:
    st.warning(f"The data.json catalog cannot be built: {exc}")

"""The Registry page lists every metric and source, searches, and shows a metric's definition."""

from __future__ import annotations

import pyarrow.parquet as pq
from streamlit.testing.v1 import AppTest

from citystat.registry.loader import load_registry

from .conftest import PROJECT_ROOT

REGISTRY = load_registry(PROJECT_ROOT / "metrics.yaml")


def table(app: AppTest, column: str):
    """The first table on the page with this column (the metric table has "Computed as", the source table
    "File changed")."""
    return next(f.value for f in app.dataframe if column in f.value.columns)


def test_registry_page_lists_searches_and_details():
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    app.run()
    app.switch_page("pages/registry.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    metrics_table = table(app, "Computed as")
    assert sorted(metrics_table["Id"]) == sorted(REGISTRY.metrics)
    assert set(metrics_table["State"]) == {"ok"}
    sources_table = table(app, "File changed")
    assert sorted(sources_table["Id"]) == sorted(REGISTRY.sources)
    permits = sources_table[sources_table["Id"] == "permits"].iloc[0]
    assert permits["Rows"] == f'{pq.ParquetFile(PROJECT_ROOT / "data" / "permits.parquet").metadata.num_rows:,}'
    assert permits["Expected refresh"] == "daily" and permits["Data to"] == "13 Nov 2026"

    app.text_input(key="registry_search").input("graffiti").run()
    found = table(app, "Computed as")
    expected = [m.id for m in REGISTRY.metrics.values()
                if "graffiti" in (m.id + m.title + m.description + " ".join(m.tags) + (m.filter or "")).lower()]
    assert sorted(found["Id"]) == sorted(expected) and expected
    app.selectbox(key="registry_metric").select("graffiti_days_to_close").run()
    shown = "\n".join(m.value for m in app.markdown)
    metric = REGISTRY.metrics["graffiti_days_to_close"]
    assert metric.description in shown and metric.owner in shown
    assert "median(" in shown  # the definition of a median measure
    assert any("service_requests" in c.value for c in app.code)  # its query

    app.text_input(key="registry_search").input("no metric has this zzz").run()
    assert table(app, "Computed as").empty
    assert not app.exception

"""The Registry page lists every metric and source, searches, and shows a metric's definition."""

from __future__ import annotations

import pyarrow.parquet as pq
from streamlit.testing.v1 import AppTest

from citystat.registry.loader import load_registry

from .conftest import PROJECT_ROOT

REGISTRY = load_registry(PROJECT_ROOT / "metrics.yaml")


def table(app: AppTest, column: str):
    """The first table on the page with this column (the metric table has `kind`, the source table `last_refresh`)."""
    return next(f.value for f in app.dataframe if column in f.value.columns)


def test_registry_page_lists_searches_and_details():
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    app.run()
    app.switch_page("pages/registry.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    metrics_table = table(app, "kind")
    assert sorted(metrics_table["id"]) == sorted(REGISTRY.metrics)
    assert set(metrics_table["state"]) == {"ok"}
    sources_table = table(app, "last_refresh")
    assert sorted(sources_table["id"]) == sorted(REGISTRY.sources)
    permits = sources_table[sources_table["id"] == "permits"].iloc[0]
    assert permits["rows"] == pq.ParquetFile(PROJECT_ROOT / "data" / "permits.parquet").metadata.num_rows

    app.text_input(key="registry_search").input("graffiti").run()
    found = table(app, "kind")
    expected = [m.id for m in REGISTRY.metrics.values()
                if "graffiti" in (m.id + m.title + m.description + " ".join(m.tags) + (m.filter or "")).lower()]
    assert sorted(found["id"]) == sorted(expected) and expected
    app.selectbox(key="registry_metric").select("graffiti_days_to_close").run()
    shown = "\n".join(m.value for m in app.markdown)
    metric = REGISTRY.metrics["graffiti_days_to_close"]
    assert metric.description in shown and metric.owner in shown
    assert "median(" in shown  # the definition of a median measure
    assert any("service_requests" in c.value for c in app.code)  # its query

    app.text_input(key="registry_search").input("no metric has this zzz").run()
    assert table(app, "kind").empty
    assert not app.exception

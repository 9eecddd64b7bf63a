"""The Python API against the sample city, checked with independent reads of the extracts,
and the example notebook executed cell by cell so it cannot rot."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import altair as alt
import polars as pl
import pyarrow.parquet as pq
import pytest
from ruamel.yaml import YAML

from .conftest import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"


def test_metrics_lists_every_registry_entry(sample_city):
    ids = [m["id"] for m in YAML(typ="safe").load((PROJECT_ROOT / "metrics.yaml").read_text())["metrics"]]
    listed = sample_city.metrics()
    assert sorted(listed["id"].to_list()) == sorted(ids)
    assert listed["ok"].all()


def test_kpi_series_matches_a_hand_computation(sample_city):
    frame = sample_city.kpi("pothole_on_time", grain="month")
    for column in ("period_start", "value", "target", "status", "centre", "lower_limit", "upper_limit", "signal"):
        assert column in frame.columns
    # pothole_on_time: pothole requests closed in the month (by closed_at) within their SLA
    raw = pl.read_parquet(DATA / "service_requests.parquet").filter(
        (pl.col("request_type") == "Pothole") & pl.col("closed_at").is_not_null()
        & (pl.col("closed_at") >= datetime(2026, 9, 1)) & (pl.col("closed_at") < datetime(2026, 10, 1)))
    on_time = sum(1 for r in raw.iter_rows(named=True)
                  if r["closed_at"] <= r["created_at"] + timedelta(hours=r["sla_hours"]))
    row = frame.filter(pl.col("period_start") == date(2026, 9, 1)).row(0, named=True)
    assert row["value"] == pytest.approx(on_time / raw.height)
    assert row["target"] == pytest.approx(0.85)  # the target in force from 2025-07-01 in metrics.yaml
    assert row["status"] in {"on_track", "at_risk", "off_track"}


def test_chart_sql_and_sources(sample_city):
    chart = sample_city.chart("pothole_on_time", grain="month")
    assert isinstance(chart, alt.LayerChart)
    counts = sample_city.sql("SELECT count(*) AS n FROM permits WHERE applied_at >= $since",
                             since=datetime(2026, 1, 1))
    raw = pl.read_parquet(DATA / "permits.parquet", columns=["applied_at"])
    assert counts["n"][0] == raw.filter(pl.col("applied_at") >= datetime(2026, 1, 1)).height
    sources = sample_city.sources()
    requests = sources.filter(pl.col("id") == "service_requests").row(0, named=True)
    assert requests["rows"] == pq.ParquetFile(DATA / "service_requests.parquet").metadata.num_rows
    created = pl.read_parquet(DATA / "service_requests.parquet", columns=["created_at"])["created_at"]
    assert requests["first_time"] == created.min() and requests["last_time"] == created.max()
    addresses = sources.filter(pl.col("id") == "addresses").row(0, named=True)  # no time column: counted
    assert addresses["rows"] == pq.ParquetFile(DATA / "addresses.parquet").metadata.num_rows
    assert {c["column"] for c in requests["columns"]} >= {"request_id", "created_at", "district"}


def test_sql_is_read_only(sample_city):
    from citystat.kpis.engine import QueryError

    with pytest.raises(QueryError, match="only SELECT"):
        sample_city.sql("CREATE TABLE x AS SELECT 1")


def test_example_notebook_runs_top_to_bottom(monkeypatch):
    notebook = json.loads((PROJECT_ROOT / "notebooks" / "example.ipynb").read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and "from citystat import CityStat" in code[0]
    monkeypatch.chdir(PROJECT_ROOT / "notebooks")  # as Jupyter would start it
    namespace: dict = {}
    for number, source in enumerate(code, start=1):
        try:
            exec(compile(source, f"example.ipynb code cell {number}", "exec"), namespace)
        except Exception as exc:  # name the cell that rotted
            pytest.fail(f"notebook code cell {number} failed: {exc!r}\n{source}")
    assert namespace["city"].registry_path == PROJECT_ROOT / "metrics.yaml"
    assert namespace["potholes"].height > 12
    expected = (pl.read_parquet(DATA / "service_requests.parquet", columns=["created_at", "district"])
                .filter(pl.col("created_at") >= datetime(2026, 1, 1)).group_by("district").len().sort("district"))
    assert namespace["by_district"]["requests"].to_list() == expected["len"].to_list()
    assert namespace["problems"] == []


def test_python_api_doc_examples_run(monkeypatch):
    """The code in docs/PYTHON_API.md runs as written (previewing, never writing, a KPI)."""
    import re

    monkeypatch.chdir(PROJECT_ROOT)
    text = (PROJECT_ROOT / "docs" / "PYTHON_API.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    before = (PROJECT_ROOT / "metrics.yaml").read_text(encoding="utf-8")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "PYTHON_API.md", "exec"), namespace)
    assert namespace["result"].ok and namespace["preview"].ok
    assert (PROJECT_ROOT / "metrics.yaml").read_text(encoding="utf-8") == before

"""The benchmark's references compute the registry's KPIs, and the same numbers as CityStat.

On a tiny generated city (the sample generator, 18 months, ~10 k 311 requests): the KPIs
written by hand as plain DuckDB SQL (the floor), with Polars' lazy API and with pandas
(devtools/bench/kpis.py) must agree with each other and with CityStat's rollup, row for row
(every grain, dimension and period). Four independent implementations; a wrong filter,
period boundary, percentile method or null rule in any of them shows up as a difference.
The scan floor's column list is checked against the registry.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from devtools.bench import kpis
from devtools.bench.city import make_city

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench-city")
    make_city(folder, 20_000, start=date(2025, 5, 1))
    return folder


@pytest.fixture(scope="module")
def floor(city) -> pl.DataFrame:
    return kpis.normalize_floor(kpis.run_floor(city / "data", city / "queries"))


def test_floor_covers_every_kpi_at_every_grain_with_dimensions(floor):
    ids = {k.id for k in kpis.KPIS} | {kpis.LEAD_KPI}
    assert set(floor["kpi"]) == ids
    for kpi in kpis.KPIS:
        rows = floor.filter(pl.col("kpi") == kpi.id)
        assert set(rows["grain"]) == set(kpis.GRAINS), kpi.id
        assert set(rows["dimension"]) == {"", *kpi.dims}, kpi.id
    assert floor["value"].null_count() < floor.height // 10


def test_floor_counts_match_the_files(city, floor):
    """Hand check: 311 requests per fiscal year = rows in the partitions, counted by DuckDB."""
    counted = dict(duckdb.sql(
        f"SELECT CASE WHEN month(created_at) >= 7 THEN year(created_at) ELSE year(created_at) - 1 END, count(*) "
        f"FROM read_parquet('{city}/data/service_requests/*.parquet') GROUP BY 1").fetchall())
    rows = floor.filter((pl.col("kpi") == "requests_311") & (pl.col("grain") == "fiscal_year")
                        & (pl.col("dimension") == ""))
    assert {r["period_start"].year: r["value"] for r in rows.iter_rows(named=True)} == counted
    assert sum(counted.values()) > 5_000


def test_polars_gives_the_floors_numbers(city, floor):
    polars = kpis.normalize_polars(kpis.polars_kpis(city / "data"))
    assert kpis.disagreements(floor, polars, kpis=sorted(set(floor["kpi"]))) == []


def test_pandas_gives_the_floors_numbers(city, floor):
    pandas = kpis.normalize_pandas(kpis.pandas_kpis(city / "data"))
    assert kpis.disagreements(floor, pandas, kpis=[k.id for k in kpis.KPIS]) == []


def test_citystat_rollup_gives_the_floors_numbers(city, floor):
    from citystat.api import CityStat

    rollup = CityStat.open(city / "metrics.yaml", use_disk_cache=False).rollup
    assert not rollup.problems
    assert kpis.disagreements(floor, kpis.normalize_rollup(rollup.frame), kpis=sorted(set(floor["kpi"]))) == []


def test_disagreements_reports_a_changed_value_a_missing_row_and_a_changed_numerator(floor):
    changed = floor.with_columns(
        value=pl.when(pl.int_range(pl.len()) == 7).then(pl.col("value") + 1e-6).otherwise(pl.col("value")),
        numerator=pl.when(pl.col("numerator").is_not_null() & (pl.int_range(pl.len()) % 1000 == 0))
        .then(pl.col("numerator") + 1).otherwise(pl.col("numerator")))
    found = kpis.disagreements(floor, changed.slice(1))
    assert any(line.startswith("missing:") for line in found)
    assert any(line.startswith("value differs:") for line in found)
    assert any(line.startswith("numerator differs:") for line in found)


def test_scan_floor_reads_each_used_column_once(city):
    """SCAN_COLUMNS holds every column the registry's metrics on a file source name (filters,
    expressions, dimensions, time columns) and each source's time column; nothing it lists is
    unused or missing from the extract."""
    from citystat.registry.loader import load_registry

    registry = load_registry(city / "metrics.yaml")
    words = lambda text: set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text or ""))  # noqa: E731
    sql_sources = {s.id: registry.sql_text(s.sql) for s in registry.sources.values() if s.sql}
    query_files = " ".join((city / "queries" / f).read_text() for f in ("lead_followup_30d.sql",))
    for source in registry.sources.values():
        if source.path is None or source.id not in kpis.SCAN_COLUMNS and source.id == "addresses":
            continue
        columns = set(duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{kpis.extract_files(city / 'data', source.id)}')")
                      .pl()["column_name"])
        over = [source.id] + [q for q, text in sql_sources.items() if source.id in words(text)]
        named = {source.time_column}
        for metric in registry.metrics.values():
            if metric.source in over:
                named |= words(metric.filter) | set(metric.dimensions) | words(metric.time_column)
                for measure in (metric.measure, metric.numerator, metric.denominator):
                    if measure is not None:
                        named |= words(measure.expr) | words(measure.filter)
        direct = named & columns
        listed = set(kpis.SCAN_COLUMNS[source.id])
        assert direct <= listed, (source.id, direct - listed)
        anywhere = named | words(" ".join(sql_sources[q] for q in over[1:])) | words(query_files)
        assert listed <= columns & anywhere, (source.id, listed - (columns & anywhere))


def test_python_m_citystat_bench_runs_the_benchmark_from_a_checkout_and_explains_itself_elsewhere(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    here = subprocess.run([sys.executable, "-m", "citystat.bench", "--help"], cwd=root, capture_output=True,
                          text=True, timeout=120, env=env)
    assert here.returncode == 0 and "--requests" in here.stdout and "--report" in here.stdout
    # elsewhere (the package installed, the checkout's devtools/ not on the path): a sentence, exit 2
    elsewhere = subprocess.run([sys.executable, "-m", "citystat.bench", "--help"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120, env=env)
    assert elsewhere.returncode == 2, elsewhere.stderr
    assert "run it from a checkout of the repository" in elsewhere.stderr

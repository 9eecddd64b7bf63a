"""Incremental refresh gives exactly what a full recompute gives.

A small city is generated with its 311 requests as monthly partitions; one more week is
generated alone and written as an extra partition file (the generator draws each day from
its own RNG, so these are the rows a longer run would hold). The incremental rollup is then
compared with a from-scratch rollup of the same files, row for row and bit for bit (with one
DuckDB thread: DuckDB's parallel float sums are not reproducible to the last bit even
between two full runs, so with several threads float sums are compared to 1e-12).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from citystat.api import CityStat
from citystat.bench.city import append_week, extra_week_file, make_city, remove_week
from citystat.engine import Engine
from citystat.registry.loader import load_registry
from citystat.rollup import compute_rollup, plan_refresh, refresh_rollup

LAST_DAY = date(2026, 11, 8)  # a Sunday; the appended week is 2026-11-09 .. 2026-11-15
REQUESTS = 20_000
KEYS = ["metric_id", "grain", "dimension", "period_start", "dimension_value"]


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("city")
    make_city(folder, REQUESTS, start=date(2025, 5, 1), end=LAST_DAY)
    return folder


@pytest.fixture()
def base(city):
    remove_week(city)
    registry = city / "metrics.yaml"
    rollup = compute_rollup(Engine(load_registry(registry), threads=1))
    yield rollup
    remove_week(city)


def engine(city: Path, threads: int | None = 1) -> Engine:
    return Engine(load_registry(city / "metrics.yaml"), threads=threads)


def test_incremental_equals_full_recompute_exactly(city, base):
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), base)
    full = compute_rollup(engine(city))
    assert incremental.how == "incremental" and full.how == "full"
    assert incremental.frame.sort(KEYS).equals(full.frame.sort(KEYS))
    assert incremental.extents.equals(full.extents)
    # ... and the new week really is in it, at every grain that holds it
    for grain, start in [("week", date(2026, 11, 9)), ("month", date(2026, 11, 1)),
                         ("quarter", date(2026, 10, 1)), ("fiscal_year", date(2026, 7, 1))]:
        before = base.series("requests_311", grain).filter(pl.col("period_start") == start)["value"]
        after = incremental.series("requests_311", grain).filter(pl.col("period_start") == start)["value"]
        assert after[0] > (before[0] if len(before) else 0)
    new_rows = pl.read_parquet(extra_week_file(city)).height
    week = incremental.series("requests_311", "week").filter(pl.col("period_start") == date(2026, 11, 9))
    assert week["value"][0] == new_rows  # the base ends on the Sunday before


def test_incremental_equals_full_with_parallel_threads(city, base):
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city, threads=None), base).frame.sort(KEYS)
    full = compute_rollup(engine(city, threads=None)).frame.sort(KEYS)
    assert incremental.select(KEYS).equals(full.select(KEYS))
    for column in ("value", "numerator", "denominator", "n"):
        a, b = incremental[column], full[column]
        assert (a.is_null() == b.is_null()).all()
        assert ((a - b).abs() <= 1e-12 * b.abs().clip(lower_bound=1)).fill_null(True).all(), column


def test_rewritten_old_partition_forces_full_refresh(city, base):
    append_week(city, REQUESTS, LAST_DAY)
    old_partition = city / "data" / "service_requests" / "2026-10.parquet"
    stat = old_partition.stat()
    os.utime(old_partition, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        appended, reason = plan_refresh(base, engine(city))
        assert appended is None and "2026-10.parquet" in reason
        assert refresh_rollup(engine(city), base).how == "full"
    finally:
        os.utime(old_partition, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_changed_registry_forces_full_refresh(city, base, tmp_path):
    other = Engine(load_registry(city / "metrics.yaml"))
    assert plan_refresh(base, other)[0] == {}  # same files, same registry: nothing to do
    base.registry_fingerprint = "something-else"
    appended, reason = plan_refresh(base, other)
    assert appended is None and "registry" in reason


def test_api_refreshes_incrementally_from_disk_and_never_recomputes_a_cached_fingerprint(city, base, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(tmp_path / "cache"))
    first = CityStat.open(city / "metrics.yaml")
    assert first.rollup.how == "full"
    append_week(city, REQUESTS, LAST_DAY)
    second = CityStat.open(city / "metrics.yaml")  # a new process: the previous rollup is on disk only
    assert second.rollup.how == "incremental"
    expected = compute_rollup(engine(city, threads=None)).frame.sort(KEYS)
    assert second.rollup.frame.sort(KEYS).select(KEYS).equals(expected.select(KEYS))
    third = CityStat.open(city / "metrics.yaml")
    assert third.rollup.how == "cached"
    assert third.rollup.frame.sort(KEYS).equals(second.rollup.frame.sort(KEYS))
    # the first object notices the new file on its next sync and refreshes in memory
    assert first.sync().rollup.how in ("cached", "incremental")

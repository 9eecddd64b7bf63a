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
from devtools.bench.city import append_week, extra_week_file, make_city, remove_week
from citystat.kpis.engine import Engine
from citystat.registry.loader import load_registry
from citystat.kpis.incremental import plan_refresh
from citystat.kpis.rollup import compute_rollup, refresh_rollup
from citystat.kpis.scan import daily_key, rows_key

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


def test_kept_daily_partials_equal_a_full_scan_and_cover_every_shared_scan(city, base):
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), base)
    full = compute_rollup(engine(city))
    assert set(incremental.daily) == set(full.daily) == set(base.daily)
    assert daily_key("service_requests", "created_at") in full.daily
    assert daily_key("service_requests", "closed_at") in full.daily
    # a holistic metric's rows are kept where an append can come (311 requests are partitions),
    # not for a single-file source (a changed file means a full refresh): they cost memory
    assert rows_key("graffiti_days_to_close") in full.daily and rows_key("ems_response_p90") not in full.daily
    for key in full.daily:
        kept, scanned = incremental.daily_partials(key), full.daily_partials(key)
        if key.startswith("metric|"):  # a holistic metric's rows: the same rows, in any order
            kept, scanned = kept.sort(kept.columns, nulls_last=True), scanned.sort(scanned.columns, nulls_last=True)
        assert kept.equals(scanned), key
    # the 311 scan by created_at gained exactly the new week's days (7 of them, by day alone)
    days = "service_requests|created_at"
    totals = lambda r: r.daily_partials(days).filter(pl.all_horizontal(pl.col("^g__.*$") == 1))
    assert totals(incremental).height == totals(base).height + 7
    assert totals(incremental)["__day"].max() == date(2026, 11, 15)


def test_append_reuses_kept_days_instead_of_rescanning_them(city, base):
    """Proof that old days are not rescanned: a marker planted in a kept day of this fiscal year
    before the appended week (+1000 in every partial count of Monday 5 October 2026) survives
    the incremental refresh in every period holding that day (a rescan would erase it), while
    the new week is counted as a full recompute counts it. Periods that start before the
    fiscal year (1 July 2026) hold no new row and are kept as they were, so a marker planted in
    one of their days (2 June 2025) does not reach them either."""
    key = daily_key("service_requests", "created_at")
    this_year, last_year = date(2026, 10, 5), date(2025, 6, 2)
    kept = base.daily_partials(key)
    partial_columns = [c for c in kept.columns if c.startswith("__p_")]
    assert partial_columns  # every metric of this scan is a count
    marked = pl.col("__day").is_in([this_year, last_year])
    base.daily[key] = kept.with_columns(
        [pl.when(marked).then(pl.col(c) + 1000).otherwise(pl.col(c)).alias(c) for c in partial_columns])
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), base)
    full = compute_rollup(engine(city))
    assert incremental.how == "incremental"

    def value(rollup, metric_id, grain, start):
        return rollup.series(metric_id, grain).filter(pl.col("period_start") == start)["value"][0]

    for metric_id in ("requests_311", "missed_trash_requests"):
        for grain, start in [("week", this_year), ("month", date(2026, 10, 1)), ("quarter", date(2026, 10, 1)),
                             ("fiscal_year", date(2026, 7, 1))]:
            assert value(incremental, metric_id, grain, start) == value(full, metric_id, grain, start) + 1000
        assert value(incremental, metric_id, "week", date(2026, 11, 9)) == \
            value(full, metric_id, "week", date(2026, 11, 9))
        for grain, start in [("week", last_year), ("fiscal_year", date(2024, 7, 1))]:
            assert value(incremental, metric_id, grain, start) == value(full, metric_id, grain, start)


def test_rollup_without_kept_partials_still_refreshes_exactly(city, base):
    """A rollup saved before partials were kept (or whose partial files were deleted)."""
    base.daily = {}
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), base)
    full = compute_rollup(engine(city))
    assert incremental.how == "incremental"
    assert incremental.frame.sort(KEYS).equals(full.frame.sort(KEYS))
    # the rescanned 311 scans keep their partials, and the 311 median its rows, again for the next
    # append (the other sources were not read)
    assert set(incremental.daily) == {daily_key("service_requests", "created_at"),
                                      daily_key("service_requests", "closed_at"), rows_key("graffiti_days_to_close")}


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
    partial_files = sorted((tmp_path / "cache").glob("partials-*.parquet"))
    assert len(partial_files) == 2 * len(second.rollup.daily)  # the first rollup's and the second's
    third = CityStat.open(city / "metrics.yaml")
    assert third.rollup.how == "cached"
    assert all(isinstance(v, Path) for v in third.rollup.daily.values())  # read only when needed
    key = daily_key("service_requests", "created_at")
    assert third.rollup.daily_partials(key).equals(second.rollup.daily_partials(key))
    assert third.rollup.frame.sort(KEYS).equals(second.rollup.frame.sort(KEYS))
    # the first object notices the new file on its next sync and refreshes in memory
    assert first.sync().rollup.how in ("cached", "incremental")


def test_append_aggregates_a_median_from_its_kept_rows_instead_of_rereading_them(city, base):
    """Proof that a holistic metric's old rows are not read again: the kept graffiti rows of this
    fiscal year before the appended week are marked (days to close + 1000); the incremental
    refresh's fiscal-year and October medians carry the marker (a re-read would erase it), the
    new week's median is the full recompute's, and an earlier fiscal year is left as it was."""
    key = rows_key("graffiti_days_to_close")
    kept = base.daily_partials(key)
    assert set(kept.columns) == {"__day", "d__district", "__e0"}
    marked = (pl.col("__day") >= date(2026, 7, 1)) & (pl.col("__day") < date(2026, 11, 9))
    base.daily[key] = kept.with_columns(pl.when(marked).then(pl.col("__e0") + 1000).otherwise(pl.col("__e0")))
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), base)
    full = compute_rollup(engine(city))
    assert incremental.how == "incremental"

    def median(rollup, grain, start):
        return rollup.series("graffiti_days_to_close", grain).filter(pl.col("period_start") == start)["value"][0]

    assert median(incremental, "month", date(2026, 10, 1)) == pytest.approx(median(full, "month", date(2026, 10, 1))
                                                                          + 1000)
    assert median(incremental, "fiscal_year", date(2026, 7, 1)) > 1000 > median(full, "fiscal_year", date(2026, 7, 1))
    assert median(incremental, "week", date(2026, 11, 9)) == median(full, "week", date(2026, 11, 9))
    assert median(incremental, "fiscal_year", date(2025, 7, 1)) == median(full, "fiscal_year", date(2025, 7, 1))


def test_rows_past_the_memory_budget_are_not_kept_and_the_refresh_stays_exact(city, base, monkeypatch):
    """With no room for kept holistic rows (`KEPT_ROWS_BYTES`), nothing is kept, and the next
    incremental refresh reads those rows again: still exactly the full recompute."""
    from citystat.kpis import scan

    monkeypatch.setattr(scan, "KEPT_ROWS_BYTES", 0)
    lean = compute_rollup(engine(city))
    assert rows_key("graffiti_days_to_close") not in lean.daily
    assert daily_key("service_requests", "closed_at") in lean.daily  # daily partials are not limited
    append_week(city, REQUESTS, LAST_DAY)
    incremental = refresh_rollup(engine(city), lean)
    full = compute_rollup(engine(city))
    assert incremental.how == "incremental"
    assert incremental.frame.sort(KEYS).equals(full.frame.sort(KEYS))
    assert rows_key("graffiti_days_to_close") not in incremental.daily


"""Data health: freshness (stale sources flagged, weekends), quality checks through DuckDB,
row-count change between refreshes, and stale markers on KPIs. Hand-made extracts."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from citystat import CityStat
from citystat.checks.health import (freshness_of, health_report, health_table, remember_row_counts, stale_marker,
                             stale_sources, stale_sources_of, weekend_time)

from tests.support.cities import FIRST_DAY, LAST_DAY, REGISTRY, REQUESTS_PER_DAY, CASES, make_city, requests_frame, cases_frame  # noqa: F401


@pytest.fixture()
def small_city(tmp_path) -> CityStat:
    return CityStat.open(make_city(tmp_path / "city"), use_disk_cache=False).sync()


# --- freshness ---------------------------------------------------------------------------------------

def test_stale_source_is_flagged_and_fresh_ones_are_not(small_city):
    # judged against the extract cut (the "data" clock): a source that fell behind the others
    stale = stale_sources(small_city, clock="data")
    # cut = newest data anywhere = requests, Sun 2026-03-01 22:00; old_feed stopped Fri 2026-02-20 12:00:
    # 9 d 10 h (226 h), less 2 weekends (21-22 Feb = 48 h, 28 Feb-1 Mar 22:00 = 46 h) = 132 h > 2 x 1 day
    assert set(stale) == {"old_feed"}
    assert stale["old_feed"].lag == timedelta(hours=132)
    assert stale["old_feed"].status == "stale"


def test_weekend_does_not_make_a_weekday_source_stale():
    friday_evening = datetime(2026, 2, 27, 17, 0)
    sunday_night = datetime(2026, 3, 1, 23, 0)
    assert weekend_time(friday_evening, sunday_night) == timedelta(hours=47)
    fresh = freshness_of(friday_evening, "P1D", sunday_night)
    assert fresh.status == "fresh" and fresh.lag == timedelta(hours=7)   # Fri 17:00 -> midnight
    # an hourly feed is judged on the plain clock: 54 h behind, expected hourly
    assert freshness_of(friday_evening, "PT1H", sunday_night).status == "stale"
    # Monday 12:00 after a Friday 17:00 last record: 7 h + 12 h = 19 h -> still fresh
    assert freshness_of(friday_evening, "P1D", datetime(2026, 3, 2, 12)).status == "fresh"
    # Tuesday 18:00: 7 + 24 + 18 = 49 h -> late (between 1 and 2 days)... 49 h > 48 h: stale
    assert freshness_of(friday_evening, "P1D", datetime(2026, 3, 3, 18)).status == "stale"
    assert freshness_of(friday_evening, "P1D", datetime(2026, 3, 3, 12)).status == "late"


def test_wall_clock_makes_an_old_extract_stale(small_city, monkeypatch):
    monkeypatch.setenv("CITYSTAT_FRESHNESS_CLOCK", "wall")
    # the tiny city's data ends on 2026-03-01; judged against 2026-03-10 every daily source is stale
    stale = stale_sources(small_city, now=datetime(2026, 3, 10, 12))
    assert {"requests", "old_feed"} <= set(stale)
    monkeypatch.setenv("CITYSTAT_FRESHNESS_CLOCK", "sometimes")
    with pytest.raises(ValueError, match="CITYSTAT_FRESHNESS_CLOCK"):
        stale_sources(small_city)


def test_kpis_reading_a_stale_source_are_marked(small_city):
    stale = stale_sources(small_city, clock="data")
    registry = small_city.registry
    assert stale_sources_of(small_city, registry.metrics["old_readings"], stale) == ["old_feed"]
    assert stale_marker(small_city, registry.metrics["old_readings"], stale) == "Stale data: Old feed"
    assert stale_marker(small_city, registry.metrics["requests_count"], stale) == ""


# --- quality -------------------------------------------------------------------------------------------

def test_quality_checks_count_nulls_ranges_duplicates_and_unexpected_values(small_city):
    report = {h.source_id: h for h in health_report(small_city)}
    requests = report["requests"]
    days = (LAST_DAY - FIRST_DAY).days + 1
    assert requests.rows == days * REQUESTS_PER_DAY == 1120   # 8 weeks x 7 days x 20
    checks = {(c.check, c.column): c for c in requests.checks}
    assert checks[("nulls", "district")].observed == pytest.approx(2 / 1120)
    assert not checks[("nulls", "district")].passed          # limit 0
    assert checks[("nulls", "request_id")].passed
    assert checks[("range", "sla_hours")].observed == 1      # the single 500
    assert "1 value(s) outside [1, 100] (0 below, 1 above; observed 48 .. 500)" in checks[("range", "sla_hours")].message
    assert checks[("unique", "request_id")].observed == 2    # two rows share id 4
    assert checks[("allowed_values", "district")].passed     # nulls are not "unexpected"
    assert report["old_feed"].freshness.status == "stale"
    table = health_table(list(report.values()))
    assert table.filter(pl.col("source_id") == "old_feed")["freshness"][0] == "STALE"


def test_check_on_a_missing_column_says_so(tmp_path):
    text = REGISTRY.replace("ranges: {sla_hours: [1, 100]}", "ranges: {sla_hourz: [1, 100]}")
    stat = CityStat.open(make_city(tmp_path / "c", text), use_disk_cache=False).sync()
    report = {h.source_id: h for h in health_report(stat)}
    failed = [c for c in report["requests"].checks if c.column == "sla_hourz"]
    assert failed and not failed[0].passed and "no such column" in failed[0].message


def test_row_count_change_since_the_last_refresh(tmp_path, monkeypatch):
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(tmp_path / "cache"))
    registry = make_city(tmp_path / "city")
    stat = CityStat.open(registry, use_disk_cache=False).sync()
    first = {h.source_id: h for h in health_report(stat)}
    assert first["requests"].row_change["previous"] is None
    # the same extract again: nothing changes
    again = {h.source_id: h for h in health_report(CityStat.open(registry, use_disk_cache=False).sync())}
    assert again["requests"].row_change["previous"] is None
    # a refresh with two more days (40 rows)
    path = registry.parent / "data" / "requests.parquet"
    requests_frame(extra_days=2).write_parquet(path)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    later = {h.source_id: h for h in health_report(CityStat.open(registry, use_disk_cache=False).sync())}
    change = later["requests"].row_change
    assert (change["previous"], change["current"], change["change"]) == (1120, 1160, 40)
    assert change["pct_change"] == pytest.approx(40 / 1120)
    assert later["cases"].row_change["previous"] is None      # unchanged source: still its first count


def test_remember_row_counts_shifts_only_on_a_new_fingerprint(tmp_path):
    assert remember_row_counts({"a": ("f1", 10)}, tmp_path) == {"a": None}
    assert remember_row_counts({"a": ("f1", 10)}, tmp_path) == {"a": None}
    assert remember_row_counts({"a": ("f2", 7)}, tmp_path) == {"a": 10}
    assert remember_row_counts({"a": ("f2", 7)}, tmp_path) == {"a": 10}
    assert remember_row_counts({"a": ("f3", 9)}, tmp_path) == {"a": 7}


# --- stale markers on the staff pages --------------------------------------------------------------

def test_overview_and_metric_pages_mark_kpis_reading_a_stale_source(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CITYSTAT_REGISTRY", str(make_city(tmp_path / "city")))
    monkeypatch.setenv("CITYSTAT_FRESHNESS_CLOCK", "data")  # the tiny city is frozen in March 2026
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/overview.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    tables = [t.value for t in at.dataframe if "KPI" in t.value.columns]
    marked = {row["KPI"]: row.get("Data", "") for t in tables for _, row in t.iterrows()}
    assert marked["Old feed readings"] == "Stale data: Old feed"
    assert marked["Requests received"] == ""
    at.query_params["metric"] = "old_readings"
    at.switch_page("pages/metric.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    # the source is named with its declared cadence and the day its data ends
    assert any("Late: Old feed (updated daily, newest data Fri 20 Feb 2026)" in w.value for w in at.warning)
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/data_health.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("late or stale: Old feed" in w.value for w in at.warning)

"""Rollup numbers against independent computations on the committed sample city.

Each check recomputes a KPI without citystat's SQL builder: either plain DuckDB SQL written
out here by hand, or Polars/NumPy/pure Python over the same Parquet files. Metric kinds
covered: count, rate, median, percentile, avg, sum, derived, SQL-file, dimensions and the
fiscal-year grain.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from citystat.kpis.engine import Engine
from citystat.registry.loader import load_registry
from citystat.kpis.rollup import compute_rollup

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(scope="module")
def rollup():
    return compute_rollup(Engine(load_registry(ROOT / "metrics.yaml")))


def rolled(rollup, metric_id: str, grain: str, dimension: str = "") -> dict:
    series = rollup.series(metric_id, grain, dimension)
    if dimension:
        return {(r["period_start"], r["dimension_value"]): r for r in series.iter_rows(named=True)}
    return {r["period_start"]: r for r in series.iter_rows(named=True)}


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def fiscal_year_start(d: date) -> date:
    return date(d.year if d.month >= 7 else d.year - 1, 7, 1)


def test_count_by_week_and_district_matches_hand_written_sql(rollup):
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT date_trunc('week', created_at)::DATE AS wk, district, count(*) AS n
        FROM read_parquet('{DATA}/service_requests.parquet')
        WHERE request_type = 'Missed Trash Pickup'
        GROUP BY ALL""").fetchall()
    got = rolled(rollup, "missed_trash_requests", "week", "district")
    assert len(rows) > 1000
    for wk, district, n in rows:
        assert got[(wk, district)]["value"] == n
    totals = defaultdict(int)
    for wk, _district, n in rows:
        totals[wk] += n
    week_rows = rolled(rollup, "missed_trash_requests", "week")
    assert {k: v["value"] for k, v in week_rows.items() if v["value"]} == {k: float(v) for k, v in totals.items()}


def test_fiscal_year_totals_match_python_date_arithmetic(rollup):
    created = pl.read_parquet(DATA / "service_requests.parquet", columns=["created_at"])["created_at"]
    counts = defaultdict(int)
    for ts in created.to_list():
        counts[fiscal_year_start(ts.date())] += 1
    got = rolled(rollup, "requests_311", "fiscal_year")
    assert {k: v["value"] for k, v in got.items()} == {k: float(v) for k, v in counts.items()}
    assert date(2025, 7, 1) in got and date(2025, 1, 1) not in got


def test_rate_on_closed_at_matches_polars(rollup):
    frame = (pl.read_parquet(DATA / "service_requests.parquet")
             .filter((pl.col("request_type") == "Pothole") & pl.col("closed_at").is_not_null())
             .with_columns(wk=pl.col("closed_at").dt.truncate("1w").dt.date(),
                           on_time=pl.col("closed_at") <= pl.col("created_at") + pl.duration(hours=pl.col("sla_hours"))))
    expected = frame.group_by("wk").agg(num=pl.col("on_time").sum(), den=pl.len())
    got = rolled(rollup, "pothole_on_time", "week")
    for row in expected.iter_rows(named=True):
        r = got[row["wk"]]
        assert (r["numerator"], r["denominator"]) == (row["num"], row["den"])
        assert r["value"] == pytest.approx(row["num"] / row["den"], rel=1e-12)


def test_rate_by_dimension_matches_polars(rollup):
    frame = (pl.read_parquet(DATA / "service_requests.parquet")
             .with_columns(m=pl.col("created_at").dt.truncate("1mo").dt.date()))
    expected = frame.group_by("m", "district").agg(
        num=pl.col("channel").is_in(["app", "web"]).sum(), den=pl.len())
    got = rolled(rollup, "digital_channel_share", "month", "district")
    assert expected.height == len(got)
    for row in expected.iter_rows(named=True):
        r = got[(row["m"], row["district"])]
        assert (r["numerator"], r["denominator"]) == (row["num"], row["den"])


def test_median_matches_polars(rollup):
    frame = (pl.read_parquet(DATA / "service_requests.parquet")
             .filter((pl.col("request_type") == "Graffiti Removal") & pl.col("closed_at").is_not_null())
             .with_columns(m=pl.col("closed_at").dt.truncate("1mo").dt.date(),
                           # date_diff('minute', a, b) counts minute boundaries crossed
                           days=(pl.col("closed_at").dt.truncate("1m") - pl.col("created_at").dt.truncate("1m"))
                           .dt.total_minutes() / 1440.0))
    expected = frame.group_by("m").agg(pl.col("days").median(), n=pl.len())
    got = rolled(rollup, "graffiti_days_to_close", "month")
    for row in expected.iter_rows(named=True):
        assert got[row["m"]]["value"] == pytest.approx(row["days"], rel=1e-12)
        assert got[row["m"]]["n"] == row["n"]


def test_percentile_matches_numpy_linear_interpolation(rollup):
    frame = (pl.read_parquet(DATA / "fire_ems_responses.parquet")
             .filter((pl.col("incident_type") == "ems") & (pl.col("priority") == 1)
                     & pl.col("on_scene_at").is_not_null())
             .with_columns(q=pl.col("call_received_at").dt.truncate("1q").dt.date(),
                           minutes=(pl.col("on_scene_at").dt.truncate("1s") - pl.col("call_received_at").dt.truncate("1s"))
                           .dt.total_seconds() / 60.0))
    got = rolled(rollup, "ems_response_p90", "quarter", "district")
    checked = 0
    for (quarter, district), part in frame.group_by("q", "district"):
        expected = float(np.percentile(part["minutes"].to_numpy(), 90))
        assert got[(quarter, district)]["value"] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked > 50


def test_avg_matches_polars_mean(rollup):
    frame = (pl.read_parquet(DATA / "restaurant_inspections.parquet")
             .with_columns(q=pl.col("inspected_at").dt.truncate("1q").dt.date()))
    expected = frame.group_by("q").agg(pl.col("critical_violations").mean(), n=pl.len())
    got = rolled(rollup, "restaurant_critical_violations", "quarter")
    for row in expected.iter_rows(named=True):
        assert got[row["q"]]["value"] == pytest.approx(row["critical_violations"], rel=1e-12)


def test_sum_by_department_matches_hand_written_sql(rollup):
    rows = duckdb.connect().execute(f"""
        SELECT date_trunc('month', work_date)::DATE, department, sum(injuries)
        FROM read_parquet('{DATA}/staff_hours.parquet') GROUP BY ALL""").fetchall()
    got = rolled(rollup, "work_injuries", "month", "department")
    for month, department, total in rows:
        assert got[(month, department)]["value"] == total


def test_sum_ratio_matches_hand_written_sql(rollup):
    rows = duckdb.connect().execute(f"""
        SELECT date_trunc('year', work_date - INTERVAL 6 MONTH)::DATE + INTERVAL 6 MONTH,
               sum(sick_hours) / sum(regular_hours)
        FROM read_parquet('{DATA}/staff_hours.parquet') GROUP BY ALL""").fetchall()
    got = rolled(rollup, "sick_hours_share", "fiscal_year")
    for fy, share in rows:
        assert got[fy.date()]["value"] == pytest.approx(share, rel=1e-12)


def test_derived_is_applications_minus_issued_per_week(rollup):
    permits = pl.read_parquet(DATA / "permits.parquet")
    applied = defaultdict(int)
    issued = defaultdict(int)
    for row in permits.iter_rows(named=True):
        applied[week_start(row["applied_at"].date())] += 1
        if row["issued_at"] is not None:
            issued[week_start(row["issued_at"].date())] += 1
    got = rolled(rollup, "permit_backlog_change", "week")
    both = set(applied) & set(issued)
    assert len(both) > 100
    for wk in both:
        assert got[wk]["value"] == applied[wk] - issued[wk]


def test_sql_file_metric_matches_python_follow_up_count(rollup):
    tests = pl.read_parquet(DATA / "blood_lead_tests.parquet").sort("tested_at")
    inspections = pl.read_parquet(DATA / "housing_inspections.parquet").drop_nulls("inspected_at")
    visits = defaultdict(list)
    for row in inspections.iter_rows(named=True):
        visits[row["address_id"]].append(row["inspected_at"])
    last = tests["tested_at"].max()
    first_case = {}
    for row in tests.filter(pl.col("result_ug_dl") >= 3.5).iter_rows(named=True):
        if row["tested_at"] > last - timedelta(days=30):
            continue
        key = (row["child_id"], date(row["tested_at"].year, row["tested_at"].month, 1))
        first_case.setdefault(key, row)  # sorted by time: the first elevated test in the month
    num, den = defaultdict(int), defaultdict(int)
    for (_child, month), row in first_case.items():
        den[month] += 1
        t = row["tested_at"]
        num[month] += any(t <= v <= t + timedelta(days=30) for v in visits[row["address_id"]])
    got = rolled(rollup, "lead_followup_30d", "month")
    for month in den:
        assert (got[month]["numerator"], got[month]["denominator"]) == (num[month], den[month])
        assert math.isclose(got[month]["value"], num[month] / den[month], rel_tol=1e-12)

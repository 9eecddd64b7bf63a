"""Every shipped KPI runs on the sample city, and a few are checked against independent code."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from .conftest import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"


def test_every_metric_has_values_at_its_grain(sample_city):
    assert sample_city.problems() == []
    for metric in sample_city.registry.metrics.values():
        frame = sample_city.kpi(metric.id)
        values = frame["value"].drop_nulls()
        assert values.len() >= 8, f"{metric.id}: only {values.len()} periods with values"


def test_as_of_is_the_latest_complete_week_in_the_data(sample_city):
    assert sample_city.as_of("week") == date(2026, 11, 9)
    assert sample_city.as_of("month") == date(2026, 10, 1)


def test_pothole_on_time_matches_hand_written_sql(sample_city):
    expected = duckdb.sql(f"""
        SELECT count(*) FILTER (WHERE closed_at <= created_at + sla_hours * INTERVAL 1 HOUR)::DOUBLE
               / count(*) AS rate
        FROM '{DATA / "service_requests.parquet"}'
        WHERE request_type = 'Pothole' AND closed_at >= TIMESTAMP '2026-11-02'
          AND closed_at < TIMESTAMP '2026-11-09'""").fetchall()[0][0]
    frame = sample_city.kpi("pothole_on_time", "week")
    value = frame.filter(pl.col("period_start") == date(2026, 11, 2))["value"][0]
    assert value == pytest.approx(expected, rel=1e-12)


def test_ems_p90_matches_numpy_percentile(sample_city):
    import numpy as np

    rows = pl.read_parquet(DATA / "fire_ems_responses.parquet").filter(
        (pl.col("incident_type") == "ems") & (pl.col("priority") == 1) & pl.col("on_scene_at").is_not_null()
        & (pl.col("call_received_at") >= pl.datetime(2026, 10, 1))
        & (pl.col("call_received_at") < pl.datetime(2026, 11, 1)))
    minutes = ((rows["on_scene_at"] - rows["call_received_at"]).dt.total_seconds() / 60.0).to_numpy()
    frame = sample_city.kpi("ems_response_p90", "month")
    value = frame.filter(pl.col("period_start") == date(2026, 10, 1))["value"][0]
    assert value == pytest.approx(float(np.percentile(minutes, 90)), rel=1e-9)


def test_lead_followup_matches_an_independent_polars_computation(sample_city):
    """The cross-agency KPI recomputed in Polars, without SQL, for one month."""
    tests = pl.read_parquet(DATA / "blood_lead_tests.parquet")
    inspections = pl.read_parquet(DATA / "housing_inspections.parquet").drop_nulls("inspected_at")
    last_test = tests["tested_at"].max()
    month_start, month_end = date(2026, 3, 1), date(2026, 4, 1)
    elevated = (tests.filter((pl.col("result_ug_dl") >= 3.5)
                             & (pl.col("tested_at").dt.date() >= month_start)
                             & (pl.col("tested_at").dt.date() < month_end)
                             & (pl.col("tested_at") <= last_test - timedelta(days=30)))
                .sort("tested_at").group_by("child_id", maintain_order=True).first())
    inspected = 0
    for child in elevated.iter_rows(named=True):
        window = inspections.filter(
            (pl.col("address_id") == child["address_id"]) & (pl.col("inspected_at") >= child["tested_at"])
            & (pl.col("inspected_at") <= child["tested_at"] + timedelta(days=30)))
        inspected += window.height > 0
    frame = sample_city.kpi("lead_followup_30d", "month")
    row = frame.filter(pl.col("period_start") == month_start).row(0, named=True)
    assert row["denominator"] == elevated.height
    assert row["numerator"] == inspected
    assert row["value"] == pytest.approx(inspected / elevated.height)


def test_known_shifts_show_as_signals(sample_city):
    """The generator's recent shifts (devtools.sample.SHIFTS) must read as process signals."""
    graffiti = sample_city.kpi("graffiti_days_to_close", "week")
    recent = graffiti.filter(pl.col("period_start") >= date(2026, 10, 5))
    assert recent["signal"].all(), recent.select("period_start", "value", "rules")
    potholes = sample_city.kpi("pothole_on_time", "week")
    # a new phase (new crew, 2025-09-08) has its own limits: the centre line moved up
    before = potholes.filter(pl.col("period_start") < date(2025, 9, 8))["centre"].drop_nulls()[-1]
    after = potholes.filter(pl.col("period_start") >= date(2025, 9, 8))["centre"].drop_nulls()[0]
    assert after > before + 0.08


def test_department_lead_sees_only_their_kpis(sample_city):
    rows = sample_city.overview(metrics=sample_city.registry.metrics_of("fire"))
    assert {r.metric.department for r in rows} == {"fire"}
    assert {r.metric.id for r in rows} >= {"ems_response_p90", "dispatch_within_60s"}
    standard = sample_city.standard_kpis("fire")
    assert {r.metric.id for r in standard} == {"unscheduled_overtime_share", "sick_hours_share", "work_injuries"}
    # the department slice of a standard KPI equals the hand-computed share for that department
    month = standard[0].period_start
    expected = duckdb.sql(f"""
        SELECT sum(unscheduled_overtime_hours) / sum(regular_hours) FROM '{DATA / "staff_hours.parquet"}'
        WHERE department = 'fire' AND date_trunc('month', work_date) = DATE '{month}'""").fetchall()[0][0]
    overtime = next(r for r in standard if r.metric.id == "unscheduled_overtime_share")
    assert overtime.current["value"] == pytest.approx(expected)

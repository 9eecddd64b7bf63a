"""Rows with no dimension value are ONE labelled group, counted, compared and asked for by None.

Checked on the hand-made Goldenton city of tests/test_sql_golden.py (a NULL, a '' and a '  '
district), on real Boston 311 data (10,955 requests of 2015 without a neighborhood, counted
here with plain DuckDB) and on real San Francisco fire calls, where a KPI reported by day must
have breakdowns by day.
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl
import pytest

from citystat.api import CityStat
from tests.conftest import realdata
from tests.test_sql_golden import WEEK1, WEEK2, write_city

NOT_RECORDED = "(not recorded)"


@pytest.fixture(scope="module")
def goldenton(tmp_path_factory) -> CityStat:
    return CityStat.open(write_city(tmp_path_factory.mktemp("goldenton")), use_disk_cache=False, replica=False)


def test_none_and_blank_ask_for_the_not_recorded_group(goldenton):
    # week 1: row 4 (NULL) and row 5 ('  '); week 2: row 7 ('')
    for missing in (None, "", "  "):
        frame = goldenton.kpi("requests", "week", dimension="district", dimension_value=missing)
        assert frame["value"].to_list() == [2.0, 1.0], missing
    assert goldenton.kpi("requests", "week", dimension="district", dimension_value="D2")["value"].to_list() == [1.0, 2.0]
    rate = goldenton.kpi("on_time", "week", dimension="district", dimension_value=None)
    assert rate.select("numerator", "denominator").rows() == [(2.0, 2.0), (1.0, 1.0)]
    with pytest.raises(ValueError, match="no dimension 'ward'"):
        goldenton.kpi("requests", "week", dimension="ward")


def test_the_breakdown_has_one_labelled_row_with_its_prior_period(goldenton):
    table = goldenton.breakdown("requests", "week", "district", WEEK2)
    rows = {r["dimension_value"]: (r["value"], r["prior_value"], r["change"]) for r in table.iter_rows(named=True)}
    assert rows == {"D2": (2.0, 1.0, 1.0), NOT_RECORDED: (1.0, 2.0, -1.0), "D1": (1.0, 2.0, -1.0)}
    assert NOT_RECORDED in table.write_csv()  # what the Metric page's download button offers


def test_a_daily_kpi_has_breakdowns_by_day(goldenton):
    table = goldenton.breakdown("hours_p90", "day", "district", date(2024, 1, 5))
    assert table.select("dimension_value", "value").rows() == [(NOT_RECORDED, 24.0)]
    assert not goldenton.rollup.series("requests", "day", "district").height  # weekly KPIs: none needed


def test_the_registry_can_name_the_group(tmp_path):
    registry = write_city(tmp_path)
    text = registry.read_text().replace("  fiscal_year_start_month: 7\n",
                                        "  fiscal_year_start_month: 7\n  not_recorded_label: No district given\n")
    registry.write_text(text)
    city = CityStat.open(registry, use_disk_cache=False, replica=False)
    table = city.breakdown("requests", "week", "district", WEEK1)
    assert dict(table.select("dimension_value", "value").rows())["No district given"] == 2.0
    assert city.kpi("requests", "week", dimension="district", dimension_value=None)["value"].to_list() == [2.0, 1.0]


# ---- real data -------------------------------------------------------------------------------------

BOSTON = """\
city: {{name: Boston, timezone: America/New_York, fiscal_year_start_month: 7}}
departments: [{{id: ops, name: Operations}}]
sources:
  - id: requests
    path: {path}
    description: Boston 311 requests, 2015.
    time_column: OPEN_DT
metrics:
  - id: requests
    title: Requests
    department: ops
    owner: Operations Chief
    description: Requests received.
    unit: count
    direction: neutral
    source: requests
    dimensions: [neighborhood]
    measure: {{agg: count}}
  - id: on_time
    title: Closed on time
    department: ops
    owner: Operations Chief
    description: Share of closed requests closed on time.
    unit: percent
    direction: higher
    source: requests
    dimensions: [neighborhood]
    filter: "CLOSED_DT IS NOT NULL"
    numerator: {{agg: count, filter: "OnTime_Status = 'ONTIME'"}}
    denominator: {{agg: count}}
"""


def test_boston_311_requests_without_a_neighborhood(tmp_path, monkeypatch):
    path = realdata("boston_311_2015.parquet")
    monkeypatch.setenv("CITYSTAT_DATA_ROOT", str(path.parent))   # extracts must be inside the data folder
    con = duckdb.connect()
    missing = con.sql(f"SELECT count(*) FROM read_parquet('{path}') WHERE neighborhood IS NULL "
                      f"OR trim(neighborhood) = ''").fetchall()[0][0]
    assert missing == 10_955
    registry = tmp_path / "metrics.yaml"
    registry.write_text(BOSTON.format(path=path.name))
    city = CityStat.open(registry, use_disk_cache=False, replica=False)
    assert not city.registry.problems and city.engine.available == {"requests"}
    years = city.rollup.series("requests", "fiscal_year", "neighborhood")
    assert years.filter(pl.col("dimension_value").is_null()).is_empty()
    assert years.filter(pl.col("dimension_value") == NOT_RECORDED)["value"].sum() == 10_955   # FY2015 + FY2016

    weekly = dict(con.sql(f"""SELECT CAST(date_trunc('week', OPEN_DT) AS DATE), count(*) FROM read_parquet('{path}')
                               WHERE neighborhood IS NULL GROUP BY 1""").fetchall())
    frame = city.kpi("requests", "week", dimension="neighborhood", dimension_value=None)
    assert len(frame) >= 50
    for row in frame.iter_rows(named=True):
        assert row["value"] == weekly.get(row["period_start"], 0), row["period_start"]

    week = date(2015, 6, 8)
    table = city.breakdown("on_time", "week", "neighborhood", week)
    group = table.filter(pl.col("dimension_value") == NOT_RECORDED)
    assert group.height == 1 and table.filter(pl.col("dimension_value").is_null()).is_empty()
    on_time, closed, prior_on_time, prior_closed = con.sql(f"""
        SELECT count(*) FILTER (WHERE OnTime_Status = 'ONTIME' AND date_trunc('week', OPEN_DT) = DATE '{week}'),
               count(*) FILTER (WHERE date_trunc('week', OPEN_DT) = DATE '{week}'),
               count(*) FILTER (WHERE OnTime_Status = 'ONTIME' AND date_trunc('week', OPEN_DT) = DATE '2015-06-01'),
               count(*) FILTER (WHERE date_trunc('week', OPEN_DT) = DATE '2015-06-01')
        FROM read_parquet('{path}') WHERE neighborhood IS NULL AND CLOSED_DT IS NOT NULL""").fetchall()[0]
    row = group.row(0, named=True)
    assert (row["numerator"], row["denominator"]) == (on_time, closed) and closed > 20
    assert row["value"] == pytest.approx(on_time / closed)
    assert row["prior_value"] == pytest.approx(prior_on_time / prior_closed)


SF = """\
city: {{name: San Francisco, timezone: America/Los_Angeles, fiscal_year_start_month: 7}}
departments: [{{id: fire, name: Fire Department}}]
sources:
  - id: fire_calls
    path: {path}
    description: SF Fire Department unit responses, 7-20 April 2020.
    time_column: dispatched_at
metrics:
  - id: response_p90
    title: Response time, 90th percentile
    department: fire
    owner: Fire Chief
    description: Minutes from dispatch to on scene, 90th percentile, by day.
    unit: minutes
    direction: lower
    grain: day
    source: fire_calls
    dimensions: [battalion]
    filter: "on_scene_at IS NOT NULL"
    measure: {{agg: percentile, p: 0.9, expr: "date_diff('second', dispatched_at, on_scene_at) / 60.0"}}
"""


def test_sf_fire_daily_percentile_has_a_breakdown_by_day(tmp_path):
    csv = realdata("sf_fire_calls_2020-04-07_to_04-20.csv")
    parquet = tmp_path / "fire_calls.parquet"
    duckdb.connect().sql(f"""
        COPY (SELECT strptime("Dispatch DtTm", '%m/%d/%Y %I:%M:%S %p') AS dispatched_at,
                     strptime("On Scene DtTm", '%m/%d/%Y %I:%M:%S %p') AS on_scene_at,
                     "Battalion" AS battalion
              FROM read_csv('{csv}', all_varchar = true)) TO '{parquet}' (FORMAT parquet)""")
    registry = tmp_path / "metrics.yaml"
    registry.write_text(SF.format(path=parquet))
    city = CityStat.open(registry, use_disk_cache=False, replica=False)
    day = date(2020, 4, 10)
    table = city.breakdown("response_p90", "day", "battalion", day)
    assert table.height >= 8
    rows = pl.read_parquet(parquet).filter(pl.col("on_scene_at").is_not_null()
                                          & (pl.col("dispatched_at").dt.date() == day))
    for battalion in ("B02", "B03"):
        minutes = rows.filter(pl.col("battalion") == battalion).select(
            (pl.col("on_scene_at") - pl.col("dispatched_at")).dt.total_seconds() / 60.0).to_series().to_numpy()
        expected = float(np.percentile(minutes, 90))   # linear interpolation, as quantile_cont
        got = table.filter(pl.col("dimension_value") == battalion)["value"][0]
        assert got == pytest.approx(expected), battalion

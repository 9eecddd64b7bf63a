"""Pages keep what they build (KPI frames, tables, chart specs) across views: never an answer
from an older rollup or registry, and every filter still shows its own selection.

Testville (tests/support/cities.py) has 20 service requests a day; its last complete week is the
week of 23 Feb 2026 (Mon 23 Feb - Sun 1 Mar), so "Requests received" is 7 x 20 = 140 that week,
against a target of 150 a week.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from citystat.api import CityStat
from citystat.display.charts import trend_chart
from citystat.kpis.refresh import refresh
from tests.support.apptest import render
from tests.support.cities import REGISTRY, make_city, requests_frame


def kpi_rows(app) -> dict[str, dict]:
    """Every KPI row of the Overview's department tables, by KPI title."""
    rows = {}
    for table in app.dataframe:
        frame = table.value
        if "KPI" in frame.columns:
            rows.update({row["KPI"]: row for row in frame.to_dict("records")})
    return rows


def add_requests_in_last_week(folder, per_day: int) -> None:
    """``per_day`` more requests on each day of the week of 23 Feb 2026 (a new extract file)."""
    extra = [{"request_id": 900_000 + 10 * day + k, "created_at": datetime(2026, 2, 23, 1) + timedelta(days=day),
              "district": "D1", "sla_hours": 48} for day in range(7) for k in range(per_day)]
    frame = pl.concat([requests_frame(), pl.DataFrame(extra, schema=requests_frame().schema)])
    frame.write_parquet(folder / "data" / "requests.parquet")


@pytest.fixture
def testville(tmp_path, monkeypatch):
    registry = make_city(tmp_path)
    monkeypatch.setenv("CITYSTAT_REGISTRY", str(registry))
    return tmp_path


def test_overview_shows_the_new_rollup_after_the_extract_changes(testville):
    before = kpi_rows(render("pages/overview.py"))["Requests received"]
    assert (before["Value"], before["Target"], before["Status"]) == ("140", "150", "At risk")

    add_requests_in_last_week(testville, per_day=2)  # 140 + 7 x 2 = 154
    after = kpi_rows(render("pages/overview.py"))["Requests received"]
    assert (after["Value"], after["Status"]) == ("154", "On track")


def test_overview_shows_a_changed_target_at_once(testville):
    assert kpi_rows(render("pages/overview.py"))["Requests received"]["Target"] == "150"
    (testville / "metrics.yaml").write_text(REGISTRY.replace("value: 150", "value: 130"), encoding="utf-8")
    row = kpi_rows(render("pages/overview.py"))["Requests received"]
    assert (row["Value"], row["Target"], row["Status"]) == ("140", "130", "On track")


def test_a_department_filter_shows_its_own_kpis_and_clearing_it_shows_all_again(testville):
    app = render("pages/overview.py")
    assert {"Requests received", "Children with elevated lead"} <= set(kpi_rows(app))
    app.multiselect[0].set_value(["health"]).run()
    assert set(kpi_rows(app)) == {"Children with elevated lead"}
    app.multiselect[0].set_value([]).run()
    assert {"Requests received", "Children with elevated lead"} <= set(kpi_rows(app))


def test_a_replica_shows_a_changed_target_before_the_next_refresh(testville, monkeypatch):
    """A replica serves the published rollup; KPI frames are still worked out with the registry
    it runs now (targets live in the registry, not in the rollup)."""
    refresh(str(testville / "metrics.yaml"), str(testville / "rollups"))
    monkeypatch.setenv("CITYSTAT_ROLLUPS", str(testville / "rollups"))
    stat = CityStat.open(testville / "metrics.yaml", keep_last_good=True)
    last_week = stat.kpi("requests_count", "week").row(-1, named=True)
    assert (last_week["value"], last_week["target"], last_week["status"]) == (140.0, 150.0, "at_risk")

    (testville / "metrics.yaml").write_text(REGISTRY.replace("value: 150", "value: 130"), encoding="utf-8")
    stat.sync(force=True)
    last_week = stat.kpi("requests_count", "week").row(-1, named=True)
    assert (last_week["value"], last_week["target"], last_week["status"]) == (140.0, 130.0, "on_track")
    row = next(r for r in stat.overview() if r.metric.id == "requests_count")
    assert row.current["target"] == 130.0


def test_a_kept_chart_spec_is_the_one_of_its_own_data(tmp_path):
    from citystat.ui.charts import chart_spec

    frame = CityStat.open(make_city(tmp_path)).kpi("requests_count", "week")
    changed = frame.with_columns(pl.when(pl.col("period_start") == pl.col("period_start").max())
                                 .then(pl.lit(154.0)).otherwise(pl.col("value")).alias("value"))
    first = chart_spec(trend_chart, frame, title="Requests", unit="count")
    assert chart_spec(trend_chart, frame.clone(), title="Requests", unit="count") is first  # same content: kept
    other = chart_spec(trend_chart, changed, title="Requests", unit="count")
    assert other is not first and other["datasets"] != first["datasets"]
    assert chart_spec(trend_chart, frame, title="Requests received", unit="count")["datasets"] == first["datasets"]
    assert chart_spec(trend_chart, frame, title="Requests received", unit="count") is not first


def test_a_kept_table_has_the_types_and_values_streamlit_gives_the_frame():
    """Tables of text (and the KPI table's trend column) go to Streamlit as Arrow without pandas:
    the same column types and values as Streamlit's own conversion through pandas. Other
    frames (a date column here) take that conversion itself, byte for byte."""
    from streamlit import dataframe_util

    from citystat.ui.tables import arrow_table

    def through_pandas(frame):
        return dataframe_util.convert_pandas_df_to_arrow_table(
            dataframe_util.convert_anything_to_pandas_df(frame, ensure_copy=False))

    text = pl.DataFrame({"KPI": ["Requests received", "Children with elevated lead"], "Value": ["140", None],
                         "Trend": [[1.0, 2.5], []]})
    ours, theirs = arrow_table(text), through_pandas(text)
    assert ours.schema.remove_metadata() == theirs.schema.remove_metadata()
    assert ours.to_pylist() == theirs.to_pylist() == [
        {"KPI": "Requests received", "Value": "140", "Trend": [1.0, 2.5]},
        {"KPI": "Children with elevated lead", "Value": None, "Trend": []}]

    dated = text.with_columns(Due=pl.Series([datetime(2026, 3, 1).date(), None]))
    assert dataframe_util.convert_arrow_table_to_arrow_bytes(arrow_table(dated)) == \
        dataframe_util.convert_arrow_table_to_arrow_bytes(through_pandas(dated))


def test_a_kpi_score_is_the_frames_score_of_that_period(tmp_path):
    """CityScore reads one period of each KPI (`kpi_score`) instead of building whole frames:
    140 requests in the week of 23 Feb 2026 against 150 a week scores 140 / 150; the week of
    2 Mar 2026 is not complete (the data end on Sun 1 Mar), so it has no score."""
    from datetime import date

    from citystat.kpis.frames import kpi_score

    stat = CityStat.open(make_city(tmp_path))
    metric = stat.metric("requests_count")
    assert kpi_score(stat.registry, stat.rollup, metric, "week", date(2026, 2, 23)) == pytest.approx(140 / 150)
    assert kpi_score(stat.registry, stat.rollup, metric, "week", date(2026, 3, 2)) is None
    # a month is scored against the weekly target scaled by its length: February, 28 days x 20 = 560
    assert kpi_score(stat.registry, stat.rollup, metric, "month", date(2026, 2, 1)) == \
        pytest.approx(560 / (150 * 28 / 7))
    frame = stat.kpi("requests_count", "week")
    assert frame.filter(pl.col("period_start") == date(2026, 2, 23))["score"][0] == \
        kpi_score(stat.registry, stat.rollup, metric, "week", date(2026, 2, 23))


def test_unchanged_says_whether_a_sync_would_reload_anything(testville):
    """Pages skip the "Refreshing…" spinner when `unchanged()`; it must say False whenever a
    sync would reload: an extract rewritten, the registry edited."""
    stat = CityStat.open(testville / "metrics.yaml", keep_last_good=True)
    stat.sync(force=True)
    assert stat.unchanged()
    add_requests_in_last_week(testville, per_day=1)
    assert not stat.unchanged()
    assert stat.sync(force=True).kpi("requests_count", "week")["value"][-1] == 147.0
    assert stat.unchanged()
    (testville / "metrics.yaml").write_text(REGISTRY.replace("value: 150", "value: 130"), encoding="utf-8")
    assert not stat.unchanged()
    stat.sync(force=True)
    assert stat.unchanged()


def test_a_replica_is_unchanged_only_between_checks_of_the_published_rollup(testville, monkeypatch):
    refresh(str(testville / "metrics.yaml"), str(testville / "rollups-a"))
    monkeypatch.setenv("CITYSTAT_ROLLUPS", str(testville / "rollups-a"))
    monkeypatch.setenv("CITYSTAT_ROLLUPS_CHECK_SECONDS", "3600")
    stat = CityStat.open(testville / "metrics.yaml", keep_last_good=True).sync(force=True)
    assert stat.unchanged()  # checked a moment ago: the next check is an hour away

    refresh(str(testville / "metrics.yaml"), str(testville / "rollups-b"))
    monkeypatch.setenv("CITYSTAT_ROLLUPS", str(testville / "rollups-b"))
    monkeypatch.setenv("CITYSTAT_ROLLUPS_CHECK_SECONDS", "0")
    always = CityStat.open(testville / "metrics.yaml", keep_last_good=True).sync(force=True)
    assert not always.unchanged()  # a check is due at every look: sync, which may fetch a new rollup

"""KPI frames, the overview and the CityScore on small hand-made extracts with known answers."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest

from citystat import CityStat
from tests.support.cities import jobs_metric, jobs_registry

REGISTRY = jobs_registry(
    jobs_metric("jobs_done", "Jobs done", tags="[cityscore]", targets="[{from: 2025-01-01, value: 10}]"),
    jobs_metric("on_time", "On time", unit="percent", tags="[cityscore]",
                targets="[{from: 2025-01-01, value: 0.80}, {from: 2025-03-03, value: 0.90}]",
                form="numerator: {agg: count, filter: on_time}\ndenominator: {agg: count}"),
    jobs_metric("minutes_median", "Minutes", unit="minutes", direction="lower",
                targets="[{from: 2025-01-01, value: 30}]", form="measure: {agg: median, expr: minutes}"),
)


def build_city(tmp_path: Path, weeks: list[tuple[int, int, list[int]]]) -> CityStat:
    """weeks: (jobs, on-time jobs, minutes list) for consecutive weeks starting Mon 2025-01-06."""
    rows = []
    for index, (jobs, on_time, minutes) in enumerate(weeks):
        for j in range(jobs):
            day = index * 7 + (j % 5)
            rows.append(f"(TIMESTAMP '2025-01-06 09:00:00' + INTERVAL {day} DAY, {str(j < on_time).lower()}, "
                        f"{minutes[j % len(minutes)]})")
    # one row on the last Sunday so the final week is complete in the data
    last_sunday = len(weeks) * 7 - 1
    rows.append(f"(TIMESTAMP '2025-01-06 23:00:00' + INTERVAL {last_sunday} DAY, true, 1)")
    (tmp_path / "data").mkdir()
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {', '.join(rows)}) t(done_at, on_time, minutes)) "
               f"TO '{tmp_path / 'data' / 'jobs.parquet'}' (FORMAT parquet)")
    (tmp_path / "metrics.yaml").write_text(textwrap.dedent(REGISTRY))
    return CityStat.open(tmp_path / "metrics.yaml", use_disk_cache=False)


def test_values_targets_status_and_comparisons_by_hand(tmp_path):
    # 10 weeks; week 9 (2025-03-03) is the first with the 0.90 target.
    weeks = [(10, 8, [20, 40])] * 8 + [(12, 9, [25]), (8, 8, [50, 10, 30])]
    city = build_city(tmp_path, weeks)
    frame = city.kpi("on_time", "week")
    assert frame["period_start"].to_list()[0] == date(2025, 1, 6)
    assert frame.height == 10
    last, before = frame.row(-1, named=True), frame.row(-2, named=True)
    # the extra Sunday row (on time) belongs to the last week: (8 + 1) / (8 + 1)
    assert last["value"] == pytest.approx(1.0)
    assert (last["numerator"], last["denominator"]) == (9, 9)
    assert last["target"] == 0.90 and last["status"] == "on_track"
    # week 9: 9 / 12 = 0.75 against 0.90: off by 0.15 > 10 % of 0.90 -> off track
    assert before["value"] == pytest.approx(0.75) and before["target"] == 0.90
    assert before["status"] == "off_track"
    assert before["prior_value"] == pytest.approx(0.8)
    assert before["change_vs_prior"] == pytest.approx(-0.05)
    # week 1: 8 / 10 = 0.80 against 0.80 -> on track exactly at target
    assert frame.row(0, named=True)["status"] == "on_track"

    counts = city.kpi("jobs_done", "week")
    assert counts["value"].to_list() == [10] * 8 + [12, 9]
    assert counts.row(-1, named=True)["status"] == "at_risk"  # 9 vs 10: within 10 %
    medians = city.kpi("minutes_median", "week")
    assert medians["value"].to_list()[:8] == [30.0] * 8  # median of 20/40 alternating, 10 jobs
    # last week: minutes cycle 50,10,30 over 8 jobs + the Sunday row's 1 -> sorted middle of 9 values
    assert medians["value"][-1] == pytest.approx(sorted([50, 10, 30, 50, 10, 30, 50, 10, 1])[4])


def test_count_targets_scale_with_the_grain(tmp_path):
    weeks = [(10, 8, [20])] * 9  # 2025-01-06 .. 2025-03-09
    city = build_city(tmp_path, weeks)
    months = city.kpi("jobs_done", "month")
    # only February 2025 is wholly inside the data: 28 days / (365.25 / 12) weekly... per-week target 10
    # is scaled by 28 / 7 = 4 weeks for the grain of the KPI (week -> month uses days / 7).
    february = months.filter(months["period_start"] == date(2025, 2, 1)).row(0, named=True)
    assert february["target"] == pytest.approx(10 * 28 / 7)
    # a rate's target is not scaled
    rates = city.kpi("on_time", "month")
    assert rates.filter(rates["period_start"] == date(2025, 2, 1))["target"][0] == 0.80


def test_partial_periods_are_left_out(tmp_path):
    city = build_city(tmp_path, [(10, 8, [20])] * 9)
    months = city.kpi("jobs_done", "month")["period_start"].to_list()
    assert months == [date(2025, 2, 1)]  # January starts before the data (6th), March is cut on the 9th


def test_a_shift_is_a_process_signal(tmp_path):
    # 20 steady weeks alternating 10/11 jobs, then 8 weeks at 16: rule 1 fires on the shift
    weeks = [((10 if i % 2 else 11), 8, [20]) for i in range(20)] + [(16, 8, [20])] * 8
    city = build_city(tmp_path, weeks)
    frame = city.kpi("jobs_done", "week")
    baseline = frame.head(20)
    centre = sum(baseline["value"]) / 20
    assert frame["centre"][0] == pytest.approx(centre)  # 10.5
    # average moving range of the alternating 11,10,... baseline is 1 -> limits 10.5 ± 2.66
    assert frame["upper_limit"][0] == pytest.approx(10.5 + 2.66)
    assert not any(frame.head(20)["signal"])
    shifted = frame.slice(20, 7)  # the last week has one more (Sunday) row: 17
    assert all(shifted["signal"]) and all("1" in r for r in shifted["rules"])


def test_overview_and_cityscore_by_hand(tmp_path):
    weeks = [(10, 8, [20])] * 8 + [(12, 9, [25]), (8, 8, [50, 10, 30])]
    city = build_city(tmp_path, weeks)
    rows = {r.metric.id: r for r in city.overview()}
    assert rows["jobs_done"].current["value"] == 9
    assert rows["jobs_done"].period_start == date(2025, 3, 10)
    scores = city.city_scores()
    week = scores.filter(scores["window"] == "week").row(0, named=True)
    # jobs_done 9 / 10 = 0.9; on_time 1.0 / 0.9 = 1.111...; mean = 1.00556
    assert week["score"] == pytest.approx((0.9 + 1.0 / 0.9) / 2)
    assert week["metrics_scored"] == 2


def test_an_edited_extract_shows_up_without_a_restart(tmp_path):
    city = build_city(tmp_path, [(10, 8, [20])] * 4)
    assert city.kpi("jobs_done", "week")["value"][0] == 10
    data = tmp_path / "data" / "jobs.parquet"
    duckdb.sql(f"COPY (SELECT * FROM '{data}' UNION ALL SELECT TIMESTAMP '2025-01-07 10:00:00', true, 5) "
               f"TO '{tmp_path / 'new.parquet'}' (FORMAT parquet)")
    (tmp_path / "new.parquet").replace(data)
    assert city.kpi("jobs_done", "week")["value"][0] == 11
    registry = tmp_path / "metrics.yaml"
    registry.write_text(registry.read_text().replace("value: 10}", "value: 12}"))
    assert city.kpi("jobs_done", "week")["target"][0] == 12

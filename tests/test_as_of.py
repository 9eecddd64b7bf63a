"""The "As of" choices reach every period a KPI reports: week ends, and the month ends that fall
mid-week (a weekly picker alone could not show a month completed on a Monday)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from citystat import CityStat
from citystat.ui.widgets import as_of_choices
from tests.support.cities import jobs_metric, jobs_registry

REGISTRY = jobs_registry(jobs_metric("jobs_weekly", "Jobs done each week"),
                         jobs_metric("jobs_monthly", "Jobs done each month", grain="month"))


def city_ending(tmp_path, last_day: date) -> CityStat:
    first = date(2026, 3, 1)   # all in the past: rows after today would be future-dated
    days = [first + timedelta(days=i) for i in range((last_day - first).days + 1)]
    (tmp_path / "data").mkdir()
    pl.DataFrame({"done_at": [datetime.combine(d, datetime.min.time()) + timedelta(hours=12) for d in days]}) \
        .write_parquet(tmp_path / "data" / "jobs.parquet")
    (tmp_path / "metrics.yaml").write_text(REGISTRY, encoding="utf-8")
    return CityStat.open(tmp_path / "metrics.yaml", use_disk_cache=False).sync()


def test_a_month_ending_on_a_monday_is_a_choice_and_shows_that_month(tmp_path):
    stat = city_ending(tmp_path, date(2026, 8, 31))           # Mon 31 Aug: August is complete
    choices = as_of_choices(stat)
    assert choices[0] == (date(2026, 8, 31), "Aug 2026")      # newest first: the month end
    assert choices[1] == (date(2026, 8, 30), "Week of 24 Aug 2026")
    assert (date(2026, 7, 31), "Jul 2026") in choices         # a Friday month end
    rows = {row.metric.id: row for row in stat.overview(date(2026, 8, 31))}
    assert rows["jobs_monthly"].current["period_start"] == date(2026, 8, 1)
    assert rows["jobs_monthly"].current["value"] == 31
    assert rows["jobs_weekly"].current["period_start"] == date(2026, 8, 24)
    assert rows["jobs_weekly"].current["value"] == 7


def test_a_day_closing_a_week_and_a_month_is_listed_once(tmp_path):
    stat = city_ending(tmp_path, date(2026, 5, 31))           # Sun 31 May closes a week and a month
    choices = as_of_choices(stat)
    days = [day for day, _ in choices]
    assert len(days) == len(set(days))
    assert choices[0] == (date(2026, 5, 31), "Week of 25 May 2026 · May 2026")
    assert days[1] == date(2026, 5, 24)

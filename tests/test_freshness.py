"""Honest freshness on the hand-made Testville city: judged against the clock, the data's end
said on every page, late sources named with their cadence, future-dated rows reported and left
out of the default period, and the sample-data notice.

Testville's data ends on Sun 1 Mar 2026 (requests daily, cases weekly; the old feed stopped on
Fri 20 Feb 2026); a fixed "now" is passed where the test needs one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from citystat.api import CityStat
from citystat.checks.health import clock_setting, data_freshness, future_rows, health_report, health_table
from citystat.checks.validate import validate
from citystat.registry.loader import load_registry
from tests.support.apptest import render, texts
from tests.support.cities import REGISTRY, make_city, requests_frame

LAST_WEEK = date(2026, 2, 23)  # the week Mon 23 Feb .. Sun 1 Mar 2026, Testville's last complete week


def _city_with_future_row(folder, when: datetime):
    path = make_city(folder)
    frame = requests_frame()
    extra = pl.DataFrame({"request_id": [999_999], "created_at": [when], "district": ["D1"], "sla_hours": [48]},
                         schema=frame.schema)
    pl.concat([frame, extra]).write_parquet(folder / "data" / "requests.parquet")
    return path


def test_the_default_clock_is_the_real_one(monkeypatch):
    monkeypatch.delenv("CITYSTAT_FRESHNESS_CLOCK", raising=False)
    assert clock_setting() == "wall"


def test_an_old_extract_is_late_against_a_fixed_now_and_says_when_the_data_ends(tmp_path):
    stat = CityStat.open(make_city(tmp_path / "city"), use_disk_cache=False).sync()
    fresh = data_freshness(stat, now=datetime(2026, 3, 10, 12))
    assert fresh.ends_text() == "Data to Sun 1 Mar 2026"
    # against 10 Mar every source is two or more refreshes behind (weekends do not count for daily ones)
    assert {source_id for source_id, *_ in fresh.late} == {"requests", "cases", "old_feed"}
    text = fresh.late_text()
    assert "Service requests (updated daily, newest data Sun 1 Mar 2026)" in text
    assert "Lead test cases (updated weekly, newest data" in text
    assert "Old feed (updated daily, newest data Fri 20 Feb 2026)" in text
    # the next morning only the feed that stopped is behind
    fresh = data_freshness(stat, now=datetime(2026, 3, 2, 8))
    assert {source_id for source_id, *_ in fresh.late} == {"old_feed"}


def test_future_dated_rows_are_reported_and_left_out_of_the_default_period(tmp_path):
    # one request dated 40 days after today (the real clock), as a typo in a date would be
    when = datetime.combine(date.today() + timedelta(days=40), datetime.min.time()).replace(hour=9)
    path = _city_with_future_row(tmp_path / "city", when)
    stat = CityStat.open(path, use_disk_cache=False).sync()
    assert stat.rollup.last_data_day() == when.date()          # the raw extent does include it
    assert stat.as_of("week") == LAST_WEEK                     # ... the default period does not
    assert stat.periods("week")[0] == LAST_WEEK
    assert future_rows(stat) == {"requests": (1, when)}
    fresh = data_freshness(stat)
    assert fresh.ends_text() == "Data to Sun 1 Mar 2026"
    assert "requests: 1 row(s), the latest dated" in fresh.future_text()
    table = health_table(health_report(stat), fresh.future)
    row = table.filter(pl.col("source_id") == "requests").row(0, named=True)
    assert row["future_rows"].startswith("1 (latest")
    assert table.filter(pl.col("source_id") == "cases")["future_rows"][0] == "none"
    # the KPI reading the source still ends at its last real week
    frame = stat.kpi("requests_count", "week")
    assert frame["period_start"].max() == LAST_WEEK
    # validate reports the source too
    problems = validate(load_registry(path)).problems
    today = date.today()
    assert any(p.entry == "source requests" and p.message.startswith("has 1 row(s) dated in the future (the latest ")
               and f"today is {today:%a} {today.day} {today:%b %Y}" in p.message for p in problems)


def test_sample_data_gets_one_calm_notice_and_is_judged_as_of_its_end(tmp_path):
    text = REGISTRY.replace("  fiscal_year_start_month: 7\n",
                            "  fiscal_year_start_month: 7\n  sample_data_until: 2026-03-01\n", 1)
    stat = CityStat.open(make_city(tmp_path / "city", text), use_disk_cache=False).sync()
    fresh = data_freshness(stat)
    assert fresh.now == datetime(2026, 3, 1, 23, 59, 59)
    assert {source_id for source_id, *_ in fresh.late} == {"old_feed"}   # only the feed that stopped
    assert fresh.sample_text() == ("Sample data: this city's data is made up for demonstration and ends on "
                                   "Sun 1 Mar 2026; freshness is judged as of that day.")


@pytest.fixture()
def testville(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYSTAT_FRESHNESS_CLOCK", raising=False)
    monkeypatch.setenv("CITYSTAT_REGISTRY", str(make_city(tmp_path / "city")))
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(tmp_path / "cache"))


def test_pages_say_when_the_data_ends_and_flag_late_sources(testville):
    overview = texts(render("pages/overview.py"))
    assert "Data to Sun 1 Mar 2026" in overview
    # judged against today, Testville's daily requests are late: said with the cadence in words
    assert "Service requests (updated daily, newest data Sun 1 Mar 2026)" in overview
    metric = texts(render("pages/metric.py", {"metric": "requests_count"}))
    assert "Data to Sun 1 Mar 2026" in metric and "Late: Service requests" in metric


def test_open_data_page_says_when_the_data_ends_not_the_file_time(testville):
    shown = texts(render("pages/open_data.py"))
    assert "Last refresh" not in shown and "P1D" not in shown
    assert "**Data to:** Sun 1 Mar 2026 · expected to be updated daily" in shown
    assert "Late: this data should be updated daily, but the newest record is from Sun 1 Mar 2026." in shown


def test_public_page_says_when_the_figures_end(testville):
    shown = texts(render("pages/public.py"))
    assert "Figures use city data up to Sun 1 Mar 2026." in shown
    assert "should be updated daily but its newest data is from Sun 1 Mar 2026" in shown


def test_a_session_well_after_the_data_ends_says_so(tmp_path):
    from citystat.session.agenda import build_agenda
    from citystat.session.packet import data_gap_text, freshness_html
    from citystat.store import open_store

    stat = CityStat.open(make_city(tmp_path / "city"), use_disk_cache=False).sync()
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    # Monday after the data's last week: the data reaches the session's eve, nothing to say
    assert data_gap_text(build_agenda(stat, store, department="ops", session_date=date(2026, 3, 2))) == ""
    late = build_agenda(stat, store, department="ops", session_date=date(2026, 3, 12))
    assert data_gap_text(late) == ("This session is on Thu 12 Mar 2026, but the data ends on Sun 1 Mar 2026: "
                                   "the 10 days before the session are not in these figures.")
    assert "the 10 days before the session are not in these figures" in freshness_html(stat, late)

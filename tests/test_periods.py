"""Periods, fiscal years, labels, dated targets and comparisons, against calendar facts."""

from __future__ import annotations

import doctest
from datetime import date, timedelta

import pytest

import citystat.core.compare as compare_module
import citystat.core.periods as periods_module
import citystat.core.targets as targets_module
from citystat.core.compare import compare, compare_with_prior_and_last_year
from citystat.core.periods import (
    GRAINS,
    fiscal_year,
    latest_complete_period,
    period_end,
    period_label,
    period_start,
    periods_between,
    same_period_last_year,
    shift_period,
)
from citystat.core.targets import target_for


def test_grains() -> None:
    assert GRAINS == ("day", "week", "month", "quarter", "fiscal_year")


@pytest.mark.parametrize(
    ("day", "grain", "start", "end"),
    [
        # 12 Nov 2026 is a Thursday; its week runs Mon 9 .. Sun 15 Nov
        (date(2026, 11, 12), "week", date(2026, 11, 9), date(2026, 11, 15)),
        (date(2026, 11, 9), "week", date(2026, 11, 9), date(2026, 11, 15)),
        (date(2026, 11, 15), "week", date(2026, 11, 9), date(2026, 11, 15)),
        # a week that straddles a year end: Thu 1 Jan 2026 is in the week of Mon 29 Dec 2025
        (date(2026, 1, 1), "week", date(2025, 12, 29), date(2026, 1, 4)),
        (date(2024, 2, 10), "month", date(2024, 2, 1), date(2024, 2, 29)),  # leap year
        (date(2025, 2, 10), "month", date(2025, 2, 1), date(2025, 2, 28)),
        (date(2026, 12, 31), "month", date(2026, 12, 1), date(2026, 12, 31)),
        (date(2026, 5, 20), "quarter", date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 12, 31), "quarter", date(2026, 10, 1), date(2026, 12, 31)),
        (date(2026, 3, 15), "fiscal_year", date(2025, 7, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), "fiscal_year", date(2026, 7, 1), date(2027, 6, 30)),
        (date(2026, 3, 15), "day", date(2026, 3, 15), date(2026, 3, 15)),
    ],
)
def test_period_start_and_end(day: date, grain: str, start: date, end: date) -> None:
    assert period_start(day, grain) == start
    assert period_end(start, grain) == end


def test_fiscal_year_with_other_start_months() -> None:
    # New York City / most US states: FY starts 1 July; the US federal FY starts 1 October
    assert period_start(date(2026, 9, 30), "fiscal_year", fy_start_month=10) == date(2025, 10, 1)
    assert period_end(date(2025, 10, 1), "fiscal_year", fy_start_month=10) == date(2026, 9, 30)
    assert fiscal_year(date(2025, 10, 1), fy_start_month=10) == 2026
    # calendar fiscal year
    assert period_start(date(2026, 9, 30), "fiscal_year", fy_start_month=1) == date(2026, 1, 1)
    assert fiscal_year(date(2026, 12, 31), fy_start_month=1) == 2026


@pytest.mark.parametrize(
    ("day", "fy"),
    [(date(2025, 6, 30), 2025), (date(2025, 7, 1), 2026), (date(2026, 6, 30), 2026), (date(2026, 7, 1), 2027)],
)
def test_fiscal_year_named_by_end_year(day: date, fy: int) -> None:
    assert fiscal_year(day) == fy


def test_shift_period() -> None:
    assert shift_period(date(2026, 11, 9), "week", -1) == date(2026, 11, 2)
    assert shift_period(date(2026, 11, 12), "week", 1) == date(2026, 11, 16)  # normalises first
    assert shift_period(date(2026, 1, 1), "month", -1) == date(2025, 12, 1)
    assert shift_period(date(2026, 1, 1), "month", 14) == date(2027, 3, 1)
    assert shift_period(date(2026, 1, 1), "quarter", -1) == date(2025, 10, 1)
    assert shift_period(date(2025, 7, 1), "fiscal_year", 2) == date(2027, 7, 1)
    assert shift_period(date(2024, 2, 28), "day", 2) == date(2024, 3, 1)


def test_periods_between_includes_partly_covered_periods() -> None:
    weeks = periods_between(date(2026, 11, 1), date(2026, 11, 18), "week")
    # Sun 1 Nov is in the week of Mon 26 Oct; Wed 18 Nov in the week of 16 Nov
    assert weeks == [date(2026, 10, 26), date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)]
    assert periods_between(date(2025, 12, 15), date(2026, 2, 1), "month") == [
        date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
    ]
    assert periods_between(date(2026, 2, 1), date(2025, 12, 15), "month") == []
    # sample city: 2023-11-13 .. 2026-11-15 is exactly 157 weeks
    assert len(periods_between(date(2023, 11, 13), date(2026, 11, 15), "week")) == 157
    days = periods_between(date(2024, 2, 27), date(2024, 3, 1), "day")
    assert days == [date(2024, 2, 27) + timedelta(days=i) for i in range(4)]


def test_latest_complete_period_for_sample_city() -> None:
    # SAMPLE_CITY.md: data to Sun 2026-11-15 -> week of 2026-11-09, month October 2026
    last = date(2026, 11, 15)
    assert latest_complete_period(last, "day") == last
    assert latest_complete_period(last, "week") == date(2026, 11, 9)
    assert latest_complete_period(last, "month") == date(2026, 10, 1)
    assert latest_complete_period(last, "quarter") == date(2026, 7, 1)
    assert latest_complete_period(last, "fiscal_year") == date(2025, 7, 1)
    # a Saturday: its week is not complete yet
    assert latest_complete_period(date(2026, 11, 14), "week") == date(2026, 11, 2)
    # the last day of a month completes it
    assert latest_complete_period(date(2026, 10, 31), "month") == date(2026, 10, 1)
    assert latest_complete_period(date(2026, 6, 30), "fiscal_year") == date(2025, 7, 1)


def test_same_period_last_year() -> None:
    # week: 52 weeks earlier so that Monday stays Monday
    week = same_period_last_year(date(2026, 11, 9), "week")
    assert week == date(2025, 11, 10) and week.weekday() == 0
    day = same_period_last_year(date(2026, 11, 12), "day")
    assert day == date(2025, 11, 13) and day.weekday() == date(2026, 11, 12).weekday()
    assert same_period_last_year(date(2026, 10, 1), "month") == date(2025, 10, 1)
    assert same_period_last_year(date(2024, 2, 1), "month") == date(2023, 2, 1)
    assert same_period_last_year(date(2026, 7, 1), "quarter") == date(2025, 7, 1)
    assert same_period_last_year(date(2026, 7, 1), "fiscal_year") == date(2025, 7, 1)


@pytest.mark.parametrize(
    ("start", "grain", "label"),
    [
        (date(2026, 11, 9), "day", "Mon 9 Nov 2026"),
        (date(2026, 11, 15), "day", "Sun 15 Nov 2026"),
        (date(2026, 11, 9), "week", "Week of 9 Nov 2026"),
        (date(2026, 10, 1), "month", "Oct 2026"),
        (date(2026, 10, 1), "quarter", "Q4 2026"),
        (date(2026, 1, 1), "quarter", "Q1 2026"),
        (date(2026, 7, 1), "fiscal_year", "FY2027"),
        (date(2025, 7, 1), "fiscal_year", "FY2026"),
    ],
)
def test_period_label(start: date, grain: str, label: str) -> None:
    assert period_label(start, grain) == label


def test_bad_grain_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown grain 'weekly'"):
        period_start(date(2026, 1, 1), "weekly")
    with pytest.raises(ValueError, match="fy_start_month"):
        period_start(date(2026, 1, 1), "fiscal_year", fy_start_month=13)


# -- targets -------------------------------------------------------------------------------

TARGETS = [(date(2025, 7, 1), 0.85), (date(2023, 7, 1), 0.80)]  # deliberately unsorted


def test_target_for_picks_latest_started_target() -> None:
    assert target_for(TARGETS, date(2023, 6, 30)) is None
    assert target_for(TARGETS, date(2023, 7, 1)) == 0.80
    assert target_for(TARGETS, date(2025, 6, 30)) == 0.80
    assert target_for(TARGETS, date(2025, 7, 1)) == 0.85
    assert target_for(TARGETS, date(2030, 1, 1)) == 0.85
    assert target_for([], date(2030, 1, 1)) is None


def test_target_for_uses_the_period_start() -> None:
    # the week of Mon 30 Jun 2025 ends Sun 6 Jul, after the new target started: it still
    # carries the target in force on its first day
    assert target_for(TARGETS, period_start(date(2025, 7, 3), "week")) == 0.80


def test_a_none_target_ends_the_previous_one() -> None:
    targets = [(date(2023, 7, 1), 0.80), (date(2025, 7, 1), None)]
    assert target_for(targets, date(2024, 1, 1)) == 0.80
    assert target_for(targets, date(2025, 8, 1)) is None


# -- comparisons ---------------------------------------------------------------------------


def test_compare_directions() -> None:
    up = compare(0.90, 0.80, "higher")
    assert up.delta == pytest.approx(0.10) and up.pct_change == pytest.approx(0.125)
    assert up.better is True
    assert compare(0.90, 0.80, "lower").better is False
    assert compare(4.0, 5.0, "lower").better is True
    assert compare(4.0, 5.0, "neutral").better is None
    assert compare(5.0, 5.0, "higher").better is None  # no change: neither better nor worse
    # a negative reference: pct change is relative to its size
    assert compare(-40.0, -50.0, "higher").pct_change == pytest.approx(0.2)


def test_compare_missing_and_zero_reference() -> None:
    missing = compare(None, 3.0, "higher")
    assert (missing.delta, missing.pct_change, missing.better) == (None, None, None)
    assert compare(3.0, float("nan"), "higher").reference is None
    zero = compare(3.0, 0.0, "higher")
    assert zero.delta == 3.0 and zero.pct_change is None and zero.better is True


def test_compare_with_prior_and_last_year() -> None:
    values = {date(2026, 11, 9): 120.0, date(2026, 11, 2): 100.0, date(2025, 11, 10): 150.0}
    prior, last_year = compare_with_prior_and_last_year(values, date(2026, 11, 9), "week", "lower")
    assert prior.reference == 100.0 and prior.better is False
    assert last_year.reference == 150.0 and last_year.better is True
    assert last_year.pct_change == pytest.approx(-0.2)


@pytest.mark.parametrize("module", [periods_module, targets_module, compare_module])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, globs={"date": date, **vars(module)})
    assert result.failed == 0 and result.attempted > 0

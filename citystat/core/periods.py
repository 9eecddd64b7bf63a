"""Reporting periods: grains, period boundaries, fiscal years and labels.

A period is identified by its first day (``period_start``); ``period_end`` is its last day,
inclusive. Weeks start on Monday (ISO), so a week never straddles two stat sessions that
were scheduled on different weekdays. The fiscal year starts on the 1st of
``fy_start_month`` and is named by the calendar year in which it *ends* (the US municipal
convention: FY2026 = 2025-07-01 .. 2026-06-30 when the start month is 7).

Everything here is pure date arithmetic: no wall clock, no time zones.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal, get_args

Grain = Literal["day", "week", "month", "quarter", "fiscal_year"]
GRAINS: tuple[str, ...] = get_args(Grain)


def _check_grain(grain: str) -> None:
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")


def _check_fy_month(fy_start_month: int) -> None:
    if not 1 <= fy_start_month <= 12:
        raise ValueError(f"fy_start_month must be 1..12, got {fy_start_month!r}")


def _add_months(d: date, months: int) -> date:
    """First-of-month arithmetic: only ever called on dates that are the 1st of a month."""
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def fiscal_year(d: date, fy_start_month: int = 7) -> int:
    """The fiscal year containing ``d``, named by the calendar year in which it ends.

    >>> fiscal_year(date(2025, 7, 1)), fiscal_year(date(2026, 6, 30))
    (2026, 2026)
    >>> fiscal_year(date(2026, 3, 1), fy_start_month=1)
    2026
    """
    _check_fy_month(fy_start_month)
    if fy_start_month == 1:
        return d.year
    return d.year + 1 if d.month >= fy_start_month else d.year


def period_start(d: date, grain: str, fy_start_month: int = 7) -> date:
    """The first day of the ``grain`` period containing ``d``.

    >>> period_start(date(2026, 11, 12), "week")   # a Thursday -> Monday
    datetime.date(2026, 11, 9)
    >>> period_start(date(2026, 3, 15), "fiscal_year")
    datetime.date(2025, 7, 1)
    """
    _check_grain(grain)
    _check_fy_month(fy_start_month)
    if grain == "day":
        return d
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    if grain == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    # fiscal_year
    start_year = d.year if d.month >= fy_start_month else d.year - 1
    return date(start_year, fy_start_month, 1)


def shift_period(start: date, grain: str, n: int, fy_start_month: int = 7) -> date:
    """The start of the period ``n`` periods after (n > 0) or before (n < 0) ``start``.

    ``start`` is normalised to its period first, so any day inside a period works.
    """
    start = period_start(start, grain, fy_start_month)
    if grain == "day":
        return start + timedelta(days=n)
    if grain == "week":
        return start + timedelta(weeks=n)
    if grain == "month":
        return _add_months(start, n)
    if grain == "quarter":
        return _add_months(start, 3 * n)
    return _add_months(start, 12 * n)


def period_end(start: date, grain: str, fy_start_month: int = 7) -> date:
    """The last day (inclusive) of the period starting at (or containing) ``start``."""
    return shift_period(start, grain, 1, fy_start_month) - timedelta(days=1)


def periods_between(first: date, last: date, grain: str, fy_start_month: int = 7) -> list[date]:
    """Every period start whose period overlaps ``[first, last]``, oldest first.

    The first and last periods may be only partly covered; callers that need complete
    periods should check them against :func:`latest_complete_period`.
    """
    if last < first:
        return []
    out: list[date] = []
    current = period_start(first, grain, fy_start_month)
    while current <= last:
        out.append(current)
        current = shift_period(current, grain, 1, fy_start_month)
    return out


def latest_complete_period(last_data_day: date, grain: str, fy_start_month: int = 7) -> date:
    """Start of the latest period whose last day is on or before ``last_data_day``.

    The "as of" period is driven by the data, never by the wall clock: a week is shown only
    once the data reaches its Sunday, so a half-loaded week never looks like a collapse.

    >>> latest_complete_period(date(2026, 11, 15), "week")   # a Sunday: its week is complete
    datetime.date(2026, 11, 9)
    >>> latest_complete_period(date(2026, 11, 15), "month")
    datetime.date(2026, 10, 1)
    """
    start = period_start(last_data_day, grain, fy_start_month)
    if period_end(start, grain, fy_start_month) <= last_data_day:
        return start
    return shift_period(start, grain, -1, fy_start_month)


def same_period_last_year(start: date, grain: str, fy_start_month: int = 7) -> date:
    """The comparable period one year earlier.

    Days and weeks go back 364 days (52 weeks) so the weekday matches: a Monday is compared
    with a Monday, whose workload is alike. Months, quarters and fiscal years go back one
    calendar year.
    """
    start = period_start(start, grain, fy_start_month)
    if grain in ("day", "week"):
        return start - timedelta(days=364)
    return _add_months(start, -12)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def period_label(start: date, grain: str, fy_start_month: int = 7) -> str:
    """A short human label: "Mon 9 Nov 2026", "Week of 9 Nov 2026", "Oct 2026", "Q4 2026",
    "FY2027". Quarters are calendar quarters; fiscal years are named by their end year.
    """
    start = period_start(start, grain, fy_start_month)
    if grain == "day":
        return f"{_WEEKDAYS[start.weekday()]} {start.day} {_MONTHS[start.month - 1]} {start.year}"
    if grain == "week":
        return f"Week of {start.day} {_MONTHS[start.month - 1]} {start.year}"
    if grain == "month":
        return f"{_MONTHS[start.month - 1]} {start.year}"
    if grain == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    return f"FY{fiscal_year(start, fy_start_month)}"

"""The one formatter for people: values, changes, dates, durations, headers and tables.

Every number a person reads -- in a table, a card, the session agenda, the packet, the public
page -- goes through here, so the same figure reads the same everywhere:

* values in the metric's unit, rounded half up (as d3 does in the charts): ``88.3%``,
  ``1,234``, ``3.3 days``, ``$1,200``; a missing value is ``—``, never "None";
* changes with their unit and, when the KPI has a direction, whether they are good or bad in
  words as well as by arrow: ``▲ +2.1 pts (better)``; percent KPIs change in percentage points;
* dates as dates (``Mon 9 Nov 2026``), refresh cadences in words (``daily``, not ``P1D``);
* column headers in plain words (``Period``, not ``period_start``).

Pure: no Streamlit, no DuckDB.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import polars as pl

EM_DASH = "—"
NOT_RECORDED = "(not recorded)"  # an empty dimension value
MINUS = "−"  # U+2212: a real minus sign, as wide as the plus
UNITS = ("percent", "count", "days", "hours", "minutes", "number", "currency", "ug_dl", "ug_m3", "ratio")
_SUFFIX = {"days": "days", "hours": "hours", "minutes": "min", "ug_dl": "µg/dL", "ug_m3": "µg/m³"}


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _round_half_up(value: float, places: int) -> Decimal:
    # Python's format() rounds the binary value half-to-even (3.25 -> "3.2"); d3 in the
    # browser rounds 3.25 to "3.3". Tables and charts must agree, so round half up here.
    quantum = Decimal(1).scaleb(-places)
    return Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP)


def _grouped(number: Decimal, places: int) -> str:
    return f"{number:,.{places}f}"


def _magnitude(value: float, unit: str) -> tuple[str, bool]:
    """The unsigned text of ``abs(value)`` in ``unit`` and whether it rounds to zero."""
    value = abs(float(value))
    if unit == "percent":
        rounded = _round_half_up(value * 100, 1)
        return f"{_grouped(rounded, 1)}%", rounded == 0
    if unit == "count":
        rounded = _round_half_up(value, 0)
        return _grouped(rounded, 0), rounded == 0
    if unit == "currency":
        rounded = _round_half_up(value, 0)
        return f"${_grouped(rounded, 0)}", rounded == 0
    if unit == "ratio":
        rounded = _round_half_up(value, 2)
        return _grouped(rounded, 2), rounded == 0
    if unit == "number":
        rounded = _round_half_up(value, 2)
        text = _grouped(rounded, 2)
        return (text.rstrip("0").rstrip(".") if "." in text else text), rounded == 0
    rounded = _round_half_up(value, 1)
    return f"{_grouped(rounded, 1)} {_SUFFIX[unit]}", rounded == 0


def format_value(value: float | None, unit: str) -> str:
    """A value as text for tables, cards and sentences.

    >>> format_value(0.853, "percent"), format_value(1234, "count"), format_value(3.25, "days")
    ('85.3%', '1,234', '3.3 days')
    >>> format_value(None, "count"), format_value(-0.4, "currency"), format_value(-2.5, "count")
    ('—', '$0', '−3')
    """
    _check_unit(unit)
    if _missing(value):
        return EM_DASH
    text, zero = _magnitude(value, unit)
    return (MINUS if value < 0 and not zero else "") + text


# --- changes ---------------------------------------------------------------------------------------

def change_amount(change: float, unit: str) -> tuple[str, bool]:
    """The unsigned size of a change in ``unit`` (percentage points for percent) and whether it
    rounds to zero: ``(0.021, "percent") -> ("2.1 pts", False)``."""
    _check_unit(unit)
    if unit == "percent":
        rounded = _round_half_up(abs(change) * 100, 1)
        return f"{_grouped(rounded, 1)} pts", rounded == 0
    return _magnitude(change, unit)


def change_verdict(change: float | None, direction: str | None) -> str | None:
    """"better", "worse", or None (no change, unknown, or a KPI with no better way)."""
    if _missing(change) or change == 0 or direction not in ("higher", "lower"):
        return None
    return "better" if (change > 0) == (direction == "higher") else "worse"


def change_text(change: float | None, unit: str, direction: str | None = None, *,
                arrow: bool = True) -> str:
    """A change since an earlier period, signed, in the KPI's unit, and good or bad in words.

    Percent KPIs (stored as fractions) change in percentage points. The verdict follows the
    KPI's direction (higher or lower is better); a neutral KPI gets none.

    >>> change_text(0.021, "percent", "higher")
    '▲ +2.1 pts (better)'
    >>> change_text(-0.37, "days", "lower")
    '▼ −0.4 days (better)'
    >>> change_text(None, "count"), change_text(0.0001, "count", "higher")
    ('—', 'no change')
    """
    if _missing(change):
        return EM_DASH
    amount, zero = change_amount(change, unit)
    if zero:
        return "no change"
    up = change > 0
    text = ("+" if up else MINUS) + amount
    if arrow:
        text = ("▲ " if up else "▼ ") + text
    verdict = change_verdict(change, direction)
    return f"{text} ({verdict})" if verdict else text


def metric_delta(change: float | None, unit: str, direction: str | None = None) -> str | None:
    """The ``delta`` of a Streamlit metric card: like ``change_text`` without the arrow (the card
    draws its own) and with an ASCII minus, which is how the card tells a fall from a rise."""
    if _missing(change):
        return None
    text = change_text(change, unit, direction, arrow=False)
    return text.replace(MINUS, "-", 1)


def delta_colour(direction: str | None) -> str:
    """Streamlit's ``delta_color`` for a KPI: green for better, red for worse, grey if neutral."""
    return {"higher": "normal", "lower": "inverse"}.get(direction or "", "off")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 signal``, ``3 signals``, ``2 open commitments`` — never "signal(s)".

    >>> plural(1, "signal"), plural(0, "alert"), plural(2, "open commitment")
    ('1 signal', '0 alerts', '2 open commitments')
    """
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


# --- dates and durations -----------------------------------------------------------------------------

def format_date(day: date | datetime | None) -> str:
    """``Mon 9 Nov 2026`` (a datetime at midnight is a date; otherwise the time is added)."""
    if day is None:
        return EM_DASH
    text = f"{day:%a} {day.day} {day:%b %Y}"
    if isinstance(day, datetime) and (day.hour, day.minute, day.second) != (0, 0, 0):
        text += f" {day:%H:%M}"
    return text


def format_day(day: date | datetime | None) -> str:
    """``9 Nov 2026`` (for tables where the weekday would crowd)."""
    if day is None:
        return EM_DASH
    return f"{day.day} {day:%b %Y}"


_CADENCE = {timedelta(hours=1): "hourly", timedelta(days=1): "daily", timedelta(days=7): "weekly",
            timedelta(days=30): "monthly", timedelta(days=91): "quarterly", timedelta(days=90): "quarterly",
            timedelta(days=365): "yearly"}
_DURATION_PART = re.compile(r"(\d+)([YMWDHS])")


def refresh_words(refresh: str | None) -> str:
    """An ISO 8601 refresh cadence in words: ``P1D`` -> ``daily``, ``PT6H`` -> ``every 6 hours``.

    >>> refresh_words("P1W"), refresh_words("P2W"), refresh_words("PT6H")
    ('weekly', 'every 2 weeks', 'every 6 hours')
    """
    if not refresh:
        return "not declared"
    from citystat.checks.quality import parse_duration

    try:
        interval = parse_duration(refresh)
    except ValueError:
        return refresh
    if interval in _CADENCE:
        return _CADENCE[interval]
    return "every " + duration_words(interval)


def duration_words(delta: timedelta) -> str:
    """A length of time in words: ``2 days``, ``6 hours``, ``3 weeks``."""
    seconds = delta.total_seconds()
    for size, name in ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and (seconds % size == 0 or size <= 86400):
            n = round(seconds / size)
            return f"{n} {name}" + ("" if n == 1 else "s")
    return f"{seconds:.0f} seconds"


# --- labels and tables -------------------------------------------------------------------------------

HEADERS = {
    "period_start": "Period starts", "period_end": "Period ends", "label": "Period", "period": "Period",
    "value": "Value", "numerator": "Numerator", "denominator": "Denominator",
    "n": "Records (n)", "target": "Target", "status": "Status",
    "centre": "Centre line", "lower_limit": "Lower process limit", "upper_limit": "Upper process limit",
    "mr": "Moving range", "mr_upper": "Upper range limit", "signal": "Signal", "rules": "Signal rules",
    "prior_value": "Prior period", "change_vs_prior": "Change vs prior period",
    "last_year_value": "Same period last year", "change_vs_last_year": "Change vs last year",
    "score": "KPI score", "dimension_value": "Value of the dimension", "kpi": "KPI",
    "on_track": "On track", "at_risk": "At risk", "off_track": "Off track", "no_data": "Not enough data",
    "no_target": "No target", "metric_id": "KPI id",
}
N_HELP = "Records (n): how many records the period's value is computed from."

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def human_label(text: str | None) -> str:
    """A machine name for people: ``walk_in`` -> ``Walk in``, ``off_track`` -> ``Off track``.

    Only snake_case identifiers change; anything else ("D1", "Phone", "311 app") is kept.
    """
    if text is None or text == "":
        return EM_DASH
    text = str(text)
    if text in HEADERS:
        return HEADERS[text]
    if _IDENTIFIER.match(text) or (text.islower() and text.isalpha()):
        words = text.replace("_", " ")
        return words[0].upper() + words[1:]
    return text


def _cell(value, unit: str | None):
    if _missing(value):
        return EM_DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (date, datetime)):
        return format_day(value)
    if isinstance(value, timedelta):
        return duration_words(value)
    if isinstance(value, (int, float)) and unit:
        return format_value(value, unit)
    if isinstance(value, float):
        return format_value(value, "number")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def display_frame(frame: pl.DataFrame, *, headers: Mapping[str, str] | None = None,
                  units: Mapping[str, str] | None = None, labels: Iterable[str] = (),
                  changes: Mapping[str, tuple[str, str | None]] | None = None) -> pl.DataFrame:
    """A frame ready for people: every cell text, every header in words.

    ``headers`` names columns (others: ``HEADERS`` or the column name in words); ``units``
    formats numeric columns in a metric's unit (others: plain numbers, integers grouped);
    ``labels`` are text columns of machine names to put in words (``walk_in``); ``changes``
    maps a column of changes to ``(unit, direction)`` for ``change_text``. Dates read as
    ``9 Nov 2026``, missing cells as ``—``, booleans as yes/no. List columns (sparklines) pass
    through untouched.
    """
    headers, units, labels, changes = dict(headers or {}), dict(units or {}), set(labels), dict(changes or {})
    columns = {}
    for name in frame.columns:
        series = frame.get_column(name)
        header = headers.get(name) or HEADERS.get(name) or human_label(name)
        if isinstance(series.dtype, (pl.List, pl.Array)):
            columns[header] = series
            continue
        values = series.to_list()
        if name in changes:
            unit, direction = changes[name]
            texts = [change_text(v, unit, direction) for v in values]
        elif name in labels:
            texts = [human_label(v) if isinstance(v, str) or v is None else _cell(v, None) for v in values]
        else:
            texts = [_cell(v, units.get(name)) for v in values]
        columns[header] = pl.Series(header, texts, dtype=pl.String)
    return pl.DataFrame(columns) if columns else pl.DataFrame()


# --- status counts ------------------------------------------------------------------------------------

def status_counts_text(statuses: Iterable[str]) -> str:
    """``3 Off track · 1 At risk · 5 On track`` in one stable order, worded as in the tables."""
    from citystat.core.status import STATUS_LABELS, Status

    order = (Status.OFF_TRACK, Status.AT_RISK, Status.ON_TRACK, Status.NO_TARGET, Status.NO_DATA)
    counts = {s: 0 for s in order}
    for status in statuses:
        counts[Status(status)] += 1
    return " · ".join(f"{counts[s]} {STATUS_LABELS[s]}" for s in order if counts[s])

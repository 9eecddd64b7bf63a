"""Freshness and data-quality checks: pure functions over numbers the engine has computed.

Why: a KPI computed from an extract that stopped refreshing looks fine and is wrong. Each
source declares how often it should refresh (an ISO 8601 duration, e.g. ``P1D``); this
module turns "last data time" into a status and evaluates the checks declared in YAML
against already-computed null rates, ranges, duplicate counts and unexpected values.

Grace rule for freshness (documented on the data-health page):

* ``fresh``   - lag <= 1 x the expected interval
* ``late``    - 1 x < lag <= 2 x the interval (one refresh missed)
* ``stale``   - lag > 2 x the interval (two or more refreshes missed); KPIs using the
                source are marked stale
* ``unknown`` - no data time (empty source) or no expected refresh

Months and years count as 30 and 365 days (freshness is a tolerance, not a calendar).
No DuckDB and no Streamlit here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$")
_UNIT_SECONDS = {"years": 365 * 86400, "months": 30 * 86400, "weeks": 7 * 86400, "days": 86400,
                 "hours": 3600, "minutes": 60, "seconds": 1}


def parse_duration(text: str, *, field: str = "refresh") -> timedelta:
    """Parse an ISO 8601 duration such as ``P1D``, ``P1W``, ``P1M`` or ``PT6H``.

    Strict on purpose (no fractions, no negative, no empty ``P``/``PT``) so a typo in YAML
    is an error that names the field rather than a silently wrong tolerance.

    >>> parse_duration("P1W")
    datetime.timedelta(days=7)
    >>> parse_duration("PT6H")
    datetime.timedelta(seconds=21600)
    """
    if not isinstance(text, str):
        raise ValueError(f"{field}: expected an ISO 8601 duration string like 'P1D', got {text!r}")
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(
            f"{field}: {text!r} is not an ISO 8601 duration; use e.g. P1D (daily), P1W (weekly), "
            "P1M (monthly) or PT6H (every six hours)")
    seconds = sum(int(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)
    if seconds == 0:
        raise ValueError(f"{field}: {text!r} is a zero duration; a refresh interval must be positive")
    return timedelta(seconds=seconds)


def accrual_periodicity(refresh: str) -> str:
    """DCAT-US ``accrualPeriodicity`` for a refresh duration: ``P1W`` -> ``R/P1W``."""
    parse_duration(refresh)
    return f"R/{refresh.strip()}"


# --- freshness ---------------------------------------------------------------------------------

FreshnessStatus = Literal["fresh", "late", "stale", "unknown"]
LATE_AFTER = 1.0   # multiples of the expected interval
STALE_AFTER = 2.0


@dataclass(frozen=True)
class Freshness:
    """How current a source is. `lag` = now - last data time; `allowed` = expected interval."""

    status: FreshnessStatus
    lag: timedelta | None
    allowed: timedelta | None

    @property
    def flagged(self) -> bool:
        """True when the data-health page and KPIs should show a warning."""
        return self.status in ("late", "stale")

    def describe(self) -> str:
        """e.g. "late: newest data 30 hours old, expected at least every 1 day" (weekends not
        counted for sources refreshed daily to every few days)."""
        if self.status == "unknown" or self.lag is None or self.allowed is None:
            return "no data time known"
        return f"{self.status}: newest data {_human(self.lag)} old, expected at least every {_human(self.allowed)}"


def _human(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours < 48:
        n = round(hours)
        return "1 hour" if n == 1 else f"{n} hours" if n != 24 else "1 day"
    days = round(hours / 24)
    return f"{days} days"


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    # a DATE column: the data covers that whole day
    return datetime.combine(value, datetime.max.time())


def staleness(last_data_time: date | datetime | None, expected_refresh: str | timedelta | None,
              now: date | datetime) -> Freshness:
    """Freshness of a source, by the grace rule in the module docstring.

    `now` is passed in (never read from the clock here) so the rule is testable and the
    sample city, whose data ends on a fixed date, can be judged against its own end.
    Timezone-aware and naive datetimes must not be mixed.
    """
    if last_data_time is None or expected_refresh is None:
        allowed = parse_duration(expected_refresh) if isinstance(expected_refresh, str) else expected_refresh
        return Freshness("unknown", None, allowed)
    allowed = (parse_duration(expected_refresh) if isinstance(expected_refresh, str)
               else expected_refresh)
    if allowed <= timedelta(0):
        raise ValueError(f"expected refresh must be positive, not {allowed}")
    last, current = _as_datetime(last_data_time), _as_datetime(now)
    if (last.tzinfo is None) != (current.tzinfo is None):
        raise ValueError("last_data_time and now must both be naive or both timezone-aware")
    lag = max(current - last, timedelta(0))
    if lag <= allowed * LATE_AFTER:
        status: FreshnessStatus = "fresh"
    elif lag <= allowed * STALE_AFTER:
        status = "late"
    else:
        status = "stale"
    return Freshness(status, lag, allowed)


def row_count_change(previous: int | None, current: int) -> dict[str, Any]:
    """Change in row count since the last refresh, for the data-health page.

    A shrinking extract is worth a look (records deleted, or a partial load).
    """
    if previous is None:
        return {"previous": None, "current": current, "change": None, "pct_change": None,
                "shrank": False}
    change = current - previous
    pct = None if previous == 0 else change / previous
    return {"previous": previous, "current": current, "change": change, "pct_change": pct,
            "shrank": change < 0}


# --- quality checks declared in YAML --------------------------------------------------------------

class Range(BaseModel):
    """Plausible values of a column; either end may be open (null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        # accept the registry's short form [min, max] as well as {min: .., max: ..}
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError(f"a range is [min, max], got {list(value)!r}")
            return {"min": value[0], "max": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is above max {self.max}")
        return self


class SourceChecks(BaseModel):
    """Quality checks for one source, as declared in YAML under the source's ``checks:``.

    ``key_columns`` maps a column to the largest acceptable share of nulls (0..1; 0 = never
    null); a plain list means "never null".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_columns: dict[str, float] = Field(default_factory=dict)
    ranges: dict[str, Range] = Field(default_factory=dict)
    unique: list[str] = Field(default_factory=list)
    allowed_values: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("key_columns", mode="before")
    @classmethod
    def _list_means_zero(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: 0.0 for name in value}
        return value

    @field_validator("key_columns")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for name, rate in value.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"key_columns.{name}: max null rate must be between 0 and 1, not {rate}")
        return value

    @classmethod
    def from_registry(cls, checks: Any) -> "SourceChecks":
        """Build from the registry's `QualityChecks` (or any object/dict with these fields)."""
        if checks is None:
            return cls()
        if isinstance(checks, dict):
            return cls.model_validate(checks)
        data = {name: getattr(checks, name) for name in ("key_columns", "ranges", "unique", "allowed_values")
                if hasattr(checks, name)}
        return cls.model_validate(data)

    def columns_needed(self) -> list[str]:
        """Every column a check refers to (to validate against the extract's schema)."""
        names = [*self.key_columns, *self.ranges, *self.unique, *self.allowed_values]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class CheckResult:
    """One check on one column: passed or not, with a message for the data-health page."""

    source: str
    check: Literal["nulls", "range", "unique", "allowed_values", "freshness"]
    column: str | None
    passed: bool
    message: str
    observed: Any = None


def check_nulls(source: str, checks: SourceChecks, null_rates: dict[str, float]) -> list[CheckResult]:
    """Compare each key column's null rate (0..1, computed by the engine) with its limit."""
    results = []
    for column, limit in checks.key_columns.items():
        if column not in null_rates:
            results.append(CheckResult(source, "nulls", column, False,
                                       f"{source}.{column}: null rate was not computed (missing column?)"))
            continue
        rate = null_rates[column]
        if rate is None or (isinstance(rate, float) and math.isnan(rate)):
            results.append(CheckResult(source, "nulls", column, True,
                                       f"{source}.{column}: no rows to check", rate))
            continue
        passed = rate <= limit + 1e-12
        verb = "within" if passed else "above"
        results.append(CheckResult(source, "nulls", column, passed,
                                   f"{source}.{column}: {rate:.2%} empty, {verb} the limit of {limit:.2%}",
                                   rate))
    return results


def check_ranges(source: str, checks: SourceChecks,
                 out_of_range: dict[str, dict[str, Any]]) -> list[CheckResult]:
    """Evaluate range checks from engine numbers.

    `out_of_range[column]` holds ``{"below": n, "above": n, "min": observed_min,
    "max": observed_max}`` computed with the declared bounds.
    """
    results = []
    for column, bounds in checks.ranges.items():
        stats = out_of_range.get(column)
        if stats is None:
            results.append(CheckResult(source, "range", column, False,
                                       f"{source}.{column}: range was not computed (missing column?)"))
            continue
        below, above = int(stats.get("below") or 0), int(stats.get("above") or 0)
        bad = below + above
        span = f"[{'-inf' if bounds.min is None else _num(bounds.min)}, " \
               f"{'+inf' if bounds.max is None else _num(bounds.max)}]"
        if bad == 0:
            message = f"{source}.{column}: all values within {span}"
        else:
            message = (f"{source}.{column}: {bad} value(s) outside {span} ({below} below, {above} above; "
                       f"observed {_num(stats.get('min'))} .. {_num(stats.get('max'))})")
        results.append(CheckResult(source, "range", column, bad == 0, message, bad))
    return results


def check_unique(source: str, checks: SourceChecks, duplicates: dict[str, int]) -> list[CheckResult]:
    """`duplicates[column]` = number of rows whose value of `column` appears more than once."""
    results = []
    for column in checks.unique:
        if column not in duplicates:
            results.append(CheckResult(source, "unique", column, False,
                                       f"{source}.{column}: duplicates were not computed (missing column?)"))
            continue
        n = int(duplicates[column])
        message = (f"{source}.{column}: every value is unique" if n == 0
                   else f"{source}.{column}: {n} row(s) share a value with another row")
        results.append(CheckResult(source, "unique", column, n == 0, message, n))
    return results


def check_allowed_values(source: str, checks: SourceChecks,
                         unexpected: dict[str, dict[Any, int]]) -> list[CheckResult]:
    """`unexpected[column]` = {value not in the allowed list: row count} (empty when clean)."""
    results = []
    for column, allowed in checks.allowed_values.items():
        if column not in unexpected:
            results.append(CheckResult(source, "allowed_values", column, False,
                                       f"{source}.{column}: values were not checked (missing column?)"))
            continue
        found = unexpected[column]
        if not found:
            message = f"{source}.{column}: every value is one of {allowed}"
        else:
            listed = ", ".join(f"{v!r} ({n})" for v, n in sorted(found.items(), key=lambda kv: -kv[1])[:5])
            message = f"{source}.{column}: {sum(found.values())} row(s) with unexpected values: {listed}"
        results.append(CheckResult(source, "allowed_values", column, not found, message, found))
    return results


def check_freshness(source: str, freshness: Freshness) -> CheckResult:
    return CheckResult(source, "freshness", None, not freshness.flagged,
                       f"{source}: {freshness.describe()}", freshness.status)


def _num(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

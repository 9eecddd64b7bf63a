"""Data health: freshness and quality of every source, computed through the engine.

Why: a KPI computed from an extract that stopped refreshing, or that lost a column's values,
looks just as confident as a good one. The data-health page shows, per source, its last data
time, how late it is, the change in row count since the last refresh, and the checks declared
under the source's ``checks:`` in metrics.yaml; pages mark every KPI that reads a stale source.

The rules (grace periods, check semantics) live in `citystat.checks.quality` (pure); this module runs
the SQL. Column names come from the registry and are quoted as identifiers; bounds and allowed
values are bound parameters. Results are cached per data fingerprint, so a page rerun costs
nothing until an extract or the registry changes.

"Now" for freshness: by default the real clock (the current time in the city's time zone), so
an extract job that stopped altogether shows as stale rather than every source reading "fresh"
against its own newest row. A registry of sample or frozen data says so with
``city.sample_data_until``: its clock stops at the end of that day, and pages say once, calmly,
that the data is sample data ending then. ``CITYSTAT_FRESHNESS_CLOCK=data`` (or
``clock="data"``) judges against the *extract cut* instead, the newest data time in any source,
which flags only a source that fell behind the others.

Rows dated after "now" (a typo in a date, a clock set wrong upstream) are counted per source
(`future_rows`), reported on the Data health page and by ``validate``, and left out of the
default "as of" period (`citystat.kpis.frames.data_today`).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import polars as pl

from citystat import config
from citystat.files.local import atomic_write
from citystat.kpis.engine import Engine, QueryError, quote_identifier
from citystat.checks.quality import (CheckResult, Freshness, SourceChecks, check_allowed_values, check_freshness,
                      check_nulls, check_ranges, check_unique, parse_duration, row_count_change,
                      staleness)
from citystat.registry.models import Metric, Source

if TYPE_CHECKING:
    from citystat.api import CityStat

Clock = Literal["data", "wall"]
ROW_COUNTS_FILE = "source_row_counts.json"
_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.Lock()
_FILE_LOCK = threading.Lock()


@dataclass(frozen=True)
class QualityNumbers:
    """What the engine measured for one source's checks (inputs to `citystat.checks.quality`)."""

    rows: int
    null_rates: dict[str, float] = field(default_factory=dict)
    out_of_range: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    unexpected: dict[str, dict[Any, int]] = field(default_factory=dict)
    missing_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceHealth:
    """One line of the data-health page."""

    source_id: str
    title: str
    refresh: str
    time_column: str | None
    last_data_time: datetime | None
    freshness: Freshness
    rows: int | None
    row_change: dict[str, Any]
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]


# --- "now" ---------------------------------------------------------------------------------------

def clock_setting(clock: str | None = None) -> Clock:
    """The freshness clock: the argument, else $CITYSTAT_FRESHNESS_CLOCK, else "wall"."""
    value = (clock or os.environ.get("CITYSTAT_FRESHNESS_CLOCK") or "wall").strip().lower()
    if value not in ("data", "wall"):
        raise ValueError(f"CITYSTAT_FRESHNESS_CLOCK must be 'data' or 'wall', not {value!r}")
    return value  # type: ignore[return-value]


def reference_time(stat: "CityStat", clock: str | None = None) -> datetime | None:
    """The "now" that freshness is judged against (naive local time, like the extracts)."""
    if clock_setting(clock) == "wall":
        until = stat.registry.city.sample_data_until
        if until is not None:  # sample data: its clock stopped at the end of that day
            return datetime.combine(until, time(23, 59, 59))
        return datetime.now(ZoneInfo(stat.registry.city.timezone)).replace(tzinfo=None, microsecond=0)
    last = stat.rollup.extents["last_time"].drop_nulls()
    return None if last.is_empty() else last.max()


# --- freshness -------------------------------------------------------------------------------------

def last_data_times(stat: "CityStat") -> dict[str, datetime]:
    """Newest value of each source's time column (sources without one are absent)."""
    extents = stat.rollup.extents.drop_nulls("last_time")
    return {row["source_id"]: row["last_time"] for row in extents.iter_rows(named=True)}


def weekend_time(start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) falls on Saturdays and Sundays."""
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    day = datetime.combine(start.date(), time.min)
    while day < end:
        if day.weekday() >= 5:
            total += min(end, day + timedelta(days=1)) - max(start, day)
        day += timedelta(days=1)
    return total


def freshness_of(last: datetime | date | None, refresh: str, now: datetime | date | None) -> Freshness:
    """`quality.staleness`, not counting weekends for sources refreshed daily to every few days.

    Permits and inspections have no rows on Saturdays and Sundays; without this a daily source
    would turn stale every Monday morning. Sources refreshed more often than daily (sensors)
    or weekly and less often are judged on the plain clock.
    """
    if last is None or now is None:
        return staleness(None, refresh, datetime.min)
    allowed = parse_duration(refresh)
    if timedelta(days=1) <= allowed < timedelta(days=7):
        start = last if isinstance(last, datetime) else datetime.combine(last, time.max)
        end = now if isinstance(now, datetime) else datetime.combine(now, time.max)
        now = end - weekend_time(start, end)
    return staleness(last, refresh, now)


def source_freshness(stat: "CityStat", now: datetime | date | None = None,
                     clock: str | None = None) -> dict[str, Freshness]:
    """Freshness of every source in the registry (``unknown`` without a time column or data)."""
    now = now if now is not None else reference_time(stat, clock)
    lasts = last_data_times(stat)
    return {source.id: freshness_of(lasts.get(source.id), source.refresh, now)
            for source in stat.registry.sources.values()}


def stale_sources(stat: "CityStat", now: datetime | date | None = None,
                  clock: str | None = None) -> dict[str, Freshness]:
    """Sources two or more refreshes behind (status ``stale``): KPIs reading them get a marker."""
    return {sid: f for sid, f in source_freshness(stat, now, clock).items() if f.status == "stale"}


def stale_sources_of(stat: "CityStat", metric: Metric, stale: dict[str, Freshness]) -> list[str]:
    """The stale sources a metric reads (following derived metrics and SQL files)."""
    return [s for s in stat.registry.sources_of(metric) if s in stale]


def stale_marker(stat: "CityStat", metric: Metric, stale: dict[str, Freshness]) -> str:
    """Short text for a KPI that reads stale data (empty when all its sources are current)."""
    names = stale_sources_of(stat, metric, stale)
    if not names:
        return ""
    titles = [stat.registry.sources[s].title or s for s in names]
    return "Stale data: " + ", ".join(titles)


# --- future-dated rows and the data's end ----------------------------------------------------------

def future_rows(stat: "CityStat", now: datetime | None = None) -> dict[str, tuple[int, datetime]]:
    """Sources with rows dated after ``now`` (default: the freshness clock's now): source id ->
    (how many such rows, the latest of them). Cached per data fingerprint and ``now``'s day."""
    now = now if now is not None else reference_time(stat)
    if now is None:
        return {}
    end = datetime.combine(now.date(), time.max) if isinstance(now, datetime) else datetime.combine(now, time.max)
    key = ("future", stat.engine.fingerprint(), end)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    out = count_future_rows(stat.engine, stat.rollup.extents, end)
    with _CACHE_LOCK:
        _CACHE[key] = out
    return out


def count_future_rows(engine: Engine, extents: pl.DataFrame, end: datetime) -> dict[str, tuple[int, datetime]]:
    """(rows dated after ``end``, the latest of them) for each source whose newest row is after it
    (``extents``: source_id, last_time, as the rollup records them). Used by Data health and validate."""
    registry = engine.registry
    out: dict[str, tuple[int, datetime]] = {}
    for row in extents.drop_nulls("last_time").iter_rows(named=True):
        source_id = row["source_id"]
        source = registry.sources.get(source_id)
        if _naive(row["last_time"]) <= end or source is None or not source.time_column \
                or source_id not in engine.available:
            continue
        column = quote_identifier(source.time_column)
        try:
            found = engine.query(
                f"SELECT count(*)::BIGINT AS n, max({column}) AS latest FROM {quote_identifier(source_id)} "
                f"WHERE CAST({column} AS TIMESTAMP) > $end", {"end": end}, context=f"source {source_id} future rows")
        except QueryError:
            continue
        if found["n"][0]:
            out[source_id] = (int(found["n"][0]), found["latest"][0])
    return out


def _naive(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.combine(value, time.max)


@dataclass(frozen=True)
class DataFreshness:
    """What every page says about the data: when it ends, which sources are late for their
    declared refresh, which have rows dated in the future, and whether it is sample data."""

    now: datetime | None
    data_end: date | None                     # the newest day with data, future rows left out
    late: tuple[tuple[str, str, str, str, datetime | None], ...] = ()  # (id, title, refresh, status, last)
    future: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    sample_until: date | None = None

    def ends_text(self) -> str:
        from citystat.display.format import format_date

        return f"Data to {format_date(self.data_end)}" if self.data_end else "No data yet"

    def late_text(self) -> str:
        """One sentence naming the sources late for their declared refresh (empty when none)."""
        from citystat.display.format import format_date, refresh_words

        if not self.late:
            return ""
        parts = [f"{title} (updated {refresh_words(refresh)}, newest data "
                 f"{format_date(last.date()) if last else 'unknown'})"
                 for _, title, refresh, _, last in self.late]
        verb = "is" if len(parts) == 1 else "are"
        return f"Late: {'; '.join(parts)} {verb} behind the declared refresh, so the latest periods may be missing."

    def future_text(self) -> str:
        from citystat.display.format import format_date

        if not self.future:
            return ""
        parts = [f"{sid}: {n:,} row(s), the latest dated {format_date(latest)}" for sid, (n, latest) in
                 sorted(self.future.items())]
        return ("Rows dated in the future are left out of the default period: " + "; ".join(parts)
                + ". See Data health.")

    def sample_text(self) -> str:
        from citystat.display.format import format_date

        if self.sample_until is None:
            return ""
        return (f"Sample data: this city's data is made up for demonstration and ends on "
                f"{format_date(self.sample_until)}; freshness is judged as of that day.")


def data_freshness(stat: "CityStat", now: datetime | None = None, clock: str | None = None) -> DataFreshness:
    """When the data ends and what is late or future-dated, judged against the freshness clock."""
    now = now if now is not None else reference_time(stat, clock)
    future = future_rows(stat, now)
    from citystat.kpis.frames import data_end_day

    end = data_end_day(stat.registry, stat.rollup)
    lasts = last_data_times(stat)
    late = []
    for source_id, fresh in source_freshness(stat, now).items():
        if fresh.flagged:
            source = stat.registry.sources[source_id]
            late.append((source_id, source.title or source_id, source.refresh, fresh.status,
                         lasts.get(source_id)))
    return DataFreshness(now=now, data_end=end, late=tuple(late), future=future,
                         sample_until=stat.registry.city.sample_data_until)


# --- quality through the engine -------------------------------------------------------------------

def _column_names(engine: Engine, source_id: str) -> set[str]:
    return set(engine.columns(source_id)["column_name"].to_list())


def _value_text(value: Any) -> str:
    """How DuckDB writes a value cast to VARCHAR, so allowed values compare as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def measure_quality(engine: Engine, source: Source) -> QualityNumbers:
    """Row count, null rates, out-of-range counts, duplicates and unexpected values of a source.

    One scan for counts, nulls and ranges; one grouped query per unique / allowed-values check.
    """
    checks = SourceChecks.from_registry(source.checks)
    table = quote_identifier(source.id)
    present = _column_names(engine, source.id)
    missing = tuple(c for c in checks.columns_needed() if c not in present)

    selects = ["count(*)::BIGINT AS n_rows"]
    params: dict[str, Any] = {}
    null_columns = [c for c in checks.key_columns if c in present]
    for i, name in enumerate(null_columns):
        selects.append(f"avg(CASE WHEN {quote_identifier(name)} IS NULL THEN 1.0 ELSE 0.0 END) AS null_{i}")
    range_columns = [(c, r) for c, r in checks.ranges.items() if c in present]
    for i, (name, bounds) in enumerate(range_columns):
        col = quote_identifier(name)
        if bounds.min is not None:
            params[f"min_{i}"] = bounds.min
            selects.append(f"count(*) FILTER (WHERE {col} < $min_{i})::BIGINT AS below_{i}")
        if bounds.max is not None:
            params[f"max_{i}"] = bounds.max
            selects.append(f"count(*) FILTER (WHERE {col} > $max_{i})::BIGINT AS above_{i}")
        selects.append(f"min({col}) AS lo_{i}")
        selects.append(f"max({col}) AS hi_{i}")
    context = f"source {source.id} quality checks"
    row = engine.query(f"SELECT {', '.join(selects)} FROM {table}", params, context=context).row(0, named=True)

    null_rates = {name: row[f"null_{i}"] for i, name in enumerate(null_columns)}
    out_of_range = {name: {"below": row.get(f"below_{i}") or 0, "above": row.get(f"above_{i}") or 0,
                           "min": row[f"lo_{i}"], "max": row[f"hi_{i}"]}
                    for i, (name, _) in enumerate(range_columns)}
    duplicates = {}
    for name in checks.unique:
        if name not in present:
            continue
        col = quote_identifier(name)
        found = engine.query(
            f"SELECT coalesce(sum(n), 0)::BIGINT AS rows FROM (SELECT count(*) AS n FROM {table} "
            f"WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1)", context=context)
        duplicates[name] = int(found["rows"][0])
    unexpected = {}
    for name, allowed in checks.allowed_values.items():
        if name not in present:
            continue
        col = quote_identifier(name)
        found = engine.query(
            f"SELECT CAST({col} AS VARCHAR) AS value, count(*)::BIGINT AS n FROM {table} "
            f"WHERE {col} IS NOT NULL AND NOT list_contains($allowed, CAST({col} AS VARCHAR)) "
            f"GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
            {"allowed": [_value_text(v) for v in allowed]}, context=context)
        unexpected[name] = dict(zip(found["value"].to_list(), found["n"].to_list()))
    return QualityNumbers(int(row["n_rows"]), null_rates, out_of_range, duplicates, unexpected, missing)


def quality_results(source: Source, numbers: QualityNumbers) -> list[CheckResult]:
    """The declared checks judged on the measured numbers."""
    checks = SourceChecks.from_registry(source.checks)
    results = (check_nulls(source.id, checks, numbers.null_rates)
               + check_ranges(source.id, checks, numbers.out_of_range)
               + check_unique(source.id, checks, numbers.duplicates)
               + check_allowed_values(source.id, checks, numbers.unexpected))
    if numbers.missing_columns:
        # make "missing column" explicit instead of the generic "was not computed"
        missing = set(numbers.missing_columns)
        results = [CheckResult(r.source, r.check, r.column, False,
                               f"{source.id}.{r.column}: no such column in the data", r.observed)
                   if r.column in missing else r for r in results]
    return results


# --- row counts since the last refresh ------------------------------------------------------------

def source_fingerprint(engine: Engine, source_id: str) -> str:
    """Changes when the source's own files change (SQL-defined sources: when any extract does)."""
    return engine.source_fingerprint(source_id)


def remember_row_counts(counts: dict[str, tuple[str, int]], folder: Path | None = None) -> dict[str, int | None]:
    """Record this refresh's row counts; returns each source's count at the *previous* refresh.

    `counts` maps source id -> (source fingerprint, rows). The file keeps, per source, the
    fingerprint and rows last seen and the rows of the refresh before; a new fingerprint
    shifts "last" into "previous". Seeing the same fingerprint again changes nothing, so
    reruns and several processes agree.
    """
    path = (folder or config.cache_dir()) / ROW_COUNTS_FILE
    with _FILE_LOCK:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                state = {}
        except (OSError, ValueError):
            state = {}
        previous: dict[str, int | None] = {}
        changed = False
        for source_id, (fingerprint, rows) in counts.items():
            entry = state.get(source_id)
            if not isinstance(entry, dict):
                state[source_id] = {"fingerprint": fingerprint, "rows": rows, "previous_rows": None}
                previous[source_id] = None
                changed = True
            elif entry.get("fingerprint") == fingerprint:
                previous[source_id] = entry.get("previous_rows")
            else:
                previous[source_id] = entry.get("rows")
                state[source_id] = {"fingerprint": fingerprint, "rows": rows, "previous_rows": entry.get("rows")}
                changed = True
        if changed:
            atomic_write(path, json.dumps(state, indent=1, sort_keys=True))
    return previous


# --- the report ------------------------------------------------------------------------------------

def health_report(stat: "CityStat", now: datetime | date | None = None,
                  clock: str | None = None) -> list[SourceHealth]:
    """Freshness, row-count change and check results for every source (cached per fingerprint)."""
    engine = stat.engine
    now = now if now is not None else reference_time(stat, clock)
    key = ("report", engine.fingerprint(), str(config.cache_dir()), now)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    freshness = source_freshness(stat, now)
    lasts = last_data_times(stat)
    measured: dict[str, QualityNumbers | str] = {}
    for source in stat.registry.sources.values():
        if source.id not in engine.available:
            measured[source.id] = "source is unavailable (see the problems above)"
            continue
        try:
            measured[source.id] = measure_quality(engine, source)
        except QueryError as exc:
            measured[source.id] = exc.message
    previous = remember_row_counts({sid: (source_fingerprint(engine, sid), numbers.rows)
                                    for sid, numbers in measured.items() if isinstance(numbers, QualityNumbers)})
    report = []
    for source in stat.registry.sources.values():
        numbers = measured[source.id]
        fresh = freshness[source.id]
        checks = [check_freshness(source.id, fresh)]
        if isinstance(numbers, QualityNumbers):
            checks += quality_results(source, numbers)
            rows, change, error = numbers.rows, row_count_change(previous.get(source.id), numbers.rows), None
        else:
            rows, change, error = None, {}, numbers
        report.append(SourceHealth(source.id, source.title or source.id, source.refresh, source.time_column,
                                   lasts.get(source.id), fresh, rows, change, tuple(checks), error))
    with _CACHE_LOCK:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = report
    return report


def health_table(report: list[SourceHealth], future: dict[str, tuple[int, datetime]] | None = None) -> pl.DataFrame:
    """The data-health page's summary table (one row per source, text ready to show)."""
    from citystat.display.format import format_date, refresh_words

    future = future or {}
    icons = {"fresh": "fresh", "late": "late", "stale": "STALE", "unknown": "unknown"}
    rows = []
    for item in report:
        change = item.row_change or {}
        if change.get("change") is None:
            change_text = "first refresh seen" if item.rows is not None else ""
        else:
            pct = change.get("pct_change")
            change_text = f"{change['change']:+,}" + (f" ({pct:+.1%})" if pct is not None else "")
            if change.get("shrank"):
                change_text += " (shrank)"
        failed = item.failed_checks
        rows.append({
            "source": item.title,
            "source_id": item.source_id,
            "freshness": icons[item.freshness.status],
            "last_data": format_date(item.last_data_time) if item.last_data_time else "—",
            "expected_refresh": refresh_words(item.refresh),
            "lag": item.freshness.describe(),
            "rows": item.rows,
            "change_since_last_refresh": change_text,
            "checks": ("Error: " + item.error) if item.error else
                      (f"{len(failed)} of {len(item.checks)} failed" if failed else f"all {len(item.checks)} passed"),
            "future_rows": (f"{future[item.source_id][0]:,} (latest {format_date(future[item.source_id][1])})"
                            if item.source_id in future else "none"),
        })
    return pl.DataFrame(rows, schema_overrides={"rows": pl.Int64})

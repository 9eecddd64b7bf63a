"""Running the rollup's SQL (`sql.py`) through the engine, and shaping the results.

Each (source, time column) is one group: its decomposable metrics share ONE daily scan
(`scan_decomposable`), each holistic metric gets its own filtered scan (whose rows are kept
for the next refresh, `holistic_rows`), a failing scan is
retried metric by metric so one broken metric does not take its neighbours down. SQL-file
metrics run once per grain; derived metrics are evaluated from the totals of the others.

Output columns (see docs/ARCHITECTURE.md): metric_id, grain, period_start, dimension,
dimension_value, value, numerator, denominator, n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import groupby
from typing import Callable

import polars as pl

from citystat.core.periods import GRAINS
from citystat.kpis import sql as builders
from citystat.kpis.engine import Engine, QueryError
from citystat.registry.loader import Problem, Registry, derived_references
from citystat.registry.models import Metric

ROLLUP_SCHEMA = {
    "metric_id": pl.Utf8,
    "grain": pl.Utf8,
    "period_start": pl.Date,
    "dimension": pl.Utf8,
    "dimension_value": pl.Utf8,
    "value": pl.Float64,
    "numerator": pl.Float64,
    "denominator": pl.Float64,
    "n": pl.Float64,
}
EXTENTS_SCHEMA = {"source_id": pl.Utf8, "first_time": pl.Datetime("us"), "last_time": pl.Datetime("us"),
                  "rows": pl.Int64}

# Called with the source id after each source's scans: lets fault-injection tests change an
# extract at a known point of a refresh (tests/test_refresh_faults.py). Empty in production.
SCAN_HOOKS: list[Callable[[str], None]] = []


def empty_rollup() -> pl.DataFrame:
    return pl.DataFrame(schema=ROLLUP_SCHEMA)


def not_recorded_label(registry: Registry) -> str:
    """The label of rows whose dimension value is empty (`city.not_recorded_label`)."""
    return registry.city.not_recorded_label


def problem(registry: Registry, metric_id: str, message: str) -> Problem:
    return Problem(str(registry.path), registry.line_of("metric", metric_id), f"metric {metric_id}", message)


def daily_key(source_id: str, time_column: str) -> str:
    """The name under which a rollup keeps the daily partials of one (source, time column) scan."""
    return f"{source_id}|{time_column}"


def group_key(registry: Registry, metric: Metric) -> tuple[str, str]:
    """(source, time column): metrics sharing it are computed by the same scans."""
    return (metric.source, metric.time_column or registry.sources[metric.source].time_column)


def groups(registry: Registry, metrics: list[Metric]):
    """(source, time column), [metrics] for every group of declared metrics, in a stable order."""
    ordered = sorted(metrics, key=lambda m: group_key(registry, m))
    for key, group in groupby(ordered, key=lambda m: group_key(registry, m)):
        yield key, list(group)


def sort_days(days: pl.DataFrame) -> pl.DataFrame:
    """Daily partials in one canonical row order (day, grouping flags, dimension values).

    Stage 2 then adds the partials in the same order whether they came from one full scan or
    from stored days plus newly scanned ones, so both give bit-identical float sums.
    """
    keys = ["__day"] + [c for c in days.columns if c.startswith("g__")] + [c for c in days.columns
                                                                          if c.startswith("d__")]
    return days.sort(keys, nulls_last=True)


def query_over_frame(engine: Engine, sql: str, name: str, frame: pl.DataFrame, context: str) -> pl.DataFrame:
    """Run `sql` on the engine's connection with `frame` visible as table `name` (its own cursor).

    `Engine.query` has no way to pass a frame in; a cursor of the same connection shares the
    engine's settings (threads, memory limit, sandbox) and the registration dies with it.
    """
    import duckdb

    cursor = engine.con.cursor()
    try:
        cursor.register(name, frame.to_arrow())
        return cursor.sql(sql).pl()
    except duckdb.Error as exc:
        raise QueryError(context, str(exc).strip().splitlines()[0]) from None
    finally:
        cursor.close()


def scan_decomposable(engine: Engine, source_id: str, time_column: str, metrics: list[Metric],
                      grains: tuple[str, ...] = GRAINS, stored: pl.DataFrame | None = None,
                      new_from: date | None = None, roll_from: date | None = None
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(long rollup rows, daily partials) of decomposable metrics sharing a source and time column.

    With `stored` (the daily partials a previous refresh kept) and `new_from` (the first day of
    newly appended rows), only rows with time >= `new_from` are scanned; stored days before it
    are reused as they are (no new row falls on them). With `roll_from` (a period start), only
    the periods starting on or after it are rolled up from the days (the caller keeps the rest).
    """
    registry = engine.registry
    since = new_from if stored is not None else None
    sql, params = builders.daily_partials_sql(source_id, time_column, metrics, since, not_recorded_label(registry))
    days = engine.query(sql, params, context=f"source {source_id}")
    if stored is not None:
        days = pl.concat([stored.filter(pl.col("__day") < new_from), days], how="vertical_relaxed")
    days = sort_days(days)
    rolled_days = days if roll_from is None else days.filter(pl.col("__day") >= roll_from)
    rolled = query_over_frame(
        engine, builders.rollup_days_sql(registry.city.fiscal_year_start_month, time_column, metrics, "days", grains),
        "days", rolled_days, context=f"source {source_id}")
    return reshape_scan(rolled, metrics, grains), days


def reshape_scan(scan: pl.DataFrame, metrics: list[Metric], grains: tuple[str, ...] = GRAINS) -> pl.DataFrame:
    """Wide scan result -> long rollup rows, keeping only the dimensions (and the breakdown
    grains) each metric declares."""
    dimensions = sorted({d for m in metrics for d in m.dimensions})
    if dimensions:
        dimension_expr = pl.lit("")
        value_expr = pl.lit(None, dtype=pl.Utf8)
        for d in dimensions:
            grouped = pl.col(f"g__{d}") == 0
            dimension_expr = pl.when(grouped).then(pl.lit(d)).otherwise(dimension_expr)
            value_expr = pl.when(grouped).then(pl.col(f"d__{d}")).otherwise(value_expr)
        scan = scan.with_columns(dimension=dimension_expr, dimension_value=value_expr)
    else:
        scan = scan.with_columns(dimension=pl.lit(""), dimension_value=pl.lit(None, dtype=pl.Utf8))
    parts = []
    for i, metric in enumerate(metrics):
        keep = scan.filter((pl.col("dimension") == "")
                           | (pl.col("dimension").is_in(metric.dimensions)
                              & pl.col("grain").is_in(builders.breakdown_grains([metric], grains))))
        if metric.measure is not None:
            part = keep.select(
                pl.lit(metric.id).alias("metric_id"), "grain", "period_start", "dimension", "dimension_value",
                pl.col(f"m{i}_v").alias("value"),
                pl.lit(None, dtype=pl.Float64).alias("numerator"),
                pl.lit(None, dtype=pl.Float64).alias("denominator"),
                pl.col(f"m{i}_n").alias("n"))
        else:
            numerator, denominator = pl.col(f"m{i}_v"), pl.col(f"m{i}_d")
            part = keep.select(
                pl.lit(metric.id).alias("metric_id"), "grain", "period_start", "dimension", "dimension_value",
                pl.when(denominator > 0).then(numerator / denominator).otherwise(None).alias("value"),
                numerator.alias("numerator"), denominator.alias("denominator"),
                denominator.alias("n"))
        parts.append(part)
    return pl.concat(parts).cast(ROLLUP_SCHEMA) if parts else empty_rollup()


@dataclass
class GroupResult:
    frames: list[pl.DataFrame]
    problems: list[Problem]
    days: pl.DataFrame | None  # daily partials of the group's decomposable metrics (None: not kept)
    # metric id -> the rows of each holistic metric (`holistic_rows_sql`), kept for the next refresh
    rows: dict[str, pl.DataFrame] = field(default_factory=dict)


def rows_key(metric_id: str) -> str:
    """The name under which a rollup keeps a holistic metric's rows."""
    return f"metric|{metric_id}"


# The most memory a rollup spends on kept holistic rows, as `rows_bytes` counts it (the sample
# registry's one median on 311 requests: ~33 MB at 10 M rows, ~170 MB at 50 M; 16 such KPIs
# at 50 M would need ~2.7 GB). Rows past it are not kept: that metric's next incremental
# refresh reads its rows again.
KEPT_ROWS_BYTES = 256 * 2**20


def rows_bytes(frame: pl.DataFrame) -> int:
    """What holding `frame` costs, on the safe side: 16 bytes a value. Polars' own estimate
    leaves out most of a text column (measured: 9 MB estimated for 0.7 M rows of the graffiti
    median that take 20-25 MB)."""
    return max(frame.estimated_size(), 16 * frame.height * frame.width)


def keep_rows(daily: dict, rows: dict[str, pl.DataFrame]) -> None:
    """Put holistic metrics' rows into a rollup's `daily` while they fit in `KEPT_ROWS_BYTES`."""
    used = sum(rows_bytes(frame) for key, frame in daily.items()
               if key.startswith("metric|") and isinstance(frame, pl.DataFrame))
    for metric_id, frame in rows.items():
        size = rows_bytes(frame)
        if used + size <= KEPT_ROWS_BYTES:
            daily[rows_key(metric_id)] = frame
            used += size


def holistic_rows(engine: Engine, source_id: str, time_column: str, metric: Metric,
                  stored: pl.DataFrame | None = None, new_from: date | None = None) -> pl.DataFrame:
    """A holistic metric's rows; with `stored` (the rows a previous refresh kept) and `new_from`,
    only rows with time >= `new_from` are read and the stored rows before that day are reused."""
    since = new_from if stored is not None else None
    sql, params = builders.holistic_rows_sql(source_id, time_column, metric, since,
                                             not_recorded_label(engine.registry))
    rows = engine.query(sql, params, context=f"metric {metric.id}")
    if stored is not None:
        rows = pl.concat([stored.filter(pl.col("__day") < new_from), rows], how="vertical_relaxed")
    return rows


def compute_group(engine: Engine, source_id: str, time_column: str, group: list[Metric], grains=GRAINS, *,
                  holistic_since: date | None = None, stored: pl.DataFrame | None = None,
                  new_from: date | None = None, stored_rows: dict[str, pl.DataFrame | None] | None = None
                  ) -> GroupResult:
    """All declared metrics of one (source, time column): one daily scan for the decomposable
    ones, one filtered scan per holistic one; on failure, metric by metric.

    Incremental use: `stored` + `new_from` (see `scan_decomposable`); `stored_rows`, the kept
    rows of each holistic metric, to which only rows from `new_from` on are added (a metric
    without kept rows reads all its rows again); and `holistic_since`, the earliest period start
    any new row falls in: periods are aggregated from it on (the caller keeps the older ones).
    """
    registry = engine.registry
    if source_id not in engine.available:
        return GroupResult([], [problem(registry, m.id, f"source {source_id!r} is unavailable") for m in group],
                           None)
    result = GroupResult([], [], None)
    shared = [m for m in group if builders.is_decomposable(m)]
    holistic = [m for m in group if not builders.is_decomposable(m)]
    if shared:
        try:
            rows, result.days = scan_decomposable(engine, source_id, time_column, shared, grains, stored, new_from,
                                                  holistic_since)
            result.frames.append(rows)
        except QueryError:
            holistic = shared + holistic  # isolate the broken metric(s); keep the healthy ones
    for metric in holistic:
        try:
            if builders.is_decomposable(metric):
                rows, _ = scan_decomposable(engine, source_id, time_column, [metric], grains)
                result.frames.append(rows)
                continue
            fy = registry.city.fiscal_year_start_month
            if not engine.appendable(source_id):
                # nothing to keep (an append cannot come): rows and aggregates in one statement,
                # whose rows stream into every aggregate without being collected
                sql, params = builders.holistic_scan_sql(fy, source_id, time_column, metric, grains, holistic_since,
                                                         not_recorded_label(registry))
                result.frames.append(reshape_scan(engine.query(sql, params, context=f"metric {metric.id}"),
                                                  [metric], grains))
                continue
            # kept for the next refresh (~30 bytes a row; see `keep_rows`), which then reads only the new days
            kept = (stored_rows or {}).get(metric.id)
            rows = holistic_rows(engine, source_id, time_column, metric, kept, new_from)
            result.rows[metric.id] = rows
            if holistic_since is not None:
                rows = rows.filter(pl.col("__day") >= holistic_since)
            aggregates = query_over_frame(engine, builders.holistic_rollup_sql(fy, metric, "metric_rows", grains),
                                          "metric_rows", rows, context=f"metric {metric.id}")
            result.frames.append(reshape_scan(aggregates, [metric], grains))
        except QueryError as exc:
            result.problems.append(problem(registry, metric.id, exc.message))
    return result


def after_scan(name: str) -> None:
    """Run the fault-injection hooks (`SCAN_HOOKS`) for a finished scan: a source id, or
    "metric <id>" for a SQL-file metric. The refresh calls it in its fixed order of scans."""
    for hook in SCAN_HOOKS:
        hook(name)


def compute_declared(engine: Engine, metrics: list[Metric], grains=GRAINS, daily: dict | None = None
                     ) -> tuple[list[pl.DataFrame], list[Problem]]:
    """Every group of `metrics` in full, one after the other; the daily partials of each group
    and the rows of each holistic metric go into `daily` if given."""
    frames, problems = [], []
    for (source_id, time_column), group in groups(engine.registry, metrics):
        result = compute_group(engine, source_id, time_column, group, grains)
        if source_id in engine.available:
            after_scan(source_id)
        frames += result.frames
        problems += result.problems
        if daily is not None:
            if result.days is not None:
                daily[daily_key(source_id, time_column)] = result.days
            keep_rows(daily, result.rows)
    return frames, problems


SQL_METRIC_COLUMNS = ("period_start", "value")


SQL_METRIC_START, SQL_METRIC_END = date(1900, 1, 1), date(2999, 12, 31)  # $start, $end: every period


def compute_sql_metric(engine: Engine, metric: Metric, grains=GRAINS) -> pl.DataFrame:
    """A SQL-file metric at every grain: its query once per grain (`$grain` bound)."""
    text = engine.registry.sql_text(metric.sql)
    parts = [sql_metric_grain(engine, metric, text, grain) for grain in grains]
    return pl.concat(parts).cast(ROLLUP_SCHEMA)


def sql_metric_grain(engine: Engine, metric: Metric, text: str, grain: str) -> pl.DataFrame:
    """One grain of a SQL-file metric (its text `text`), as rollup rows."""
    query, params = builders.sql_metric_query(text, grain, SQL_METRIC_START, SQL_METRIC_END,
                                              engine.registry.city.fiscal_year_start_month)
    result = engine.query(query, params, context=f"metric {metric.id} ({metric.sql}, grain {grain})", analyst=True)
    missing = [c for c in SQL_METRIC_COLUMNS if c not in result.columns]
    if missing:
        raise QueryError(f"metric {metric.id}", f"{metric.sql} must return columns {', '.join(SQL_METRIC_COLUMNS)}; "
                         f"missing {', '.join(missing)}")
    for optional in ("numerator", "denominator"):
        if optional not in result.columns:
            result = result.with_columns(pl.lit(None, dtype=pl.Float64).alias(optional))
    return result.select(
        pl.lit(metric.id).alias("metric_id"), pl.lit(grain).alias("grain"),
        pl.col("period_start").cast(pl.Date), pl.lit("").alias("dimension"),
        pl.lit(None, dtype=pl.Utf8).alias("dimension_value"),
        pl.col("value").cast(pl.Float64), pl.col("numerator").cast(pl.Float64),
        pl.col("denominator").cast(pl.Float64),
        pl.coalesce(pl.col("denominator").cast(pl.Float64), pl.lit(None, dtype=pl.Float64)).alias("n"))


def compute_derived(registry: Registry, totals: pl.DataFrame, metric: Metric) -> pl.DataFrame:
    """Evaluate a derived metric per (grain, period) from its components' totals."""
    refs = list(dict.fromkeys(derived_references(metric.derived)))
    wide = (totals.filter(pl.col("metric_id").is_in(refs) & (pl.col("dimension") == ""))
            .pivot(on="metric_id", index=["grain", "period_start"], values="value"))
    missing = [r for r in refs if r not in wide.columns]
    if missing:
        raise QueryError(f"metric {metric.id}", f"components without data: {', '.join(missing)}")
    # The loader checked the expression holds only metric ids, numbers and + - * / ( ).
    value = pl.sql_expr(metric.derived)
    return wide.select(
        pl.lit(metric.id).alias("metric_id"), "grain", "period_start", pl.lit("").alias("dimension"),
        pl.lit(None, dtype=pl.Utf8).alias("dimension_value"), value.cast(pl.Float64).alias("value"),
        pl.lit(None, dtype=pl.Float64).alias("numerator"), pl.lit(None, dtype=pl.Float64).alias("denominator"),
        pl.lit(None, dtype=pl.Float64).alias("n"),
    ).with_columns(value=pl.when(pl.col("value").is_finite()).then(pl.col("value")).otherwise(None)).cast(ROLLUP_SCHEMA)


def source_extents(engine: Engine, only: set[str] | None = None) -> pl.DataFrame:
    """source_id, first_time, last_time, rows of every available source with a time column."""
    rows = []
    for source_id in sorted(engine.available if only is None else engine.available & only):
        source = engine.registry.sources[source_id]
        if source.time_column is None:
            continue
        try:
            result = engine.query(builders.source_extents_sql(source_id, source.time_column),
                                  context=f"source {source_id}")
            rows.append(result.with_columns(pl.lit(source_id).alias("source_id")))
        except QueryError as exc:
            engine.problems.append(Problem(str(engine.registry.path), engine.registry.line_of("source", source_id),
                                           f"source {source_id}", f"time column {source.time_column!r}: {exc.message}"))
    if not rows:
        return pl.DataFrame(schema=EXTENTS_SCHEMA)
    return pl.concat(rows).select(list(EXTENTS_SCHEMA)).cast(EXTENTS_SCHEMA)

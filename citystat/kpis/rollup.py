"""Compute every metric at every grain (and its dimension breakdowns) as one long frame.

Declared metrics that share a source and time column are computed in ONE scan when their
aggregates are decomposable (count, sum, min, max, avg): the scan groups the rows by day and
by (day, dimension) with `FILTER`ed partial aggregates, and the days are rolled up to weeks,
months, quarters and fiscal years in the same statement over that small daily table (far
cheaper than `GROUPING SETS` over every grain on the raw rows). Holistic aggregates (median,
percentile, count_distinct) cannot be rolled up from days, so each such metric gets its own
scan with its filter pushed down and `GROUPING SETS` over its own grains and dimensions.
SQL-file metrics run once per grain with bound `$grain`, `$start`, `$end`. Derived metrics
are evaluated last, from the totals of the metrics they use.

`refresh_rollup(engine, previous)` reuses a previous rollup when the only change in the
data is new files in path sources (appended partitions): it recomputes only the periods the
new rows fall in and keeps everything else (see docs/PERFORMANCE.md, "Incremental refresh").

Output columns (see docs/ARCHITECTURE.md): metric_id, grain, period_start, dimension,
dimension_value, value, numerator, denominator, n.
"""

from __future__ import annotations

import glob as globlib
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby
from pathlib import Path

import polars as pl

from citystat.kpis.engine import Engine, QueryError, period_sql, quote_identifier, quote_literal
from citystat.registry.loader import Problem, Registry, derived_order, derived_references
from citystat.registry.models import Aggregation, Measure, Metric
from citystat.core.periods import GRAINS

DIMENSION_GRAINS = ("week", "month", "quarter", "fiscal_year")

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


@dataclass
class Rollup:
    """All KPI aggregates for one registry + data fingerprint."""

    frame: pl.DataFrame
    extents: pl.DataFrame  # source_id, first_time, last_time, rows
    problems: list[Problem] = field(default_factory=list)
    fingerprint: str = ""
    # source_id -> [[file, size, mtime_ns], ...] of the files this rollup was computed from;
    # lets the next refresh tell "new partitions only" (incremental) from "rewritten" (full).
    manifest: dict[str, list[list]] = field(default_factory=dict)
    registry_fingerprint: str = ""
    how: str = "full"  # full | incremental | unchanged: how this rollup was made (for benchmarks, logs)
    # daily_key(source, time column) -> the daily partials (day x dimension rows of the
    # decomposable metrics) of that scan, or the Parquet file holding them (read when needed):
    # lets an append be folded in by scanning only the new days.
    daily: dict[str, pl.DataFrame | Path] = field(default_factory=dict, repr=False, compare=False)
    _index: dict | None = field(default=None, repr=False, compare=False)

    def daily_partials(self, key: str) -> pl.DataFrame | None:
        """The kept daily partials of one scan, or None (not kept, or the file is gone)."""
        found = self.daily.get(key)
        if isinstance(found, Path):
            try:
                found = self.daily[key] = pl.read_parquet(found)
            except (OSError, pl.exceptions.PolarsError):
                return None
        return found

    def series(self, metric_id: str, grain: str, dimension: str = "") -> pl.DataFrame:
        """One metric's rows at one grain and dimension, sorted; O(1) after the first call.

        Pages ask for dozens of series per render; filtering the whole long frame each time
        would cost a scan of every row per KPI, so the frame is split once into a dict.
        """
        if self._index is None:
            sorted_frame = self.frame.sort("metric_id", "grain", "dimension", "period_start", "dimension_value")
            self._index = sorted_frame.partition_by(["metric_id", "grain", "dimension"], as_dict=True,
                                                    maintain_order=True)
        found = self._index.get((metric_id, grain, dimension))
        return found if found is not None else self.frame.clear()

    def last_data_day(self, source_ids: list[str] | None = None) -> date | None:
        extents = self.extents
        if source_ids is not None:
            extents = extents.filter(pl.col("source_id").is_in(source_ids))
        values = extents["last_time"].drop_nulls()
        if values.is_empty():
            return None
        last = values.max()
        return last.date() if hasattr(last, "date") else last

    def failed_metrics(self) -> set[str]:
        return {p.entry.removeprefix("metric ") for p in self.problems if p.entry and p.entry.startswith("metric ")}


def aggregate_sql(measure: Measure, condition: str | None) -> str:
    """One aggregate with its FILTER; expressions come from the registry, never from users."""
    expr = f"({measure.expr})" if measure.expr else None
    match measure.agg:
        case Aggregation.COUNT:
            sql = f"count({expr})" if expr else "count(*)"
        case Aggregation.COUNT_DISTINCT:
            sql = f"count(DISTINCT {expr})"
        case Aggregation.PERCENTILE:
            sql = f"quantile_cont({expr}, {float(measure.p)})"
        case Aggregation.AVG:
            sql = f"avg({expr})"
        case _:
            sql = f"{measure.agg.value}({expr})"
    conditions = [c for c in (condition, measure.filter) if c]
    if conditions:
        sql += " FILTER (WHERE " + " AND ".join(f"({c})" for c in conditions) + ")"
    return f"CAST({sql} AS DOUBLE)"


def _metric_columns(index: int, metric: Metric) -> list[str]:
    columns = []
    if metric.measure is not None:
        columns.append(f"{aggregate_sql(metric.measure, metric.filter)} AS m{index}_v")
        columns.append(f"{aggregate_sql(Measure(agg=Aggregation.COUNT), metric.filter)} AS m{index}_n")
    else:
        columns.append(f"{aggregate_sql(metric.numerator, metric.filter)} AS m{index}_v")
        columns.append(f"{aggregate_sql(metric.denominator, metric.filter)} AS m{index}_d")
    return columns


def source_scan_sql(registry: Registry, source_id: str, time_column: str, metrics: list[Metric],
                    grains: tuple[str, ...] = GRAINS, since: date | None = None,
                    prefilter: bool = False) -> tuple[str, dict]:
    """GROUPING SETS over every grain and dimension on the raw rows (used for holistic metrics).

    With `prefilter` (one metric), the metric's filter is also pushed into the WHERE clause so
    only its rows are read into the aggregate: a period then has a row only if it has data
    for this metric.
    """
    fy = registry.city.fiscal_year_start_month
    time_expr = quote_identifier(time_column)
    period_columns = [f"{period_sql(time_expr, g, fy)} AS __p_{g}" for g in grains]
    dimensions = sorted({d for m in metrics for d in m.dimensions})
    sets = [f"(__p_{g})" for g in grains]
    sets += [f"(__p_{g}, {quote_identifier(d)})" for g in grains if g in DIMENSION_GRAINS for d in dimensions]
    grain_case = "CASE " + " ".join(f"WHEN GROUPING(__p_{g}) = 0 THEN '{g}'" for g in grains) + " END"
    period_coalesce = "coalesce(" + ", ".join(f"__p_{g}" for g in grains) + ")" if len(grains) > 1 else f"__p_{grains[0]}"
    dim_columns = [f"CAST({quote_identifier(d)} AS VARCHAR) AS {quote_identifier('d__' + d)}" for d in dimensions]
    dim_grouping = [f"GROUPING({quote_identifier(d)}) AS {quote_identifier('g__' + d)}" for d in dimensions]
    measures = [c for i, m in enumerate(metrics) for c in _metric_columns(i, m)]
    where = f"WHERE {time_expr} IS NOT NULL"
    if prefilter and len(metrics) == 1 and metrics[0].filter:
        where += f" AND ({metrics[0].filter})"
    params: dict = {}
    if since is not None:
        where += f" AND {time_expr} >= $since"
        params["since"] = since
    sql = (
        f"SELECT {grain_case} AS grain, {period_coalesce} AS period_start, "
        + ", ".join(dim_columns + dim_grouping + measures)
        + f" FROM (SELECT *, {', '.join(period_columns)} FROM {quote_identifier(source_id)} {where}) AS rows"
        + f" GROUP BY GROUPING SETS ({', '.join(sets)})"
    )
    return sql, params


def holistic_scan_sql(registry: Registry, source_id: str, time_column: str, metric: Metric,
                      grains: tuple[str, ...] = GRAINS, since: date | None = None) -> tuple[str, dict]:
    """One holistic metric (median, percentile, count_distinct): its filtered rows once, then one
    aggregate per grain and dimension; same output shape as `source_scan_sql(..., prefilter=True)`.

    The metric's filter is pushed into the scan, the filtered rows (period starts, dimensions,
    the measure's inputs) are materialized, and each grain/dimension groups that small table:
    ~20-40 % faster than `GROUPING SETS` on the raw rows, where DuckDB collects every
    holistic value list once per grouping set while reading.
    """
    fy = registry.city.fiscal_year_start_month
    time_expr = quote_identifier(time_column)
    dimensions = sorted(metric.dimensions)
    period_columns = [f"{period_sql(time_expr, g, fy)} AS __p_{g}" for g in grains]
    dim_columns = [f"CAST({quote_identifier(d)} AS VARCHAR) AS {quote_identifier('d__' + d)}" for d in dimensions]
    where = f"WHERE {time_expr} IS NOT NULL"
    if metric.filter:
        where += f" AND ({metric.filter})"
    params: dict = {}
    if since is not None:
        where += f" AND {time_expr} >= $since"
        params["since"] = since
    inputs: list[str] = []  # only the measure's inputs are materialized, not every column
    measures = []
    for index, (suffix, measure) in enumerate(_slots(metric)):
        update = {"expr": None, "filter": None}
        if measure.expr:
            inputs.append(f"({measure.expr}) AS __e{index}")
            update["expr"] = f"__e{index}"
        if measure.filter:
            inputs.append(f"({measure.filter}) AS __c{index}")
            update["filter"] = f"__c{index}"
        measures.append(f"{aggregate_sql(measure.model_copy(update=update), None)} AS m0_{suffix}")
    parts = []
    for grain in grains:
        sets = [None] + (dimensions if grain in DIMENSION_GRAINS else [])
        for dimension in sets:
            dim_out = [(quote_identifier("d__" + d) if d == dimension else "CAST(NULL AS VARCHAR)")
                       + f" AS {quote_identifier('d__' + d)}" for d in dimensions]
            flag_out = [f"{0 if d == dimension else 1} AS {quote_identifier('g__' + d)}" for d in dimensions]
            group = f"__p_{grain}" + (f", {quote_identifier('d__' + dimension)}" if dimension else "")
            parts.append(f"SELECT '{grain}' AS grain, __p_{grain} AS period_start, "
                         f"{', '.join(dim_out + flag_out + measures)} FROM metric_rows GROUP BY {group}")
    sql = (f"WITH metric_rows AS MATERIALIZED (SELECT {', '.join(period_columns + dim_columns + inputs)} "
           f"FROM {quote_identifier(source_id)} {where}) " + " UNION ALL ".join(parts))
    return sql, params


DECOMPOSABLE = {Aggregation.COUNT, Aggregation.SUM, Aggregation.MIN, Aggregation.MAX, Aggregation.AVG}


def is_decomposable(metric: Metric) -> bool:
    """Can the metric's per-day partial aggregates be rolled up to longer periods exactly?"""
    measures = [metric.measure] if metric.measure is not None else [metric.numerator, metric.denominator]
    return all(m.agg in DECOMPOSABLE for m in measures)


def _slots(metric: Metric) -> list[tuple[str, Measure]]:
    """The (column suffix, measure) pairs a metric needs: value + count, or numerator + denominator."""
    if metric.measure is not None:
        return [("v", metric.measure), ("n", Measure(agg=Aggregation.COUNT))]
    return [("v", metric.numerator), ("d", metric.denominator)]


def _daily_parts(metrics: list[Metric], time_column: str
                 ) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """(row columns, stage-1 partial aggregates, stage-2 final aggregates, dimensions, the
    partials re-aggregated from finer groups) of a daily scan."""
    time_expr = quote_identifier(time_column)
    dimensions = sorted({d for m in metrics for d in m.dimensions})
    row_columns = [f"CAST({time_expr} AS DATE) AS __day"]
    row_columns += [f"CAST({quote_identifier(d)} AS VARCHAR) AS {quote_identifier('d__' + d)}" for d in dimensions]
    partials: list[str] = []   # stage-1 aggregates over raw rows
    finals: list[str] = []     # stage-2 aggregates over the daily table
    recombined: list[str] = [] # the partials re-aggregated from finer groups (same names and types)

    def partial(agg: str, expr_col: str | None, cond_col: str | None, name: str) -> None:
        inner = f"{agg}({expr_col})" if expr_col else "count(*)"
        partials.append(f"{inner}{f' FILTER (WHERE {cond_col})' if cond_col else ''} AS {name}")
        combine = {"count": f"CAST(sum({name}) AS BIGINT)", "sum": f"sum({name})"}.get(agg, f"{agg}({name})")
        recombined.append(f"{combine} AS {name}")

    # Each distinct filter and expression is computed once per row, however many metrics use
    # it (e.g. the SLA test `closed_at <= created_at + to_hours(sla_hours)` shared by four
    # on-time KPIs): DuckDB does not merge repeated subexpressions across aggregates.
    computed: dict[str, str] = {}

    def column_for(sql: str, prefix: str) -> str:
        if sql not in computed:
            computed[sql] = f"__{prefix}{len(computed)}"
            row_columns.append(f"({sql}) AS {computed[sql]}")
        return computed[sql]

    for i, metric in enumerate(metrics):
        for suffix, measure in _slots(metric):
            tag = f"m{i}_{suffix}"
            conditions = [column_for(c, "c") for c in dict.fromkeys((metric.filter, measure.filter)) if c]
            cond_col = " AND ".join(conditions) or None
            expr_col = column_for(measure.expr, "e") if measure.expr else None
            match measure.agg:
                case Aggregation.COUNT:
                    partial("count", expr_col, cond_col, f"__p_{tag}")
                    finals.append(f"CAST(sum(__p_{tag}) AS DOUBLE) AS {tag}")
                case Aggregation.SUM:
                    partial("sum", expr_col, cond_col, f"__p_{tag}")
                    finals.append(f"CAST(sum(__p_{tag}) AS DOUBLE) AS {tag}")
                case Aggregation.MIN | Aggregation.MAX:
                    agg = measure.agg.value
                    partial(agg, expr_col, cond_col, f"__p_{tag}")
                    finals.append(f"CAST({agg}(__p_{tag}) AS DOUBLE) AS {tag}")
                case Aggregation.AVG:
                    partial("sum", f"CAST({expr_col} AS DOUBLE)", cond_col, f"__s_{tag}")
                    partial("count", expr_col, cond_col, f"__n_{tag}")
                    finals.append(f"CAST(sum(__s_{tag}) / nullif(sum(__n_{tag}), 0) AS DOUBLE) AS {tag}")
                case _:
                    raise ValueError(f"metric {metric.id}: {measure.agg} is not decomposable")
    return row_columns, partials, finals, dimensions, recombined


def daily_partials_sql(registry: Registry, source_id: str, time_column: str, metrics: list[Metric],
                       since: date | None = None) -> tuple[str, dict]:
    """Stage 1 of a daily scan: ONE pass over the raw rows, grouped by day and by (day, dimension).

    The result (`__day`, `d__<dimension>`, `g__<dimension>` grouping flags, one partial
    aggregate per metric slot) is small (days x dimension values) and is what the rollup
    keeps between refreshes: an append only needs the partials of the days it touches.
    `since` keeps rows with time >= that day (the first day of the new data).
    """
    time_expr = quote_identifier(time_column)
    row_columns, partials, _finals, dimensions, recombined = _daily_parts(metrics, time_column)
    where = f"WHERE {time_expr} IS NOT NULL"
    params: dict = {}
    if since is not None:
        where += f" AND {time_expr} >= $since"
        params["since"] = since
    dim_ids = [quote_identifier("d__" + d) for d in dimensions]
    sets = ["(__day)"] + [f"(__day, {d})" for d in dim_ids]
    flags = [f"GROUPING({d}) AS {quote_identifier('g__' + name)}" for d, name in zip(dim_ids, dimensions)]
    rows = f"(SELECT {', '.join(row_columns)} FROM {quote_identifier(source_id)} {where}) AS raw_rows"
    if len(dimensions) < 2:
        sql = (f"SELECT __day, {', '.join(dim_ids + flags + partials)} FROM {rows} "
               f"GROUP BY GROUPING SETS ({', '.join(sets)})")
        return sql, params
    # Several dimensions: ONE hash aggregation of the raw rows by (day, every dimension), then
    # the grouping sets over that far smaller table. DuckDB runs each grouping set as its own
    # aggregation over every input row, so this reads and hashes the rows once, not 1 + dims
    # times (~25-30 % faster on the 311 scans). It assumes dimensions of modest cardinality
    # (districts, channels, departments), as dashboards' breakdowns are.
    finest = (f"SELECT __day, {', '.join(dim_ids + partials)} FROM {rows} "
              f"GROUP BY __day, {', '.join(dim_ids)}")
    sql = (f"SELECT __day, {', '.join(dim_ids + flags + recombined)} FROM ({finest}) AS finest "
           f"GROUP BY GROUPING SETS ({', '.join(sets)})")
    return sql, params


def rollup_days_sql(registry: Registry, time_column: str, metrics: list[Metric], days: str,
                    grains: tuple[str, ...] = GRAINS) -> str:
    """Stage 2 of a daily scan: the daily partials (a table or subquery `days`) rolled up to every grain.

    Counts, sums, min and max roll up exactly; avg is carried as sum and count. Each daily row
    is repeated once per grain (totals at every grain, dimension rows at the dimension grains)
    and ONE aggregate groups by (grain, period, dimension, value): a single pipeline over a few
    thousand rows, far cheaper to plan and run than one aggregate per grain and dimension.
    The output has the shape of `source_scan_sql` (grain, period_start, d__*, g__*, m<i>_<slot>).
    """
    fy = registry.city.fiscal_year_start_month
    _rows, _partials, finals, dimensions, _recombined = _daily_parts(metrics, time_column)
    which = ("CASE " + " ".join(f"WHEN {quote_identifier('g__' + d)} = 0 THEN {quote_literal(d)}" for d in dimensions)
             + " ELSE '' END") if dimensions else "''"
    value = ("coalesce(" + ", ".join(quote_identifier("d__" + d) for d in dimensions) + ")"
             if dimensions else "CAST(NULL AS VARCHAR)")
    period = "CASE __grain " + " ".join(f"WHEN '{g}' THEN {period_sql('__day', g, fy)}" for g in grains) + " END"
    grain_list = ", ".join(f"('{g}')" for g in grains)
    dimension_grains = ", ".join(f"'{g}'" for g in grains if g in DIMENSION_GRAINS) or "NULL"
    dim_out = [f"CASE WHEN __dim = {quote_literal(d)} THEN __val END AS {quote_identifier('d__' + d)}"
               for d in dimensions]
    flag_out = [f"CAST(__dim <> {quote_literal(d)} AS INTEGER) AS {quote_identifier('g__' + d)}" for d in dimensions]
    return (f"SELECT __grain AS grain, period_start, {', '.join(dim_out + flag_out + finals)} FROM ("
            f"SELECT grains.__grain, {period} AS period_start, tagged.* FROM "
            f"(SELECT *, {which} AS __dim, {value} AS __val FROM {days} AS daily) AS tagged, "
            f"(VALUES {grain_list}) AS grains(__grain) "
            f"WHERE __dim = '' OR grains.__grain IN ({dimension_grains})) AS repeated "
            f"GROUP BY __grain, period_start, __dim, __val")


def daily_scan_sql(registry: Registry, source_id: str, time_column: str, metrics: list[Metric],
                   grains: tuple[str, ...] = GRAINS, since: date | None = None) -> tuple[str, dict]:
    """Stages 1 and 2 in one statement (same output shape as source_scan_sql), for reading and tests.

    The refresh runs the stages separately (`scan_decomposable`) so it can keep the daily partials.
    """
    daily, params = daily_partials_sql(registry, source_id, time_column, metrics, since)
    return rollup_days_sql(registry, time_column, metrics, f"({daily})", grains), params


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
                      new_from: date | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(long rollup rows, daily partials) of decomposable metrics sharing a source and time column.

    With `stored` (the daily partials a previous refresh kept) and `new_from` (the first day of
    newly appended rows), only rows with time >= `new_from` are scanned; stored days before it
    are reused as they are (no new row falls on them), and every period is re-rolled from days.
    """
    registry = engine.registry
    since = new_from if stored is not None else None
    sql, params = daily_partials_sql(registry, source_id, time_column, metrics, since)
    days = engine.query(sql, params, context=f"source {source_id}")
    if stored is not None:
        days = pl.concat([stored.filter(pl.col("__day") < new_from), days], how="vertical_relaxed")
    days = sort_days(days)
    rolled = query_over_frame(engine, rollup_days_sql(registry, time_column, metrics, "days", grains), "days",
                              days, context=f"source {source_id}")
    return _reshape_scan(rolled, metrics), days


def _reshape_scan(scan: pl.DataFrame, metrics: list[Metric]) -> pl.DataFrame:
    """Wide scan result -> long rollup rows, keeping only the dimensions each metric declares."""
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
        keep = scan.filter(pl.col("dimension").is_in(["", *metric.dimensions]))
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


def empty_rollup() -> pl.DataFrame:
    return pl.DataFrame(schema=ROLLUP_SCHEMA)


def _problem(registry: Registry, metric_id: str, message: str) -> Problem:
    return Problem(str(registry.path), registry.line_of("metric", metric_id), f"metric {metric_id}", message)


def daily_key(source_id: str, time_column: str) -> str:
    """The name under which a rollup keeps the daily partials of one (source, time column) scan."""
    return f"{source_id}|{time_column}"


def group_key(registry: Registry, metric: Metric) -> tuple[str, str]:
    """(source, time column): metrics sharing it are computed by the same scans."""
    return (metric.source, metric.time_column or registry.sources[metric.source].time_column)


@dataclass
class GroupResult:
    frames: list[pl.DataFrame]
    problems: list[Problem]
    days: pl.DataFrame | None  # daily partials of the group's decomposable metrics (None: not kept)


def compute_group(engine: Engine, source_id: str, time_column: str, group: list[Metric], grains=GRAINS, *,
                  holistic_since: date | None = None, stored: pl.DataFrame | None = None,
                  new_from: date | None = None) -> GroupResult:
    """All declared metrics of one (source, time column): one daily scan for the decomposable
    ones, one filtered GROUPING SETS scan per holistic one; on failure, metric by metric.

    Incremental use: `stored` + `new_from` (see `scan_decomposable`), and `holistic_since`,
    the earliest period start any new row falls in, from which holistic metrics are rescanned
    (their rows before it are not read; the caller keeps their older periods).
    """
    registry = engine.registry
    if source_id not in engine.available:
        return GroupResult([], [_problem(registry, m.id, f"source {source_id!r} is unavailable") for m in group],
                           None)
    frames: list[pl.DataFrame] = []
    problems: list[Problem] = []
    days = None
    shared = [m for m in group if is_decomposable(m)]
    holistic = [m for m in group if not is_decomposable(m)]
    if shared:
        try:
            rows, days = scan_decomposable(engine, source_id, time_column, shared, grains, stored, new_from)
            frames.append(rows)
        except QueryError:
            holistic = shared + holistic  # isolate the broken metric(s); keep the healthy ones
    for metric in holistic:
        try:
            if is_decomposable(metric):
                rows, _ = scan_decomposable(engine, source_id, time_column, [metric], grains)
                frames.append(rows)
            else:
                sql, params = holistic_scan_sql(registry, source_id, time_column, metric, grains, holistic_since)
                frames.append(_reshape_scan(engine.query(sql, params, context=f"metric {metric.id}"), [metric]))
        except QueryError as exc:
            problems.append(_problem(registry, metric.id, exc.message))
    return GroupResult(frames, problems, days)


def compute_declared(engine: Engine, metrics: list[Metric], grains=GRAINS, daily: dict | None = None
                     ) -> tuple[list[pl.DataFrame], list[Problem]]:
    """Every group of `metrics` in full; the daily partials of each group go into `daily` if given."""
    registry = engine.registry
    frames, problems = [], []
    for (source_id, time_column), group in groupby(sorted(metrics, key=lambda m: group_key(registry, m)),
                                                   key=lambda m: group_key(registry, m)):
        result = compute_group(engine, source_id, time_column, list(group), grains)
        frames += result.frames
        problems += result.problems
        if daily is not None and result.days is not None:
            daily[daily_key(source_id, time_column)] = result.days
    return frames, problems


SQL_METRIC_COLUMNS = ("period_start", "value")


def compute_sql_metric(engine: Engine, metric: Metric, grains=GRAINS, start: date = date(1900, 1, 1),
                       end: date = date(2999, 12, 31)) -> pl.DataFrame:
    registry = engine.registry
    text = registry.sql_text(metric.sql).rstrip().rstrip(";")
    parts = []
    for grain in grains:
        offered = {"grain": grain, "start": start, "end": end,
                   "fy_start_month": registry.city.fiscal_year_start_month}
        params = {name: value for name, value in offered.items() if re.search(rf"\${name}\b", text)}
        result = engine.query(text, params, context=f"metric {metric.id} ({metric.sql}, grain {grain})")
        missing = [c for c in SQL_METRIC_COLUMNS if c not in result.columns]
        if missing:
            raise QueryError(f"metric {metric.id}", f"{metric.sql} must return columns {', '.join(SQL_METRIC_COLUMNS)}; "
                             f"missing {', '.join(missing)}")
        for optional in ("numerator", "denominator"):
            if optional not in result.columns:
                result = result.with_columns(pl.lit(None, dtype=pl.Float64).alias(optional))
        parts.append(result.select(
            pl.lit(metric.id).alias("metric_id"), pl.lit(grain).alias("grain"),
            pl.col("period_start").cast(pl.Date), pl.lit("").alias("dimension"),
            pl.lit(None, dtype=pl.Utf8).alias("dimension_value"),
            pl.col("value").cast(pl.Float64), pl.col("numerator").cast(pl.Float64),
            pl.col("denominator").cast(pl.Float64),
            pl.coalesce(pl.col("denominator").cast(pl.Float64), pl.lit(None, dtype=pl.Float64)).alias("n")))
    return pl.concat(parts).cast(ROLLUP_SCHEMA)


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
    rows = []
    for source_id in sorted(engine.available if only is None else engine.available & only):
        source = engine.registry.sources[source_id]
        if source.time_column is None:
            continue
        column = quote_identifier(source.time_column)
        try:
            result = engine.query(
                f"SELECT min({column})::TIMESTAMP AS first_time, max({column})::TIMESTAMP AS last_time, "
                f"count(*)::BIGINT AS rows FROM {quote_identifier(source_id)}", context=f"source {source_id}")
            rows.append(result.with_columns(pl.lit(source_id).alias("source_id")))
        except QueryError as exc:
            engine.problems.append(Problem(str(engine.registry.path), engine.registry.line_of("source", source_id),
                                           f"source {source_id}", f"time column {source.time_column!r}: {exc.message}"))
    schema = {"source_id": pl.Utf8, "first_time": pl.Datetime("us"), "last_time": pl.Datetime("us"), "rows": pl.Int64}
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.concat(rows).select(list(schema)).cast(schema)


def compute_rollup(engine: Engine, grains: tuple[str, ...] = GRAINS) -> Rollup:
    """Full computation of every healthy metric. Broken metrics become problems, not crashes."""
    registry = engine.registry
    declared = [m for m in registry.metrics.values() if m.kind in ("measure", "rate")]
    daily: dict[str, pl.DataFrame] = {}
    frames, problems = compute_declared(engine, declared, grains, daily)
    for metric in registry.metrics.values():
        if metric.kind != "sql":
            continue
        try:
            frames.append(compute_sql_metric(engine, metric, grains))
        except (QueryError, OSError) as exc:
            problems.append(_problem(registry, metric.id, getattr(exc, "message", str(exc))))
    totals = pl.concat(frames) if frames else empty_rollup()
    for metric_id in derived_order(registry):
        try:
            totals = pl.concat([totals, compute_derived(registry, totals, registry.metrics[metric_id])])
        except QueryError as exc:
            problems.append(_problem(registry, metric_id, exc.message))
    return Rollup(frame=totals.sort("metric_id", "grain", "dimension", "period_start"),
                  extents=source_extents(engine), problems=problems + list(engine.problems),
                  fingerprint=engine.fingerprint(), manifest=file_manifest(engine),
                  registry_fingerprint=engine.registry.fingerprint(), how="full", daily=daily)


# ---- incremental refresh ------------------------------------------------------------------

def _expand(pattern: str) -> list[str]:
    if "://" in pattern:
        return [pattern]
    if any(ch in pattern for ch in "*?["):
        return sorted(globlib.glob(pattern, recursive=True))
    return [pattern] if os.path.isfile(pattern) else []


def file_manifest(engine: Engine) -> dict[str, list[list]]:
    """source_id -> [[file, size, mtime_ns], ...] for every path source (size -1: cannot stat)."""
    manifest: dict[str, list[list]] = {}
    for source_id, files in sorted(engine.source_files.items()):
        rows = []
        for file in _expand(files.pattern):
            try:
                stat = os.stat(file)
                rows.append([file, stat.st_size, stat.st_mtime_ns])
            except OSError:
                rows.append([file, -1, -1])
        manifest[source_id] = rows
    return manifest


def plan_refresh(previous: Rollup | None, engine: Engine) -> tuple[dict[str, list[str]] | None, str]:
    """Which new files to fold into `previous`, or (None, why) when only a full refresh is safe.

    Incremental is safe only when the registry and its query files are unchanged and every
    file the previous rollup read is still there with the same size and modification time:
    the data changed only by NEW files (appended partitions). A rewritten, touched or removed
    file (a re-extract that updates old rows, e.g. closing old requests) means a full refresh.
    """
    if previous is None:
        return None, "no previous rollup"
    if previous.registry_fingerprint != engine.registry.fingerprint():
        return None, "the registry or a query file changed"
    if previous.failed_metrics():
        return None, "the previous rollup had failed metrics"
    manifest = file_manifest(engine)
    if set(manifest) != set(previous.manifest):
        return None, "the set of file sources changed"
    appended: dict[str, list[str]] = {}
    for source_id, rows in manifest.items():
        now = {row[0]: (row[1], row[2]) for row in rows}
        for file, size, mtime in previous.manifest[source_id]:
            if size < 0 or now.get(file) != (size, mtime):
                return None, f"{file} was changed or removed"
        old = {row[0] for row in previous.manifest[source_id]}
        new_files = [f for f in now if f not in old]
        if any(now[f][0] < 0 for f in new_files):
            return None, f"cannot read the size of a new file of {source_id}"
        if new_files:
            appended[source_id] = new_files
    return appended, "only new files were added"


def _dependent_sources(registry: Registry, changed: set[str]) -> set[str]:
    """`changed` plus every SQL-defined source that reads one of them (transitively)."""
    affected = set(changed)
    progressed = True
    while progressed:
        progressed = False
        for source in registry.sources.values():
            if source.id in affected or not source.sql:
                continue
            try:
                text = registry.sql_text(source.sql)
            except OSError:
                affected.add(source.id)
                progressed = True
                continue
            if any(re.search(rf"\b{re.escape(s)}\b", text) for s in affected):
                affected.add(source.id)
                progressed = True
    return affected


def new_file_stats(engine: Engine, source_id: str, files: list[str], time_columns: set[str]) -> dict:
    """Over the newly added files only: {"first": {column: earliest day}} for every time column
    in `time_columns`, and the extents row of the source's own time column (min, max, rows)."""
    own = engine.registry.sources[source_id].time_column
    columns = sorted(time_columns | ({own} if own else set()))
    selects = [f"CAST(min({quote_identifier(c)}) AS DATE) AS {quote_identifier('first|' + c)}" for c in columns]
    if own:
        column = quote_identifier(own)
        selects += [f"min({column})::TIMESTAMP AS first_time", f"max({column})::TIMESTAMP AS last_time"]
    selects.append("count(*)::BIGINT AS rows")
    result = engine.query(f"SELECT {', '.join(selects)} FROM read_parquet($files, union_by_name = true)",
                          {"files": files}, context=f"new files {', '.join(files)}")
    row = result.row(0, named=True)
    return {"first": {c: row[f"first|{c}"] for c in columns}, "extents": result.select(
        [c for c in ("first_time", "last_time", "rows") if c in result.columns])}


def first_affected_day(engine: Engine, time_column: str, files: list[str],
                       grains: tuple[str, ...] = GRAINS) -> date | None:
    """The earliest period start, over all grains, of any period the new files' rows fall in.

    Every period of every grain that starts on or after this day is recomputed from all the
    files; every period that starts before it holds none of the new rows and is kept.
    """
    column = quote_identifier(time_column)
    result = engine.query(f"SELECT min({column}) AS first FROM read_parquet($files, union_by_name = true)",
                          {"files": files}, context=f"new files {', '.join(files)}")
    first = result["first"][0] if result.height else None
    if first is None:
        return None
    day = first.date() if isinstance(first, datetime) else first
    return earliest_period_start(day, engine.registry.city.fiscal_year_start_month, grains)


def earliest_period_start(day: date, fy_start_month: int, grains: tuple[str, ...] = GRAINS) -> date:
    """The earliest start, over all grains, of a period holding `day` (usually the fiscal year's)."""
    from citystat.core.periods import period_start

    return min(period_start(day, g, fy_start_month) for g in grains)


def _merged_extents(engine: Engine, previous: Rollup, affected: set[str], stats: dict[str, dict]) -> pl.DataFrame:
    """Source extents after an append: a file source that only gained files combines its old
    extents with the new files' (min of mins, max of maxes, sum of rows); others are rescanned."""
    rescan = set(affected)
    merged = []
    for source_id, stat in stats.items():
        old = previous.extents.filter(pl.col("source_id") == source_id)
        new = stat["extents"]
        if old.height != 1 or "first_time" not in new.columns:
            continue
        both = pl.concat([old.select("first_time", "last_time", "rows"),
                          new.cast({"first_time": pl.Datetime("us"), "last_time": pl.Datetime("us"),
                                    "rows": pl.Int64})])
        merged.append(both.select(pl.lit(source_id).alias("source_id"), pl.col("first_time").min(),
                                  pl.col("last_time").max(), pl.col("rows").sum()))
        rescan.discard(source_id)
    parts = [previous.extents.filter(~pl.col("source_id").is_in(list(affected))), source_extents(engine, rescan)]
    parts += [m.select(previous.extents.columns).cast(previous.extents.schema) for m in merged]
    return pl.concat(parts).sort("source_id")


def refresh_rollup(engine: Engine, previous: Rollup | None = None, grains: tuple[str, ...] = GRAINS) -> Rollup:
    """The rollup for the engine's current data, reusing `previous` when only files were added.

    For a (source, time column) that gained files: decomposable metrics scan only the rows
    from the first day in the new files on and re-roll every period from the kept daily
    partials plus the new days; holistic metrics rescan from the earliest period start holding
    a new row (the fiscal year's, at most a year) and keep older periods.

    Gives exactly what `compute_rollup` gives (tests/test_incremental.py checks it); falls back
    to `compute_rollup` whenever an incremental update could not be proven equal.
    """
    appended, _reason = plan_refresh(previous, engine) if grains == GRAINS else (None, "custom grains")
    if appended is None:
        return compute_rollup(engine, grains)
    registry = engine.registry
    if not appended:
        return Rollup(frame=previous.frame, extents=previous.extents, problems=list(engine.problems),
                      fingerprint=engine.fingerprint(), manifest=file_manifest(engine),
                      registry_fingerprint=registry.fingerprint(), how="unchanged", daily=dict(previous.daily))
    affected = _dependent_sources(registry, set(appended))
    fy = registry.city.fiscal_year_start_month
    declared = [m for m in registry.metrics.values() if m.kind in ("measure", "rate")]
    kept = previous.frame
    fresh: list[pl.DataFrame] = []
    daily = dict(previous.daily)
    try:
        stats = {}
        for source_id, files in appended.items():
            columns = {group_key(registry, m)[1] for m in declared if m.source == source_id}
            stats[source_id] = new_file_stats(engine, source_id, files, columns)
        for (source_id, time_column), group in groupby(sorted(declared, key=lambda m: group_key(registry, m)),
                                                       key=lambda m: group_key(registry, m)):
            group = list(group)
            if source_id not in affected:
                continue
            key = daily_key(source_id, time_column)
            if source_id in appended:  # a file source: only rows from the first new day on
                new_from = stats[source_id]["first"][time_column]
                if new_from is None:
                    continue  # the new files hold no dated rows for this time column
                holistic_since = earliest_period_start(new_from, fy, grains)
                result = compute_group(engine, source_id, time_column, group, grains, holistic_since=holistic_since,
                                       stored=previous.daily_partials(key), new_from=new_from)
            else:  # a SQL source reading a changed source: recomputed in full
                holistic_since = None
                result = compute_group(engine, source_id, time_column, group, grains)
            if result.problems:
                return compute_rollup(engine, grains)
            replaced = pl.col("metric_id").is_in([m.id for m in group if is_decomposable(m)])
            holistic_ids = [m.id for m in group if not is_decomposable(m)]
            if holistic_since is None:
                replaced = replaced | pl.col("metric_id").is_in(holistic_ids)
            else:
                replaced = replaced | (pl.col("metric_id").is_in(holistic_ids)
                                       & (pl.col("period_start") >= holistic_since))
                result.frames = [f.filter(~pl.col("metric_id").is_in(holistic_ids)
                                          | (pl.col("period_start") >= holistic_since)) for f in result.frames]
            kept = kept.filter(~replaced)
            fresh += result.frames
            if result.days is not None:
                daily[key] = result.days
            else:
                daily.pop(key, None)
        for metric in registry.metrics.values():
            if metric.kind == "sql" and set(registry.sources_of(metric)) & affected:
                kept = kept.filter(pl.col("metric_id") != metric.id)
                fresh.append(compute_sql_metric(engine, metric, grains))
        extents = _merged_extents(engine, previous, affected, stats)
    except (QueryError, OSError):
        return compute_rollup(engine, grains)
    derived_ids = [m.id for m in registry.metrics.values() if m.kind == "derived"]
    totals = pl.concat([kept.filter(~pl.col("metric_id").is_in(derived_ids)), *fresh]).cast(ROLLUP_SCHEMA)
    problems: list[Problem] = []
    for metric_id in derived_order(registry):
        try:
            totals = pl.concat([totals, compute_derived(registry, totals, registry.metrics[metric_id])])
        except QueryError as exc:
            problems.append(_problem(registry, metric_id, exc.message))
    return Rollup(frame=totals.sort("metric_id", "grain", "dimension", "period_start"), extents=extents,
                  problems=problems + list(engine.problems), fingerprint=engine.fingerprint(),
                  manifest=file_manifest(engine), registry_fingerprint=registry.fingerprint(), how="incremental",
                  daily=daily)


def metric_sql(registry: Registry, metric: Metric, grain: str) -> str:
    """The SQL that computes one metric at one grain, as shown to users ('how is this made?')."""
    if metric.kind == "sql":
        return registry.sql_text(metric.sql)
    if metric.kind == "derived":
        return f"-- derived from other KPIs, period by period:\n-- {metric.id} = {metric.derived}"
    source = registry.sources[metric.source]
    sql, _ = source_scan_sql(registry, metric.source, metric.time_column or source.time_column, [metric],
                             (grain,))
    return (sql.replace(" FROM (", "\nFROM (").replace(" GROUP BY ", "\nGROUP BY ")
            .replace(", CAST(", ",\n       CAST("))

"""Compute every metric at every grain (and its dimension breakdowns) as one long frame.

Declared metrics that share a source and time column are computed in ONE scan: one SELECT
with a `FILTER`ed aggregate per measure and `GROUPING SETS` over every grain and dimension.
SQL-file metrics run once per grain with bound `$grain`, `$start`, `$end`. Derived metrics
are evaluated last, from the totals of the metrics they use.

Output columns (see docs/ARCHITECTURE.md): metric_id, grain, period_start, dimension,
dimension_value, value, numerator, denominator, n.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby

import polars as pl

from .engine import Engine, QueryError, period_sql, quote_identifier
from .registry.loader import Problem, Registry, derived_order, derived_references
from .registry.models import Aggregation, Measure, Metric

GRAINS = ("day", "week", "month", "quarter", "fiscal_year")
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

    def series(self, metric_id: str, grain: str, dimension: str = "") -> pl.DataFrame:
        return (self.frame
                .filter((pl.col("metric_id") == metric_id) & (pl.col("grain") == grain)
                        & (pl.col("dimension") == dimension))
                .sort("period_start", "dimension_value"))

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
                    grains: tuple[str, ...] = GRAINS, since: date | None = None) -> tuple[str, dict]:
    """The single-scan SQL for every declared metric over one source and time column."""
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


def compute_declared(engine: Engine, metrics: list[Metric], grains=GRAINS, since: date | None = None
                     ) -> tuple[list[pl.DataFrame], list[Problem]]:
    """One scan per (source, time column); on failure, retry metric by metric to name the culprit."""
    registry = engine.registry
    frames, problems = [], []

    def key(metric: Metric) -> tuple[str, str]:
        return (metric.source, metric.time_column or registry.sources[metric.source].time_column)

    for (source_id, time_column), group in groupby(sorted(metrics, key=key), key=key):
        group = list(group)
        if source_id not in engine.available:
            problems += [_problem(registry, m.id, f"source {source_id!r} is unavailable") for m in group]
            continue
        try:
            sql, params = source_scan_sql(registry, source_id, time_column, group, grains, since)
            frames.append(_reshape_scan(engine.query(sql, params, context=f"source {source_id}"), group))
        except QueryError:
            for metric in group:  # isolate the broken metric(s); keep the healthy ones
                try:
                    sql, params = source_scan_sql(registry, source_id, time_column, [metric], grains, since)
                    frames.append(_reshape_scan(engine.query(sql, params), [metric]))
                except QueryError as exc:
                    problems.append(_problem(registry, metric.id, exc.message))
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


def source_extents(engine: Engine) -> pl.DataFrame:
    rows = []
    for source_id in sorted(engine.available):
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
    frames, problems = compute_declared(engine, declared, grains)
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
                  fingerprint=engine.fingerprint())


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

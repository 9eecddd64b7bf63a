"""Evaluate a contract metric's filter and outcome expressions on a Polars frame.

Expressions are SQL expressions over the source's columns (``exit_destination = 'permanent'``,
``exited_at - entered_at``). Polars evaluates them with ``pl.sql_expr``, so this stays pure (no
DuckDB) and never builds a query string. A date difference comes back as a Duration; it is
turned into days (float), which is what a length-of-stay metric means and what DuckDB's
``date - date`` gives, so the same text means the same thing in both engines.
"""

from __future__ import annotations

from datetime import date

import polars as pl

OUTCOME = "outcome_value"
MONTH = "month"


class ExpressionError(ValueError):
    """An outcome/filter expression that does not evaluate on the source, named by its owner."""


def evaluate(frame: pl.DataFrame, expression: str, owner: str) -> pl.Series:
    """The expression's value on every row; a column name is just the column."""
    try:
        if expression in frame.columns:
            series = frame.get_column(expression)
        else:
            series = frame.select(pl.sql_expr(expression).alias(OUTCOME)).to_series()
    except Exception as exc:  # polars raises several error types for bad SQL / unknown columns
        raise ExpressionError(
            f"{owner}: cannot evaluate {expression!r} on columns {sorted(frame.columns)}: {exc}"
        ) from exc
    if series.dtype == pl.Duration:
        series = series.dt.total_seconds(fractional=True) / 86_400.0
    return series.alias(OUTCOME)


def metric_rows(
    frame: pl.DataFrame,
    *,
    outcome: str,
    kind: str,
    owner: str,
    filter: str | None = None,
    date_column: str | None = None,
    period: tuple[date, date] | None = None,
) -> pl.DataFrame:
    """The rows a metric is about, with ``outcome_value`` added and null outcomes dropped.

    ``kind == 'rate'`` requires a boolean (or 0/1) outcome and stores it as 0.0/1.0 floats so
    sums are observed counts. With ``date_column``, a ``month`` column (first day) is added and
    ``period`` (inclusive) keeps only rows whose date falls within it.
    """
    rows = frame
    if filter:
        keep = evaluate(rows, filter, f"{owner} filter")
        if keep.dtype != pl.Boolean:
            raise ExpressionError(f"{owner} filter: {filter!r} must be true/false, got {keep.dtype}")
        rows = rows.filter(keep.fill_null(False))
    values = evaluate(rows, outcome, f"{owner} outcome")
    if kind == "rate":
        if values.dtype == pl.Boolean:
            values = values.cast(pl.Float64)
        elif values.dtype.is_numeric():
            bad = values.drop_nulls().filter(~values.drop_nulls().is_in([0, 1]))
            if len(bad):
                raise ExpressionError(f"{owner} outcome: a rate needs true/false (or 0/1) values, "
                                      f"found {bad[0]!r}")
            values = values.cast(pl.Float64)
        else:
            raise ExpressionError(f"{owner} outcome: a rate needs true/false values, got {values.dtype}")
    elif not values.dtype.is_numeric():
        raise ExpressionError(f"{owner} outcome: a {kind} needs numbers, got {values.dtype}")
    rows = rows.with_columns(values.cast(pl.Float64))
    if date_column is not None:
        if date_column not in rows.columns:
            raise ExpressionError(f"{owner}: date column {date_column!r} is not in the source")
        day = pl.col(date_column).cast(pl.Date)
        rows = rows.with_columns(day.dt.truncate("1mo").alias(MONTH))
        if period is not None:
            rows = rows.filter(day.is_between(period[0], period[1], closed="both"))
    return rows.filter(pl.col(OUTCOME).is_not_null() & pl.col(OUTCOME).is_not_nan())

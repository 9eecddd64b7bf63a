"""From rollup rows to what a stat session looks at: KPI frames, the overview, the CityScore.

Everything here is computed on small aggregates (one row per period), so it is cheap; the
heavy lifting happened in `rollup.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import polars as pl

from citystat.core.cityscore import city_score, metric_score
from citystat.core.compare import compare_with_prior_and_last_year
from citystat.core.periods import latest_complete_period, period_end, period_label, periods_between
from citystat.core.spc import format_rules, process_behaviour
from citystat.core.status import STATUS_LABELS, Status, status_for
from citystat.core.targets import target_for
from citystat.registry.loader import Registry
from citystat.registry.models import Direction, Metric, Unit
from citystat.kpis.rollup import Rollup

NON_NEGATIVE_UNITS = {Unit.PERCENT, Unit.COUNT, Unit.DAYS, Unit.HOURS, Unit.MINUTES, Unit.CURRENCY,
                      Unit.UG_DL, Unit.UG_M3, Unit.RATIO}
CITYSCORE_WINDOWS = ("day", "week", "month", "quarter")

KPI_SCHEMA = {
    "period_start": pl.Date, "period_end": pl.Date, "label": pl.Utf8,
    "value": pl.Float64, "numerator": pl.Float64, "denominator": pl.Float64, "n": pl.Float64,
    "target": pl.Float64, "status": pl.Utf8,
    "centre": pl.Float64, "lower_limit": pl.Float64, "upper_limit": pl.Float64,
    "mr": pl.Float64, "mr_upper": pl.Float64, "signal": pl.Boolean, "rules": pl.Utf8, "phase": pl.Int64,
    "prior_value": pl.Float64, "change_vs_prior": pl.Float64,
    "last_year_value": pl.Float64, "change_vs_last_year": pl.Float64, "score": pl.Float64,
}


def source_days(registry: Registry, rollup: Rollup) -> dict[str, tuple[date, date]]:
    """First day and last complete day of each source (computed once per rollup).

    The extracts are cut at the same moment, so a source whose newest row is a little older
    than the newest row anywhere (permits on a Sunday, an hourly sensor feed) is still
    complete up to that cut. Only a source that lags by more than its expected refresh
    interval (at least three days, for weekends) is treated as ending at its own last row:
    periods after it are not complete for the KPIs that read it.
    """
    cached = getattr(rollup, "_source_days", None)
    if cached is not None:
        return cached
    rows = [r for r in rollup.extents.iter_rows(named=True) if r["last_time"] is not None]
    days: dict[str, tuple[date, date]] = {}
    if rows:
        cut = max(r["last_time"] for r in rows).date()
        for row in rows:
            last = row["last_time"].date()
            source = registry.sources.get(row["source_id"])
            allowed = max(source.refresh_interval.days if source else 1, 3)
            days[row["source_id"]] = (row["first_time"].date(), cut if (cut - last).days <= allowed else last)
    rollup._source_days = days
    return days


def data_window(registry: Registry, rollup: Rollup, metric: Metric) -> tuple[date, date] | None:
    """First and last complete day with data in every source the metric reads."""
    days = source_days(registry, rollup)
    windows = [days[s] for s in registry.sources_of(metric) if s in days]
    if not windows:
        return None
    return max(first for first, _ in windows), min(last for _, last in windows)


def complete_periods(first_day: date, last_day: date, grain: str, fy: int) -> list[date]:
    """Periods wholly inside [first_day, last_day]: partial periods would mislead."""
    return [p for p in periods_between(first_day, last_day, grain, fy)
            if p >= first_day and period_end(p, grain, fy) <= last_day]


NOMINAL_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12, "quarter": 365.25 / 4, "fiscal_year": 365.25}


def is_additive(registry: Registry, metric: Metric) -> bool:
    """Counts and sums grow with the length of the period (rates, medians and averages do not)."""
    if metric.kind == "measure":
        return metric.measure.agg.value in ("count", "count_distinct", "sum")
    if metric.kind == "derived":
        from citystat.registry.loader import derived_references

        refs = [registry.metrics.get(r) for r in derived_references(metric.derived)]
        return all(r is not None and is_additive(registry, r) for r in refs)
    return False


def target_scale(registry: Registry, metric: Metric, start: date, grain: str) -> float:
    """Targets of counts are set per period of the KPI's own grain; other grains scale by length."""
    if grain == metric.grain or not is_additive(registry, metric):
        return 1.0
    fy = registry.city.fiscal_year_start_month
    days = (period_end(start, grain, fy) - start).days + 1
    return days / NOMINAL_DAYS[metric.grain]


def _clean(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def kpi_frame(registry: Registry, rollup: Rollup, metric: Metric, grain: str,
              dimension: str = "", dimension_value: str | None = None) -> pl.DataFrame:
    """One row per complete period: value, target, status, process limits, signals, comparisons."""
    fy = registry.city.fiscal_year_start_month
    window = data_window(registry, rollup, metric)
    if window is None:
        return pl.DataFrame(schema=KPI_SCHEMA)
    periods = complete_periods(*window, grain, fy)
    series = rollup.series(metric.id, grain, dimension)
    if dimension:
        series = series.filter(pl.col("dimension_value") == dimension_value)
    by_period = {row["period_start"]: row for row in series.iter_rows(named=True)}
    is_count = metric.kind == "measure" and metric.measure.agg.value in ("count", "count_distinct", "sum")

    rows = []
    for start in periods:
        row = by_period.get(start)
        value = _clean(row["value"]) if row else (0.0 if is_count else None)
        rows.append({"period_start": start, "value": value,
                     "numerator": _clean(row["numerator"]) if row else None,
                     "denominator": _clean(row["denominator"]) if row else None,
                     "n": _clean(row["n"]) if row else 0.0})

    values = [r["value"] for r in rows]
    phase_starts = sorted({i for change in metric.process_changes
                           for i, r in enumerate(rows) if r["period_start"] >= change.date
                           and (i == 0 or rows[i - 1]["period_start"] < change.date)})
    non_negative = metric.unit in NON_NEGATIVE_UNITS
    points = process_behaviour(values, phase_starts=phase_starts, baseline_points=metric.baseline_points,
                               floor=0.0 if non_negative else None,
                               ceiling=1.0 if metric.unit == Unit.PERCENT else None)
    index = {r["period_start"]: r["value"] for r in rows}
    targets = metric.target_list()
    out = []
    for row, point in zip(rows, points):
        start = row["period_start"]
        target = target_for(targets, start) if metric.direction != Direction.NEUTRAL else None
        if target is not None:
            target *= target_scale(registry, metric, start, grain)
        vs_prior, vs_last_year = compare_with_prior_and_last_year(index, start, grain, metric.direction.value, fy)
        value = row["value"]
        out.append({
            **row,
            "period_end": period_end(start, grain, fy),
            "label": period_label(start, grain, fy),
            "target": target,
            "status": str(status_for(value, target, metric.direction.value,
                                     at_risk_within=metric.bands.at_risk_within,
                                     at_risk_within_abs=metric.bands.at_risk_within_abs,
                                     n=row["n"], min_n=metric.bands.min_count)),
            "centre": point.centre, "lower_limit": point.lower, "upper_limit": point.upper,
            "mr": point.mr, "mr_upper": point.mr_upper, "signal": point.signal,
            "rules": format_rules(point.rules), "phase": point.phase,
            "prior_value": vs_prior.reference, "change_vs_prior": vs_prior.delta,
            "last_year_value": vs_last_year.reference, "change_vs_last_year": vs_last_year.delta,
            "score": metric_score(value, target, metric.direction.value),
        })
    return pl.DataFrame(out, schema=KPI_SCHEMA) if out else pl.DataFrame(schema=KPI_SCHEMA)


def default_as_of(registry: Registry, rollup: Rollup, grain: str) -> date | None:
    """Start of the latest complete period in the data (never the wall clock)."""
    last = rollup.last_data_day()
    if last is None:
        return None
    return latest_complete_period(last, grain, registry.city.fiscal_year_start_month)


def period_last_day(registry: Registry, start: date, grain: str) -> date:
    return period_end(start, grain, registry.city.fiscal_year_start_month)


def available_periods(registry: Registry, rollup: Rollup, grain: str) -> list[date]:
    """Complete periods of the registry's data, newest first (for the 'as of' picker)."""
    fy = registry.city.fiscal_year_start_month
    if rollup.extents.is_empty():
        return []
    first = rollup.extents["first_time"].min().date()
    last = rollup.last_data_day()
    return list(reversed(complete_periods(first, last, grain, fy)))


@dataclass
class OverviewRow:
    metric: Metric
    grain: str
    period_start: date
    frame: pl.DataFrame  # the KPI frame up to and including as_of
    current: dict | None  # the as_of row, or None if the metric has no data then

    @property
    def status(self) -> str:
        return self.current["status"] if self.current else str(Status.NO_DATA)

    @property
    def signal(self) -> bool:
        return bool(self.current and self.current["signal"])


def overview(registry: Registry, rollup: Rollup, as_of_day: date, grain: str | None = None,
             metrics: list[Metric] | None = None, dimension: str = "",
             dimension_value: str | None = None, kpi=None) -> list[OverviewRow]:
    """Every KPI (or the given ones) as of `as_of_day`.

    Each KPI is shown at `grain` if given, else at its own default grain (a monthly measure
    stays monthly), for its latest period that is complete on `as_of_day`. With a dimension,
    each KPI is restricted to that dimension value (e.g. department = 'pw'). `kpi` computes a
    KPI frame (default `kpi_frame`; `CityStat` passes its cache).
    """
    kpi = kpi or kpi_frame
    fy = registry.city.fiscal_year_start_month
    failed = rollup.failed_metrics()
    rows = []
    for metric in metrics if metrics is not None else registry.metrics.values():
        if metric.id in failed:
            continue
        metric_grain = grain or metric.grain
        period = latest_complete_period(as_of_day, metric_grain, fy)
        frame = kpi(registry, rollup, metric, metric_grain, dimension, dimension_value)
        frame = frame.filter(pl.col("period_start") <= period)
        current = frame.row(-1, named=True) if frame.height and frame["period_start"][-1] == period else None
        rows.append(OverviewRow(metric=metric, grain=metric_grain, period_start=period, frame=frame,
                                current=current))
    return rows


def city_scores(registry: Registry, rollup: Rollup, as_of_day: date | None = None, kpi=None) -> pl.DataFrame:
    """Boston-method CityScore for each window: the mean of cityscore metrics' scores.

    For each window (day, week, month, quarter) the latest complete period on or before
    `as_of_day` is used; each metric's score is actual / target (higher is better) or
    target / actual (lower is better), and the CityScore is the mean of those scores.
    """
    fy = registry.city.fiscal_year_start_month
    as_of_day = as_of_day or rollup.last_data_day()
    metrics = [m for m in registry.metrics_tagged("cityscore") if m.id not in rollup.failed_metrics()]
    out = []
    for window in CITYSCORE_WINDOWS:
        if as_of_day is None:
            break
        period = latest_complete_period(as_of_day, window, fy)
        scores = []
        for metric in metrics:
            frame = (kpi or kpi_frame)(registry, rollup, metric, window)
            match = frame.filter(pl.col("period_start") == period)
            score = match["score"][0] if match.height else None
            scores.append({"window": window, "period_start": period, "metric_id": metric.id, "score": score})
        out.append({"window": window, "period_start": period, "label": period_label(period, window, fy),
                    "score": city_score([s["score"] for s in scores]),
                    "metrics_scored": sum(s["score"] is not None for s in scores),
                    "metrics": len(metrics)})
    return pl.DataFrame(out, schema={"window": pl.Utf8, "period_start": pl.Date, "label": pl.Utf8,
                                     "score": pl.Float64, "metrics_scored": pl.Int64, "metrics": pl.Int64})


def biggest_mover(registry: Registry, rollup: Rollup, metric: Metric, grain: str, as_of: date
                  ) -> dict | None:
    """The dimension value whose change vs the prior period explains most of the total change."""
    fy = registry.city.fiscal_year_start_month
    from citystat.core.periods import shift_period
    prior = shift_period(as_of, grain, -1, fy)
    best = None
    for dimension in metric.dimensions:
        series = rollup.series(metric.id, grain, dimension).filter(pl.col("period_start").is_in([as_of, prior]))
        use = "numerator" if metric.is_rate else "value"
        wide = series.pivot(on="period_start", index="dimension_value", values=use)
        now, before = str(as_of), str(prior)
        if now not in wide.columns or before not in wide.columns:
            continue
        wide = wide.with_columns(change=pl.col(now).fill_null(0) - pl.col(before).fill_null(0))
        if wide.is_empty():
            continue
        top = wide.sort(pl.col("change").abs(), descending=True).row(0, named=True)
        if best is None or abs(top["change"]) > abs(best["change"]):
            best = {"dimension": dimension, "dimension_value": top["dimension_value"], "change": top["change"],
                    "current": top[now], "prior": top[before], "measure": use}
    return best


def overview_table(registry: Registry, rows: list[OverviewRow], spark_periods: int = 26) -> pl.DataFrame:
    """The Overview/Department table: one line per KPI, ready to show (values as text)."""
    from citystat.display.charts import format_value

    fy = registry.city.fiscal_year_start_month
    out = []
    for row in rows:
        metric, current = row.metric, row.current or {}
        unit = metric.unit.value
        status = Status(row.status)
        out.append({
            "metric_id": metric.id,
            "department": registry.departments[metric.department].name,
            "kpi": metric.title,
            "status": status.value,
            "status_label": STATUS_LABELS[status],
            "period": period_label(row.period_start, row.grain, fy),
            "value": format_value(current.get("value"), unit),
            "target": format_value(current.get("target"), unit) if current.get("target") is not None else "",
            "vs_prior": _change_text(current.get("value"), current.get("prior_value"), unit),
            "trend": [v for v in row.frame.tail(spark_periods)["value"].to_list() if v is not None],
            "signal": SIGNAL_MARK if row.signal else "",
            "rules": current.get("rules") or "",
            "direction": metric.direction.value,
            "tags": ", ".join(metric.tags),
        })
    return pl.DataFrame(out, schema_overrides={"trend": pl.List(pl.Float64)}) if out else pl.DataFrame()


SIGNAL_MARK = "◆ signal"


def _change_text(value: float | None, prior: float | None, unit: str) -> str:
    from citystat.display.charts import format_value

    if value is None or prior is None:
        return ""
    delta = value - prior
    if unit == "percent":
        return f"{delta * 100:+.1f} pts"
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    return sign + format_value(abs(delta), unit)

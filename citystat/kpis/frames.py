"""From rollup rows to what a stat session looks at: KPI frames, the overview, the CityScore.

Everything here is computed on small aggregates (one row per period), so it is cheap; the
heavy lifting happened in `rollup.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import polars as pl

from citystat.core.cityscore import city_score, metric_score
from citystat.core.compare import compare_with_prior_and_last_year
from citystat.core.periods import latest_complete_period, period_end, period_label, periods_between
from citystat.core.periods import same_period_last_year
from citystat.core.assurance import ASSURANCE_LABELS, assurance_for, describe_assurance
from citystat.core.attribution import Attribution, attribute_change, describe_contribution, percentage_points
from citystat.core.spc import MR_RULE, PointResult, describe_signal, describe_signal_now, format_rules, process_behaviour, signal_now
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


def data_today(registry: Registry) -> date:
    """Today in the city's time zone; for sample data (``city.sample_data_until``) that day.

    Rows dated after it are in the future: they are left out of the default "as of" and of the
    periods a KPI counts as complete (`citystat.checks.health.future_rows` reports them)."""
    if registry.city.sample_data_until is not None:
        return registry.city.sample_data_until
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(registry.city.timezone)).date()


def _day(value) -> date:
    return value.date() if hasattr(value, "date") else value


def _last_present_day(registry: Registry, rollup: Rollup, source_id: str, today: date) -> date | None:
    """The newest day on or before ``today`` with a value of any KPI reading the source (from the
    rollup's daily totals): where a source's data really ends when some rows are future-dated."""
    ids = [m.id for m in registry.metrics.values() if source_id in registry.sources_of(m)]
    days = rollup.frame.filter((pl.col("grain") == "day") & (pl.col("dimension") == "")
                               & pl.col("metric_id").is_in(ids) & (pl.col("period_start") <= today)
                               & pl.col("value").is_not_null())["period_start"]
    return days.max() if days.len() else None


def _last_times(registry: Registry, rollup: Rollup) -> list[tuple[str, date, date]]:
    """(source, first day, last day) of each source; rows dated after today are not data yet, so
    a source with such rows ends on its newest day up to today."""
    cached = getattr(rollup, "_last_times", None)
    today = data_today(registry)
    if cached is not None and cached[0] == today:
        return cached[1]
    out = []
    for row in rollup.extents.iter_rows(named=True):
        if row["last_time"] is None:
            continue
        first, last = _day(row["first_time"]), _day(row["last_time"])
        if last > today:
            last = _last_present_day(registry, rollup, row["source_id"], today) or min(first, today)
        out.append((row["source_id"], first, last))
    rollup._last_times = (today, out)
    return out


def data_end_day(registry: Registry, rollup: Rollup) -> date | None:
    """The newest day with data in any source, rows dated in the future left out."""
    lasts = [last for _, _, last in _last_times(registry, rollup)]
    return max(lasts) if lasts else None


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
    rows = _last_times(registry, rollup)
    days: dict[str, tuple[date, date]] = {}
    cut = data_end_day(registry, rollup)
    for source_id, first, last in rows:
        source = registry.sources.get(source_id)
        allowed = max(source.refresh_interval.days if source else 1, 3)
        last = min(last, cut)
        days[source_id] = (first, cut if (cut - last).days <= allowed else last)
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


def dimension_group(registry: Registry, dimension_value: str | None) -> str:
    """The breakdown group a dimension value belongs to: None and blank values form the one
    group labelled `city.not_recorded_label` ("(not recorded)"), as in the rollup."""
    if dimension_value is None or not str(dimension_value).strip():
        return registry.city.not_recorded_label
    return str(dimension_value)


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
        series = series.filter(pl.col("dimension_value") == dimension_group(registry, dimension_value))
    by_period = {row["period_start"]: row for row in series.iter_rows(named=True)}
    rows = [_period_figures(metric, start, by_period.get(start)) for start in periods]

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
        target = _target(registry, metric, targets, start, grain)
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


def _period_figures(metric: Metric, start: date, row: dict | None) -> dict:
    """A complete period's figures from its rollup row (None: no rows in it, so a count is 0)."""
    is_count = metric.kind == "measure" and metric.measure.agg.value in ("count", "count_distinct", "sum")
    value = _clean(row["value"]) if row else (0.0 if is_count else None)
    return {"period_start": start, "value": value,
            "numerator": _clean(row["numerator"]) if row else None,
            "denominator": _clean(row["denominator"]) if row else None,
            "n": _clean(row["n"]) if row else 0.0}


def _target(registry: Registry, metric: Metric, targets, start: date, grain: str) -> float | None:
    """The target in force for the period starting ``start`` (scaled to the grain), or None."""
    target = target_for(targets, start) if metric.direction != Direction.NEUTRAL else None
    if target is not None:
        target *= target_scale(registry, metric, start, grain)
    return target


def kpi_score(registry: Registry, rollup: Rollup, metric: Metric, grain: str, start: date) -> float | None:
    """The ``score`` of the KPI frame's row for the period ``start`` (None when that period is
    not one of the frame's complete periods), without building the frame: CityScore needs one
    period of each KPI at four grains, and the frame's limits and comparisons of every day of
    the data are most of the work of a cold Overview."""
    window = data_window(registry, rollup, metric)
    if window is None or start not in complete_periods(*window, grain, registry.city.fiscal_year_start_month):
        return None
    found = rollup.series(metric.id, grain, "").filter(pl.col("period_start") == start).rows(named=True)
    row = _period_figures(metric, start, found[-1] if found else None)  # as kpi_frame's by_period: the last
    value = row["value"]
    score = metric_score(value, _target(registry, metric, metric.target_list(), start, grain), metric.direction.value)
    return None if score is None else float(score)  # as stored in the frame's Float64 column


def default_as_of(registry: Registry, rollup: Rollup, grain: str) -> date | None:
    """Start of the latest complete period in the data (rows dated in the future left out)."""
    last = data_end_day(registry, rollup)
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
    last = data_end_day(registry, rollup)
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

    # Worked out once per row: `CityStat.overview` keeps its rows, and every view of the same
    # selection shows the same ones.
    @cached_property
    def signal_text(self) -> str:
        """Short text for a table cell: the signal at this period in words, or empty."""
        return signal_cell(self.frame, self.metric.direction.value) if self.current else ""

    @cached_property
    def assurance_label(self) -> str:
        return assurance_label(self.frame, self.metric) if self.current else "Not enough data"

    @cached_property
    def signal_sentence(self) -> str:
        """`signal_sentence` of the row's frame: the signal at this period in a sentence."""
        return signal_sentence(self.frame, self.metric.direction.value, self.grain)

    @cached_property
    def signal_headline(self) -> str:
        """`signal_headline` of the row's frame: the main signal at this period, or empty."""
        return signal_headline(self.frame, self.metric.direction.value, self.grain)


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


def city_scores(registry: Registry, rollup: Rollup, as_of_day: date | None = None) -> pl.DataFrame:
    """Boston-method CityScore for each window: the mean of cityscore metrics' scores.

    For each window (day, week, month, quarter) the latest complete period on or before
    `as_of_day` is used; each metric's score is actual / target (higher is better) or
    target / actual (lower is better), and the CityScore is the mean of those scores.
    """
    fy = registry.city.fiscal_year_start_month
    as_of_day = as_of_day or data_end_day(registry, rollup)
    metrics = [m for m in registry.metrics_tagged("cityscore") if m.id not in rollup.failed_metrics()]
    out = []
    for window in CITYSCORE_WINDOWS:
        if as_of_day is None:
            break
        period = latest_complete_period(as_of_day, window, fy)
        scores = []
        for metric in metrics:
            score = kpi_score(registry, rollup, metric, window, period)
            scores.append({"window": window, "period_start": period, "metric_id": metric.id, "score": score})
        out.append({"window": window, "period_start": period, "label": period_label(period, window, fy),
                    "score": city_score([s["score"] for s in scores]),
                    "metrics_scored": sum(s["score"] is not None for s in scores),
                    "metrics": len(metrics)})
    return pl.DataFrame(out, schema={"window": pl.Utf8, "period_start": pl.Date, "label": pl.Utf8,
                                     "score": pl.Float64, "metrics_scored": pl.Int64, "metrics": pl.Int64})


# --- signals, assurance and change attribution, in words -----------------------------------------
#
# One place turns the core maths into the sentences every view shows (Metric card, tables, the
# session agenda, the packet), so they agree on what "signal" means and say it the same way.

GRAIN_NOUNS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "fiscal_year": "year"}


def chart_points(frame: pl.DataFrame) -> list[PointResult]:
    """The KPI frame's process-behaviour points (as `process_behaviour` returned them)."""
    out = []
    for row in frame.iter_rows(named=True):
        rules = frozenset(int(r) for r in (row.get("rules") or "").split(",") if r.strip())
        out.append(PointResult(value=row["value"], phase=row.get("phase") or 0, centre=row.get("centre"),
                               lower=row.get("lower_limit"), upper=row.get("upper_limit"), mr=row.get("mr"),
                               mr_upper=row.get("mr_upper"), rules=rules, signal=bool(row.get("signal")),
                               in_baseline=False))
    return out


def _signal_labels(frame: pl.DataFrame, grain: str) -> list[str]:
    from citystat.display.format import format_day

    if grain in ("day", "week"):
        return [format_day(d) for d in frame["period_start"].to_list()]
    return frame["label"].to_list()


def signal_sentence(frame: pl.DataFrame, direction: str, grain: str) -> str:
    """Whether the KPI signals at the frame's last period, in words: which way, since when, and
    whether that is better or worse for the KPI ("8 weeks in a row worse than the usual level
    since 14 Sep 2026 — a real change, not noise"); else "No signal this week" and the latest
    recent signal. ``frame`` is the KPI frame up to the period being reviewed."""
    if frame.is_empty():
        return "No values to judge yet."
    if frame["centre"].drop_nulls().is_empty():
        return "No process limits yet: too few periods to tell a real change from noise."
    state = signal_now(chart_points(frame), direction)
    return describe_signal_now(state, _signal_labels(frame, grain), GRAIN_NOUNS.get(grain, grain))


def signal_headline(frame: pl.DataFrame, direction: str, grain: str) -> str:
    """The main signal at the frame's last period in one sentence (empty when none): the agenda's
    reason, where the full `signal_sentence` would repeat itself."""
    if frame.is_empty() or frame["centre"].drop_nulls().is_empty():
        return ""
    state = signal_now(chart_points(frame), direction)
    if not state.signalling:
        return ""
    return describe_signal(state.now[0], _signal_labels(frame, grain), GRAIN_NOUNS.get(grain, grain), state.latest)


_SHORT = {1: "outside the process limits", 2: "a run on one side of the usual level",
          3: "close to a process limit", MR_RULE: "a sudden jump"}


def signal_cell(frame: pl.DataFrame, direction: str) -> str:
    """A table cell for the signal at the frame's last period: "Worse: a run …", or empty."""
    if frame.is_empty():
        return ""
    state = signal_now(chart_points(frame), direction)
    if not state.signalling:
        return ""
    head = state.now[0]
    verdict = {"good": "Better", "bad": "Worse", "neutral": "Changed"}[state.verdict or "neutral"]
    text = f"{verdict}: {_SHORT[head.rule]}"
    if head.rule in (1, 2) and head.points > 1:
        text += f" ({head.points} in a row)"
    return text


PROCESS_CHANGED = "process_changed"
ASSURANCE_TEXT = {**ASSURANCE_LABELS, PROCESS_CHANGED: "Not assured: the process has changed"}
_CHANGED_SENTENCE = ("Not assured: the latest period is outside the process limits or in a sustained run, so "
                     "the process has changed since its limits were set; the limits (and the assurance they "
                     "give) no longer describe it. Once the change is confirmed, record a process change to "
                     "recompute them.")


def assurance_of(row: dict | None, metric: Metric) -> str:
    """The assurance key (`citystat.core.assurance`) for a KPI frame row: can the process as it
    runs meet the target in force for that period? When the row itself is outside the limits or
    in a run (rules 1 and 2), the limits describe a process that no longer runs: no assurance."""
    if not row:
        return "not_enough_data"
    rules = {r.strip() for r in (row.get("rules") or "").split(",")}
    if row.get("signal") and rules & {"1", "2"} and metric.direction.value != "neutral" \
            and row.get("target") is not None:
        return PROCESS_CHANGED
    non_negative = metric.unit in NON_NEGATIVE_UNITS
    return assurance_for(row.get("lower_limit"), row.get("upper_limit"), row.get("target"),
                         metric.direction.value, floor=0.0 if non_negative else None,
                         ceiling=1.0 if metric.unit == Unit.PERCENT else None)


def assurance_label(frame: pl.DataFrame, metric: Metric) -> str:
    """Short assurance text for the frame's last period ("Consistently misses target")."""
    return ASSURANCE_TEXT[assurance_of(frame.row(-1, named=True) if frame.height else None, metric)]


def assurance_sentence(row: dict | None, metric: Metric) -> str:
    kind = assurance_of(row, metric)
    return _CHANGED_SENTENCE if kind == PROCESS_CHANGED else describe_assurance(kind)


ATTRIBUTION_KIND = {"count": "count", "sum": "sum", "avg": "avg", "median": "median",
                    "percentile": "percentile", "min": "min", "max": "max", "count_distinct": "count_distinct"}
COMPARISONS = {"prior": "since the prior period", "last_year": "since the same period last year"}


def attribution_kind(registry: Registry, metric: Metric) -> str:
    """How a KPI's change splits over a dimension (`citystat.core.attribution` kinds)."""
    if metric.is_rate:
        return "rate"
    if metric.kind == "measure":
        return ATTRIBUTION_KIND[metric.measure.agg.value]
    return "sum" if is_additive(registry, metric) else "median"


@dataclass(frozen=True)
class ChangeExplanation:
    """A KPI's change between two periods, split by one dimension, with its sentence."""

    dimension: str
    comparison: str          # "prior" or "last_year"
    before: date
    after: date
    attribution: Attribution
    sentence: str
    table: pl.DataFrame      # one row per value: figures before/after, own change, contribution

    @property
    def heading(self) -> str:
        from citystat.display.format import human_label

        return f"By {human_label(self.dimension).lower()}, {COMPARISONS[self.comparison]}"


def _figures(series: pl.DataFrame, period: date, kind: str) -> dict:
    out = {}
    for row in series.filter(pl.col("period_start") == period).iter_rows(named=True):
        if kind == "rate":
            figure = None if row["denominator"] is None else (row["numerator"] or 0.0, row["denominator"])
        elif kind == "avg":
            figure = None if row["value"] is None or not row["n"] else (row["value"] * row["n"], row["n"])
        else:
            figure = _clean(row["value"])
        out[row["dimension_value"]] = figure
    return out


def _noun(registry: Registry, metric: Metric) -> str:
    """What a rate's denominator counts, from its source's title ("311 service requests" ->
    "service requests": a leading number would read as part of the count)."""
    source = registry.sources.get(metric.source) if metric.source else None
    words = (source.title or "").lower().split() if source else []
    while words and words[0].isdigit():
        words.pop(0)
    return " ".join(words) or "records"


def explain_change(registry: Registry, rollup: Rollup, metric: Metric, grain: str, period: date,
                   dimension: str, comparison: str = "prior", kpi=None) -> ChangeExplanation | None:
    """Each value of ``dimension``'s contribution to the KPI's change ``comparison`` ("prior" or
    "last_year"), adding up to the total change, and the direction-aware sentence naming the
    value that drove it (never an improvement as the cause of a worsening)."""
    from citystat.core.attribution import explain_change as explain
    from citystat.core.periods import shift_period
    from citystat.display.format import change_amount, format_value

    fy = registry.city.fiscal_year_start_month
    before = shift_period(period, grain, -1, fy) if comparison == "prior" else same_period_last_year(period, grain, fy)
    kind = attribution_kind(registry, metric)
    series = rollup.series(metric.id, grain, dimension)
    old, new = _figures(series, before, kind), _figures(series, period, kind)
    if not old or not new:  # nothing to compare with (e.g. no data a year before)
        return None
    totals = {}
    if kind not in ("count", "sum", "rate", "avg"):
        frame = (kpi or kpi_frame)(registry, rollup, metric, grain)
        values = {r["period_start"]: r["value"] for r in frame.iter_rows(named=True)}
        totals = {"total_before": values.get(before), "total_after": values.get(period)}
    empty = registry.city.not_recorded_label
    att = attribute_change(kind, old, new, empty_label=empty, **totals)
    unit = metric.unit.value
    words = dict(kpi=_kpi_noun(kind, metric), label=lambda v: value_subject(dimension, v, empty),
                 fmt=lambda x: format_value(x, unit),
                 fmt_change=(percentage_points if unit == "percent" else lambda d: change_amount(d, unit)[0]),
                 noun=_noun(registry, metric))
    sentence = _total_sentence(att, metric, comparison) + " " + explain(att, metric.direction.value, **words) + "."
    against = _against(att)
    if against is not None:
        sentence += " Pulling the other way: " + describe_contribution(att, against, **words) + "."
    return ChangeExplanation(dimension=dimension, comparison=comparison, before=before, after=period,
                             attribution=att, sentence=sentence, table=attribution_table(att))


def value_subject(dimension: str, value: str, empty: str | None = None) -> str:
    """A dimension value as the subject of a sentence: "District D4", "Phone channel"."""
    from citystat.display.format import NOT_RECORDED, human_label

    if value in (empty or NOT_RECORDED, NOT_RECORDED):
        return f"{human_label(dimension)} {value}"
    if value.islower() or "_" in value:
        return f"{human_label(value)} {human_label(dimension).lower()}"
    return f"{human_label(dimension)} {value}"


def _total_sentence(att: Attribution, metric: Metric, comparison: str) -> str:
    from citystat.display.format import change_text, format_value

    unit = metric.unit.value
    when = COMPARISONS[comparison]
    when = when[0].upper() + when[1:]
    if att.total_change is None:
        return f"{when}: not known."
    return (f"{when}: {change_text(att.total_change, unit, metric.direction.value, arrow=False)}, from "
            f"{format_value(att.total_before, unit)} to {format_value(att.total_after, unit)}.")


def _against(att: Attribution):
    """The value that pulled hardest against the total change, if any (decomposable KPIs)."""
    change = att.total_change
    if not att.decomposable or change is None or att.unchanged:
        return None
    against = [c for c in att.contributions if c.contribution is not None and c.contribution * change < 0]
    return max(against, key=lambda c: abs(c.contribution), default=None)


def _kpi_noun(kind: str, metric: Metric) -> str:
    if kind == "rate":
        return "the rate"
    if kind == "avg":
        return "the average"
    if kind in ("count", "sum"):
        return "the total"
    return f"the {kind}" if kind in ("median", "percentile") else "the KPI"


def attribution_table(att: Attribution) -> pl.DataFrame:
    """One row per dimension value, largest part of the change first (numbers, not text)."""
    rows = [{"dimension_value": c.value, "before": c.before, "after": c.after, "own_change": c.own_change,
             "contribution": c.contribution, "rate_effect": c.rate_effect, "mix_effect": c.mix_effect,
             "denominator": c.denominator_after} for c in att.contributions]
    schema = {"dimension_value": pl.Utf8, "before": pl.Float64, "after": pl.Float64, "own_change": pl.Float64,
              "contribution": pl.Float64, "rate_effect": pl.Float64, "mix_effect": pl.Float64,
              "denominator": pl.Float64}
    frame = pl.DataFrame(rows, schema=schema)
    key = "contribution" if att.decomposable else "own_change"
    return frame.sort(pl.col(key).abs(), descending=True, nulls_last=True)


def change_explanations(registry: Registry, rollup: Rollup, metric: Metric, grain: str, period: date,
                        kpi=None) -> list[ChangeExplanation]:
    """Every dimension, vs the prior period and vs the same period last year."""
    out = []
    for comparison in COMPARISONS:
        for dimension in metric.dimensions:
            found = explain_change(registry, rollup, metric, grain, period, dimension, comparison, kpi)
            if found is not None:
                out.append(found)
    return out


def main_explanation(explanations: list[ChangeExplanation], comparison: str = "prior") -> ChangeExplanation | None:
    """The dimension whose leading driver moved the KPI most (for the agenda's headline)."""
    from citystat.core.attribution import drivers

    best, size = None, -1.0
    for e in explanations:
        if e.comparison != comparison:
            continue
        found = drivers(e.attribution)
        key = 0.0
        if found:
            c = found[0]
            key = abs((c.contribution if e.attribution.decomposable else c.own_change) or 0.0)
        if key > size:
            best, size = e, key
    return best


def overview_table(registry: Registry, rows: list[OverviewRow], spark_periods: int = 26) -> pl.DataFrame:
    """The Overview/Department table: one line per KPI, ready to show (values as text).

    ``metric_id`` and ``status`` stay machine keys (for clicks and colours); every other
    column is text for people, formatted by `citystat.display.format`.
    """
    from citystat.display.format import change_text, format_value

    fy = registry.city.fiscal_year_start_month
    out = []
    for row in rows:
        metric, current = row.metric, row.current or {}
        unit = metric.unit.value
        direction = metric.direction.value
        status = Status(row.status)
        out.append({
            "metric_id": metric.id,
            "department": registry.departments[metric.department].name,
            "kpi": metric.title,
            "status": status.value,
            "status_label": STATUS_LABELS[status],
            "period": period_label(row.period_start, row.grain, fy),
            "value": format_value(current.get("value"), unit),
            "target": format_value(current.get("target"), unit) if current.get("target") is not None else "none",
            "vs_prior": change_text(current.get("change_vs_prior"), unit, direction),
            "vs_last_year": change_text(current.get("change_vs_last_year"), unit, direction),
            "trend": [v for v in row.frame.tail(spark_periods)["value"].to_list() if v is not None],
            "signal": row.signal_text,
            "assurance": row.assurance_label,
            "direction": direction,
            "tags": ", ".join(metric.tags),
        })
    return pl.DataFrame(out, schema_overrides={"trend": pl.List(pl.Float64)}) if out else pl.DataFrame()

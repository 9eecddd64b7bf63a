"""The public performance page's view model: what residents see, in plain language.

Why a separate model: the public page must never show internal material. Building it from
an explicit allow-list of fields (title, plain description, value, target, status, trend)
means narratives, commitments, owner names, process-behaviour rules and sources that are
not public cannot leak in by accident when someone adds a column to an internal view.

- Only metrics tagged ``public`` are shown.
- Values computed from a ``sensitive`` source (about people) go through small-cell
  suppression: counts of 1..threshold are hidden (with complementary suppression across the
  series, whose sum a reader could know), rates whose numerator or denominator is hidden are
  hidden too, and other statistics (medians, averages) are hidden when they rest on
  1..threshold records.
- Pure of Streamlit; the page only draws what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import altair as alt
import polars as pl

from citystat.display.charts import axis_format, format_value
from citystat.core.periods import latest_complete_period, period_label
from citystat.core.status import Status
from citystat.kpis.frames import data_end_day, is_additive
from citystat.registry.models import Metric
from citystat.publish.suppression import is_primary, suppress_long, suppress_rates, suppression_note

if TYPE_CHECKING:
    from citystat.api import CityStat
    from citystat.checks.quality import Freshness

TREND_PERIODS = 26
PUBLIC_TAG = "public"

STATUS_PHRASES = {
    Status.ON_TRACK: "on track",
    Status.AT_RISK: "close to the target but not meeting it",
    Status.OFF_TRACK: "not on track",
    Status.NO_DATA: "not enough data to judge",
    Status.NO_TARGET: "watched, with no target",
}
STATUS_BADGES = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "Nearly there",
    Status.OFF_TRACK: "Not on track",
    Status.NO_DATA: "Not enough data",
    Status.NO_TARGET: "No target",
}
SUPPRESSED_TEXT = "not shown (too few people to publish)"


@dataclass(frozen=True)
class PublicKpi:
    """One KPI as residents see it. Every field here is safe to publish."""

    metric_id: str
    title: str
    department: str
    meaning: str
    unit: str
    direction: str
    period: str
    value: float | None
    target: float | None
    value_text: str
    target_text: str
    status: str
    status_badge: str
    sentence: str
    trend: pl.DataFrame           # label, period_start, value, target (suppressed where needed)
    stale: str = ""               # e.g. "Data for this measure is out of date (last updated ...)"
    privacy_note: str = ""        # the suppression note when the KPI reads data about people


def better_text(direction: str) -> str:
    return {"higher": "Higher is better.", "lower": "Lower is better."}.get(direction, "")


def kpi_sentence(title: str, value_text: str, period: str, target_text: str, status: str) -> str:
    """One plain sentence for residents.

    >>> kpi_sentence("Potholes repaired on time", "88.3%", "Week of 9 Nov 2026", "85.0%", "on_track")
    'Potholes repaired on time: 88.3% in the week of 9 Nov 2026, target 85.0% — on track.'
    """
    when = "the w" + period[1:] if period.startswith("Week") else period
    target_part = f", target {target_text}" if target_text else ""
    return f"{title}: {value_text} in {when}{target_part} — {STATUS_PHRASES[Status(status)]}."


def suppress_series(frame: pl.DataFrame, metric: Metric, *, sensitive: bool, registry,
                    threshold: int) -> tuple[pl.DataFrame, bool]:
    """Apply small-cell suppression to a KPI frame's `value` when the metric reads people data.

    Returns (frame, suppression applied). Rates use numerator and denominator; additive counts
    use the value itself; anything else uses `n`, the number of records behind the value.
    A sensitive KPI with none of those is hidden entirely: it cannot be checked.
    """
    if not sensitive or frame.is_empty():
        return frame, False
    labelled = frame.with_columns(pl.col("label").alias("__label"))
    has_rate = frame["numerator"].drop_nulls().len() > 0 and frame["denominator"].drop_nulls().len() > 0
    if has_rate:
        cleaned = labelled.with_columns(pl.col("numerator").fill_null(0), pl.col("denominator").fill_null(0))
        out = suppress_rates(cleaned, rate="value", label_column="__label", threshold=threshold)
    elif metric.kind == "measure" and is_additive(registry, metric):
        out = suppress_long(labelled.with_columns(pl.col("value").round(0)), count_column="value",
                            label_column="__label", threshold=threshold)
        out = out.with_columns(pl.when(pl.col("suppressed")).then(None)
                               .otherwise(frame["value"]).alias("value"))
    elif frame["n"].drop_nulls().len() > 0:
        hide = [n is None or is_primary(int(n), threshold, True) for n in frame["n"].to_list()]
        out = labelled.with_columns(
            pl.when(pl.Series(hide)).then(None).otherwise(pl.col("value")).alias("value"))
    else:
        out = labelled.with_columns(pl.lit(None, dtype=pl.Float64).alias("value"))
    return out.drop([c for c in out.columns if c not in frame.columns]), True


def _stale_text(stat: "CityStat", metric: Metric, stale: dict[str, "Freshness"]) -> str:
    from citystat.checks.health import last_data_times
    from citystat.display.format import format_date, refresh_words

    names = [s for s in stat.registry.sources_of(metric) if s in stale]
    if not names:
        return ""
    lasts = last_data_times(stat)
    parts = []
    for s in names:
        source = stat.registry.sources[s]
        last = lasts.get(s)
        parts.append(f"{(source.title or s).lower()} should be updated {refresh_words(source.refresh)} but its "
                     f"newest data is from {format_date(last.date()) if last else 'an unknown date'}")
    return f"The data behind this measure is out of date ({'; '.join(parts)}), so the latest figures may be missing."


def public_data_note(stat: "CityStat") -> str:
    """When the figures' data ends, for residents (and that it is sample data, if so)."""
    from citystat.display.format import format_date

    end = data_end_day(stat.registry, stat.rollup)
    if end is None:
        return "No data has been published yet."
    text = f"Figures use city data up to {format_date(end)}."
    if stat.registry.city.sample_data_until is not None:
        text += " This is sample data made up for demonstration, not real city figures."
    return text


def public_metrics(stat: "CityStat") -> list[Metric]:
    failed = stat.rollup.failed_metrics()
    return [m for m in stat.registry.metrics_tagged(PUBLIC_TAG) if m.id not in failed]


def public_kpi(stat: "CityStat", metric: Metric, as_of_day: date, stale: dict[str, "Freshness"]) -> PublicKpi:
    """One public KPI at its own grain, for its latest period complete on `as_of_day`."""
    registry = stat.registry
    fy = registry.city.fiscal_year_start_month
    grain = metric.grain
    period_start = latest_complete_period(as_of_day, grain, fy)
    frame = stat.kpi(metric.id, grain).filter(pl.col("period_start") <= period_start)
    sensitive = any(registry.sources[s].sensitive for s in registry.sources_of(metric) if s in registry.sources)
    threshold = registry.city.suppression_threshold
    frame, suppressed = suppress_series(frame, metric, sensitive=sensitive, registry=registry,
                                        threshold=threshold)
    trend = frame.tail(TREND_PERIODS).select("label", "period_start", "value", "target")
    current = frame.row(-1, named=True) if frame.height and frame["period_start"][-1] == period_start else None
    unit = metric.unit.value
    value = current["value"] if current else None
    target = current["target"] if current else None
    if current is None:
        status = str(Status.NO_DATA)
    elif value is None:
        status = str(Status.NO_DATA)   # hidden for privacy: do not reveal on/off track either
    else:
        status = current["status"]
    hidden = suppressed and current is not None and value is None
    value_text = SUPPRESSED_TEXT if hidden else format_value(value, unit)
    target_text = format_value(target, unit) if target is not None else ""
    period = period_label(period_start, grain, fy)
    department = registry.departments[metric.department].name if metric.department in registry.departments else ""
    return PublicKpi(
        metric_id=metric.id, title=metric.title, department=department,
        meaning=" ".join(part for part in (metric.description.strip(), better_text(metric.direction.value)) if part),
        unit=unit, direction=metric.direction.value, period=period,
        value=value, target=target, value_text=value_text, target_text=target_text,
        status=status, status_badge=STATUS_BADGES[Status(status)],
        sentence=kpi_sentence(metric.title, value_text, period, target_text, status),
        trend=trend, stale=_stale_text(stat, metric, stale),
        privacy_note=suppression_note(threshold) if suppressed else "")


def public_kpis(stat: "CityStat", as_of_day: date | None = None) -> list[PublicKpi]:
    """Every public KPI as of `as_of_day` (default: the last day with data)."""
    from citystat.checks.health import stale_sources

    as_of_day = as_of_day or data_end_day(stat.registry, stat.rollup)
    if as_of_day is None:
        return []
    stale = stale_sources(stat)
    return [public_kpi(stat, metric, as_of_day, stale) for metric in public_metrics(stat)]


def public_city_score(stat: "CityStat", as_of_day: date | None = None) -> list[dict]:
    """The CityScore per window as plain sentences (score 1.00 = on target)."""
    out = []
    for row in stat.city_scores(as_of_day).iter_rows(named=True):
        if row["window"] not in ("week", "month") or row["score"] is None:
            continue
        score = row["score"]
        verdict = "better than target" if score >= 1.0 else "below target"
        out.append({"window": row["window"], "label": row["label"], "score": score,
                    "sentence": f"{row['label']}: {score:.2f} — {verdict} on average "
                                f"({row['metrics_scored']} measures)"})
    return out


def public_chart(kpi: PublicKpi) -> alt.LayerChart:
    """A simple trend for residents: the value as a line and the target as a dashed line."""
    data = kpi.trend.select("period_start", "label", "value", "target").to_pandas()
    fmt = axis_format(kpi.unit)
    base = alt.Chart(data).encode(x=alt.X("period_start:T", title=None,
                                          axis=alt.Axis(format="%b %Y", labelOverlap=True, tickCount=5)))
    line = base.mark_line(point=True, color="#1F4E79").encode(
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=fmt)),
        tooltip=[alt.Tooltip("label:N", title="Period"), alt.Tooltip("value:Q", title="Value", format=fmt)])
    layers = [line]
    if kpi.trend["target"].drop_nulls().len():
        layers.append(base.mark_line(strokeDash=[6, 4], color="#333333").encode(
            y="target:Q", tooltip=[alt.Tooltip("target:Q", title="Target", format=fmt)]))
    return alt.layer(*layers).properties(height=160)


def public_chart_summary(kpi: PublicKpi) -> str:
    """The public chart's text alternative, in the page's plain words: "Potholes repaired on
    time, Week of 18 May 2026 to Week of 9 Nov 2026: 88.3% in the latest period (Week of
    9 Nov 2026), target 85.0%."."""
    trend = kpi.trend.sort("period_start")
    if trend.is_empty():
        return f"{kpi.title}: no data to chart."
    labels = trend.get_column("label").to_list()
    return (f"{kpi.title}, {labels[0]} to {labels[-1]}: {kpi.value_text} in the latest period ({kpi.period})"
            + (f", target {kpi.target_text}" if kpi.target_text else "") + ".")


def public_trend_rows(kpi: PublicKpi) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The public chart's data as (columns, rows), newest first; hidden values say so."""
    rows = [(row["label"], SUPPRESSED_TEXT if row["value"] is None and kpi.privacy_note else format_value(row["value"], kpi.unit),
             format_value(row["target"], kpi.unit) if row["target"] is not None else "")
            for row in kpi.trend.sort("period_start", descending=True).iter_rows(named=True)]
    return ["Period", "Value", "Target"], rows

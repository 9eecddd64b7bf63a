"""Altair chart builders: plain functions from a KPI frame to a chart.

The builders take Polars frames shaped like the KPI frame (docs/ARCHITECTURE.md) and return
Altair charts that serialise with ``.to_dict()``, render in Streamlit (``st.altair_chart``) and
export to SVG/PNG for the briefing packet (vl-convert). They import no Streamlit, so they are
tested through the Vega-Lite spec.

Design choices, for the stat-session screen:
* signals (Wheeler rules) are shown with a distinct colour *and* shape, so they read in
  greyscale and for colour-blind viewers, and their tooltip names the rule;
* the target is a step line, because targets change on dates and hold until the next one;
* the centre line and natural process limits are dashed and break between phases, so a
  recomputed baseline is visible as a jump, not a slope;
* value formats follow the metric's unit everywhere (axis, tooltip, tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import altair as alt
import polars as pl

from citystat.core.spc import RULE_DESCRIPTIONS, verdict_for
from citystat.core.status import STATUS_COLOURS, STATUS_LABELS, Status
from citystat.display.format import EM_DASH, UNITS, change_text, format_value  # noqa: F401 (format_value re-exported)

# d3 formats for tooltips and tables (precise) and axes (short).
_UNIT_FORMATS = {
    "percent": ".1%",
    "count": ",.0f",
    "days": ",.1f",
    "hours": ",.1f",
    "minutes": ",.1f",
    "number": ",.2~f",
    "currency": "$,.0f",
    "ug_dl": ",.1f",
    "ug_m3": ",.1f",
    "ratio": ",.2f",
}
_AXIS_FORMATS = {**_UNIT_FORMATS, "percent": ".0%", "number": ",~s", "count": ",~s"}
_UNIT_TITLES = {
    "percent": "%",
    "count": "count",
    "days": "days",
    "hours": "hours",
    "minutes": "minutes",
    "number": "",
    "currency": "$",
    "ug_dl": "µg/dL",
    "ug_m3": "µg/m³",
    "ratio": "ratio",
}

VALUE_COLOUR = "#1F4E79"  # dark blue: the series itself
SIGNAL_COLOUR = "#8E2C84"  # reddish purple: not a status colour, so a signal never reads as "red"
TARGET_COLOUR = "#333333"
LIMIT_COLOUR = "#7F7F7F"
ANNOTATION_COLOUR = "#555555"

# One colour scale shared by every layer so the legend explains the lines.
BETTER_SIGNAL_COLOUR = "#0072B2"  # Okabe-Ito blue: a signal the good way (the legend says so in words)
_SERIES_DOMAIN = ["Value", "Signal: worse", "Signal: better", "Signal", "Target"]
_SERIES_RANGE = [VALUE_COLOUR, SIGNAL_COLOUR, BETTER_SIGNAL_COLOUR, SIGNAL_COLOUR, TARGET_COLOUR]
# The process lines are told apart by their stroke (solid centre, dashed limits), with a legend.
_LINE_DOMAIN = ["Centre line", "Natural process limits"]
_LINE_DASHES = [[1, 0], [4, 3]]
_POINT_WORDS = {1: "outside the natural process limits", 2: "in a run of 8 or more on one side of the centre line",
                3: "3 of 4 periods beyond the half-way line to a limit", 4: "a sudden jump from the period before"}


def _point_signal(rules: str | None, value, centre, previous, direction: str | None) -> tuple[str, str]:
    """(legend series, tooltip sentence) of a signalling point: which rules, and better or worse."""
    fired = sorted(int(r) for r in str(rules or "").split(",") if r.strip())
    words = "; ".join(_POINT_WORDS.get(r, f"rule {r}") for r in fired) or "a signal"
    verdict = "neutral"
    if direction in ("higher", "lower") and value is not None:
        if any(r != 4 for r in fired) and centre is not None:
            way = "above" if value > centre else "below"
        else:
            way = "up" if previous is not None and value > previous else "down"
        verdict = verdict_for(way, direction)
    if verdict == "neutral":
        return "Signal", words[0].upper() + words[1:]
    word = "better" if verdict == "good" else "worse"
    return f"Signal: {word}", f"{words[0].upper() + words[1:]} — {word} than routine variation"


def _check_unit(unit: str) -> None:
    if unit not in _UNIT_FORMATS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")


def unit_format(unit: str) -> str:
    """The d3 format string for values in ``unit`` (tooltips, tables): percent -> ".1%"."""
    _check_unit(unit)
    return _UNIT_FORMATS[unit]


def axis_format(unit: str) -> str:
    """A shorter d3 format for axis labels (85% rather than 85.3%, 12k rather than 12,000)."""
    _check_unit(unit)
    return _AXIS_FORMATS[unit]


def _rules_text(rules: str | None) -> str | None:
    if not rules:
        return None
    parts = [int(r) for r in str(rules).split(",") if r.strip()]
    return "; ".join(_POINT_WORDS.get(r, RULE_DESCRIPTIONS.get(r, "a signal")) for r in parts) or None


def _phases(frame: pl.DataFrame) -> list[int | None]:
    """A phase number per row: it changes whenever the limits change (a phase break), so the
    dashed limit lines can be drawn per phase and break between them."""
    cols = [frame.get_column(c).to_list() if c in frame.columns else [None] * frame.height
            for c in ("centre", "lower_limit", "upper_limit")]
    phases: list[int | None] = []
    phase, previous = -1, None
    for key in zip(*cols):
        if key[0] is None:
            phases.append(None)
            previous = None
            continue
        if key != previous:
            phase += 1
            previous = key
        phases.append(phase)
    return phases


def _chart_data(frame: pl.DataFrame, unit: str, direction: str | None = None) -> pl.DataFrame:
    """The KPI frame plus the display columns the layers need."""
    if "period_start" not in frame.columns or "value" not in frame.columns:
        raise ValueError(
            f"chart frame needs columns period_start and value; got {', '.join(frame.columns)}"
        )
    data = frame.sort("period_start")
    n = data.height

    def column(name: str, default=None) -> list:
        return data.get_column(name).to_list() if name in data.columns else [default] * n

    statuses = column("status")
    rules = column("rules")
    signals = column("signal", False)
    values = column("value")
    centres = column("centre")
    marks = [_point_signal(r, v, c, values[i - 1] if i else None, direction) if s else (None, None)
             for i, (r, s, v, c) in enumerate(zip(rules, signals, values, centres))]
    reasons = [m[1] for m in marks]
    targets = column("target")
    labels = column("period_label") if "period_label" in data.columns else column("label")
    if all(label is None for label in labels):
        labels = [f"{d.day} {d:%b %Y}" if isinstance(d, date) else None for d in column("period_start")]
    return pl.DataFrame(
        {
            "period_start": column("period_start"),
            "period": labels,
            "value": values,
            "value_text": [format_value(v, unit) for v in values],
            "target": targets,
            "target_text": [format_value(t, unit) for t in targets],
            "status_label": [STATUS_LABELS[Status(s)] if s else None for s in statuses],
            "centre": column("centre"),
            "lower_limit": column("lower_limit"),
            "upper_limit": column("upper_limit"),
            "phase": column("phase") if "phase" in data.columns else _phases(data),
            "signal": [bool(s) for s in signals],
            "signal_reason": reasons,
            "signal_series": [m[0] for m in marks],
        },
        schema_overrides={
            "period": pl.String,
            "value": pl.Float64,
            "target": pl.Float64,
            "status_label": pl.String,
            "centre": pl.Float64,
            "lower_limit": pl.Float64,
            "upper_limit": pl.Float64,
            "phase": pl.Int64,
            "signal_reason": pl.String,
            "signal_series": pl.String,
        },
    )


def _series(chart: alt.Chart, name: str) -> alt.Chart:
    """Tag a layer's rows with the series ``name`` so one shared colour scale (and legend)
    explains every line; the colour is fixed by the scale's range, not by the data."""
    return chart.transform_calculate(series=f"'{name}'")  # name is one of _SERIES_DOMAIN


def _series_colour(present: Sequence[str]) -> alt.Color:
    """The shared colour scale, listing only the series this chart draws (a legend entry for
    a target that does not exist would mislead)."""
    domain = [name for name in _SERIES_DOMAIN if name in present]
    colours = [_SERIES_RANGE[_SERIES_DOMAIN.index(name)] for name in domain]
    return alt.Color(
        "series:N",
        scale=alt.Scale(domain=domain, range=colours),
        legend=alt.Legend(title=None, orient="bottom"),
    )


def trend_chart(
    frame: pl.DataFrame,
    *,
    title: str,
    unit: str,
    annotations: Sequence[tuple[date, str]] = (),
    height: int = 280,
    direction: str | None = None,
) -> alt.LayerChart:
    """The metric over time: value, dated target, XmR centre and limits, signals, annotations.

    ``direction`` (higher / lower is better) lets signal points say whether they are better or
    worse, in the legend and tooltip, not by colour alone.

    ``frame`` is a KPI frame (period_start, value and, when known, target, status, centre,
    lower_limit, upper_limit, signal, rules, optional phase and period_label or label; without
    a phase column, a phase starts wherever the limits change). Each layer has a name
    (value_line, value_points, signal_points, target_layer, centre_layer, lower_limit_layer,
    upper_limit_layer, annotation_rules, annotation_labels) so tests and the packet can find
    them; the target and limit layers are present only when the frame has such values.
    """
    _check_unit(unit)
    data = _chart_data(frame, unit, direction)
    value_axis = alt.Axis(format=axis_format(unit), title=_UNIT_TITLES[unit] or None)
    x = alt.X("period_start:T", title=None, axis=alt.Axis(labelAngle=0, grid=False, format="%b %Y", labelOverlap=True))
    # Not zero-based: a process-behaviour chart is about variation around the centre line,
    # which a 0..100 % axis flattens into a ribbon.
    y = alt.Y("value:Q", axis=value_axis, scale=alt.Scale(zero=False))
    tooltip = [
        alt.Tooltip("period:N", title="Period"),
        alt.Tooltip("value_text:N", title="Value"),
        alt.Tooltip("target_text:N", title="Target"),
        alt.Tooltip("status_label:N", title="Status"),
    ]
    base = alt.Chart(data)
    has_value = alt.datum.value != None  # noqa: E711 -- Vega expression, not Python
    layers: list[alt.Chart] = []

    has_limits = data.get_column("centre").drop_nulls().len() > 0
    has_target = data.get_column("target").drop_nulls().len() > 0
    has_signal = data.filter(pl.col("signal") & pl.col("value").is_not_null()).height > 0
    present = ["Value"]
    if has_signal:
        shown = data.filter(pl.col("signal") & pl.col("value").is_not_null())["signal_series"].unique().to_list()
        present += [name for name in _SERIES_DOMAIN if name in shown]
    present += ["Target"] if has_target else []
    colour = _series_colour(present)

    if has_limits:
        # a solid centre line and dashed limits, explained by their own legend (stroke symbols)
        dash = alt.StrokeDash("line:N", scale=alt.Scale(domain=_LINE_DOMAIN, range=_LINE_DASHES),
                              legend=alt.Legend(title=None, orient="bottom", symbolType="stroke",
                                                symbolStrokeColor=LIMIT_COLOUR))
        for field, series in (
            ("centre", "Centre line"),
            ("lower_limit", "Natural process limits"),
            ("upper_limit", "Natural process limits"),
        ):
            layers.append(
                base.transform_filter(f"datum.{field} != null").transform_calculate(line=f"'{series}'")
                .mark_line(strokeWidth=1, color=LIMIT_COLOUR)
                .encode(
                    x=x,
                    y=alt.Y(f"{field}:Q"),
                    detail=alt.Detail("phase:N"),  # one line per phase: breaks at phase changes
                    strokeDash=dash,
                    tooltip=[alt.Tooltip(f"{field}:Q", format=unit_format(unit), title=series)],
                )
                .properties(name=f"{field}_layer")
            )

    if has_target:
        layers.append(
            _series(base.transform_filter(alt.datum.target != None), "Target")  # noqa: E711
            .mark_line(interpolate="step-after", strokeWidth=1.5)
            .encode(x=x, y=alt.Y("target:Q"), color=colour, tooltip=tooltip)
            .properties(name="target_layer")
        )

    # Not filtered: a missing period leaves a gap in the line rather than a misleading bridge.
    layers.append(
        _series(base, "Value")
        .mark_line(strokeWidth=2)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
        .properties(name="value_line")
    )
    layers.append(
        _series(base.transform_filter(has_value & (alt.datum.signal == False)), "Value")  # noqa: E712
        .mark_point(filled=True, size=36, shape="circle", opacity=1)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
        .properties(name="value_points")
    )
    layers.append(
        base.transform_filter(has_value & (alt.datum.signal == True))  # noqa: E712
        .transform_calculate(series="datum.signal_series")  # "Signal: worse" / "Signal: better" / "Signal"
        .mark_point(filled=True, size=110, shape="diamond", stroke="white", strokeWidth=1, opacity=1)
        .encode(
            x=x,
            y=y,
            color=colour,
            tooltip=[*tooltip, alt.Tooltip("signal_reason:N", title="Signal")],
        )
        .properties(name="signal_points")
    )

    if annotations:
        notes = pl.DataFrame(
            {
                "period_start": [d for d, _ in annotations],
                "note": [text for _, text in annotations],
                "label": [text if len(text) <= 28 else text[:27] + "…" for _, text in annotations],
            }
        )
        note_base = alt.Chart(notes)
        layers.append(
            note_base.mark_rule(color=ANNOTATION_COLOUR, strokeDash=[2, 2])
            .encode(x=alt.X("period_start:T"), tooltip=[alt.Tooltip("note:N", title="Note")])
            .properties(name="annotation_rules")
        )
        layers.append(
            note_base.mark_text(align="left", baseline="top", dx=3, dy=2, fontSize=10,
                                color=ANNOTATION_COLOUR)
            .encode(x=alt.X("period_start:T"), y=alt.value(0), text="label:N",
                    tooltip=[alt.Tooltip("note:N", title="Note")])
            .properties(name="annotation_labels")
        )

    return alt.layer(*layers).properties(title=alt.Title(title, anchor="start"), height=height)


def sparkline(frame: pl.DataFrame, *, unit: str, width: int = 120, height: int = 30) -> alt.LayerChart:
    """A tiny trend line for scorecards: no axes, last point coloured by its status."""
    _check_unit(unit)
    data = _chart_data(frame, unit).filter(pl.col("value").is_not_null())
    statuses = frame.sort("period_start").filter(pl.col("value").is_not_null())
    last_status = (
        statuses.get_column("status").to_list()[-1]
        if "status" in statuses.columns and statuses.height
        else None
    )
    last_colour = STATUS_COLOURS[Status(last_status)] if last_status else STATUS_COLOURS[Status.NO_DATA]
    x = alt.X("period_start:T", axis=None)
    y = alt.Y("value:Q", axis=None, scale=alt.Scale(zero=False))
    tooltip = [alt.Tooltip("period:N", title="Period"), alt.Tooltip("value_text:N", title="Value")]
    base = alt.Chart(data)
    line = base.mark_line(strokeWidth=1.5, color=VALUE_COLOUR).encode(x=x, y=y, tooltip=tooltip)
    last = (
        base.transform_window(rank="rank()", sort=[alt.SortField("period_start", order="descending")])
        .transform_filter(alt.datum.rank == 1)
        .mark_point(filled=True, size=30, color=last_colour, opacity=1)
        .encode(x=x, y=y, tooltip=[*tooltip, alt.Tooltip("status_label:N", title="Status")])
        .properties(name="last_point")
    )
    return alt.layer(line.properties(name="sparkline"), last).properties(
        width=width, height=height, view=alt.ViewConfig(stroke=None)
    )


def breakdown_chart(frame: pl.DataFrame, *, dimension: str, unit: str) -> alt.LayerChart:
    """Horizontal bars of value by ``dimension_value`` for one period, largest first.

    ``frame`` has columns dimension_value and value, optionally change (vs the prior period,
    in the metric's units).
    """
    _check_unit(unit)
    missing = {"dimension_value", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"breakdown frame for {dimension!r} lacks columns {sorted(missing)}")
    values = frame.get_column("value").to_list()
    changes = frame.get_column("change").to_list() if "change" in frame.columns else None
    data = pl.DataFrame(
        {
            "dimension_value": [str(v) if v is not None else "(none)" for v in frame.get_column("dimension_value").to_list()],
            "value": values,
            "value_text": [format_value(v, unit) for v in values],
            **({"change_text": [_signed(c, unit) for c in changes]} if changes is not None else {}),
        },
        schema_overrides={"value": pl.Float64},
    ).filter(pl.col("value").is_not_null())
    tooltip = [
        alt.Tooltip("dimension_value:N", title=dimension.replace("_", " ").capitalize()),
        alt.Tooltip("value_text:N", title="Value"),
    ]
    if changes is not None:
        tooltip.append(alt.Tooltip("change_text:N", title="Change"))
    y = alt.Y("dimension_value:N", sort="-x", title=None)
    x = alt.X("value:Q", axis=alt.Axis(format=axis_format(unit), title=_UNIT_TITLES[unit] or None))
    base = alt.Chart(data)
    bars = base.mark_bar(color=VALUE_COLOUR).encode(x=x, y=y, tooltip=tooltip).properties(name="bars")
    labels = (
        base.mark_text(align="left", dx=3, fontSize=10, color="#333333")
        .encode(x=x, y=y, text="value_text:N")
        .properties(name="bar_labels")
    )
    return alt.layer(bars, labels).properties(
        title=alt.Title(f"By {dimension.replace('_', ' ')}", anchor="start"),
        height=alt.Step(20),
    )


def _signed(change: float | None, unit: str) -> str:
    return change_text(change, unit, arrow=False)


# --------------------------------------------------------------------------- text alternatives
# Every chart has a text alternative: a one-sentence summary (the alt text of the chart in
# tagged PDFs and the accessible name on screen) and the data as a table.
GRAIN_WORDS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly",
               "fiscal_year": "by fiscal year"}


def _labels(data: pl.DataFrame) -> list[str]:
    for name in ("period_label", "label"):
        if name in data.columns and data.get_column(name).drop_nulls().len():
            return [str(v) if v is not None else "" for v in data.get_column(name).to_list()]
    return [f"{d.day} {d:%b %Y}" if isinstance(d, date) else "" for d in data.get_column("period_start").to_list()]


def trend_summary(frame: pl.DataFrame | None, *, title: str, unit: str, grain: str | None = None) -> str:
    """One sentence saying what a trend chart shows, e.g. "Potholes repaired on time, weekly,
    2024-W01 to 2026-W46: latest 83.1% (2026-W46) against a target of 85.0%, within its usual
    range (78.0% to 90.2%)."."""
    _check_unit(unit)
    how = f"{title}, {GRAIN_WORDS[grain]}" if grain in GRAIN_WORDS else title
    if frame is None or frame.height == 0 or "value" not in frame.columns:
        return f"{how}: no data to chart."
    data = frame.sort("period_start")
    labels = _labels(data)
    rows = list(data.iter_rows(named=True))
    with_value = [(label, row) for label, row in zip(labels, rows) if row.get("value") is not None]
    if not with_value:
        return f"{how}, {labels[0]} to {labels[-1]}: no values yet."
    label, last = with_value[-1]
    text = f"{how}, {labels[0]} to {labels[-1]}: latest {format_value(last['value'], unit)} ({label})"
    if last.get("target") is not None:
        text += f" against a target of {format_value(last['target'], unit)}"
    if last.get("status"):
        text += f", {STATUS_LABELS[Status(last['status'])].lower()}"
    if last.get("signal"):
        text += f"; a signal ({_rules_text(last.get('rules')) or 'outside its usual range'})"
    elif last.get("centre") is not None and last.get("lower_limit") is not None:
        text += (f"; within its usual range ({format_value(last['lower_limit'], unit)} to "
                 f"{format_value(last['upper_limit'], unit)})")
    return text + "."


def trend_table(frame: pl.DataFrame | None, *, unit: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """The data behind a trend chart as (columns, rows), newest period first, values in the
    metric's unit: period, value, target, status, signal."""
    _check_unit(unit)
    columns = ["Period", "Value", "Target", "Status", "Signal"]
    if frame is None or frame.height == 0:
        return columns, []
    data = frame.sort("period_start")
    rows = []
    for label, row in zip(_labels(data), data.iter_rows(named=True)):
        status = STATUS_LABELS[Status(row["status"])] if row.get("status") else EM_DASH
        signal = (_rules_text(row.get("rules")) or "yes") if row.get("signal") else "no"
        rows.append((label, format_value(row.get("value"), unit), format_value(row.get("target"), unit),
                     status, signal))
    return columns, rows[::-1]

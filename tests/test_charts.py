"""Chart builders, checked through the Vega-Lite spec and a real SVG render (vl-convert)."""

from __future__ import annotations

import doctest
import json
from datetime import date, timedelta

import polars as pl
import pytest
import vl_convert

import citystat.display.charts as charts_module
from citystat.display.charts import (
    SIGNAL_COLOUR,
    VALUE_COLOUR,
    breakdown_chart,
    format_value,
    sparkline,
    trend_chart,
    unit_format,
)
from citystat.core.status import STATUS_COLOURS, Status

WEEKS = [date(2026, 1, 5) + timedelta(weeks=i) for i in range(12)]


def kpi_frame(with_target: bool = True, with_limits: bool = True) -> pl.DataFrame:
    """A small KPI frame: two phases of limits, a missing week and one rule-1 signal."""
    n = len(WEEKS)
    columns = {
        "period_start": WEEKS,
        "value": [0.80, 0.82, None, 0.79, 0.85, 0.90, 0.95, 0.81, 0.80, 0.83, 0.84, 0.86],
        "target": [None, None] + [0.80] * 3 + [0.85] * 7 if with_target else [None] * n,
        "status": ["no_target", "no_target", "no_data", "at_risk", "on_track", "on_track",
                   "on_track", "at_risk", "at_risk", "at_risk", "at_risk", "on_track"],
        "centre": [0.82] * 6 + [0.85] * 6 if with_limits else [None] * n,
        "lower_limit": [0.70] * 6 + [0.75] * 6 if with_limits else [None] * n,
        "upper_limit": [0.90] * 6 + [0.94] * 6 if with_limits else [None] * n,
        "signal": [False] * 6 + [True] + [False] * 5,
        "rules": [""] * 6 + ["1"] + [""] * 5,
    }
    return pl.DataFrame(columns, schema_overrides={
        "target": pl.Float64, "centre": pl.Float64, "lower_limit": pl.Float64,
        "upper_limit": pl.Float64,
    })


def layers_by_name(spec: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in spec["layer"]}


def dataset_rows(spec: dict) -> list[dict]:
    (rows,) = [r for r in spec["datasets"].values() if r and "value_text" in r[0]]
    return rows


def colour_of_series(spec: dict, layer: dict) -> str:
    """The colour a layer is drawn in: its constant series name looked up in the shared scale."""
    (calc,) = [t for t in layer.get("transform", []) if "calculate" in t]
    series = calc["calculate"].strip("'")
    scale = layer["encoding"]["color"]["scale"]
    return scale["range"][scale["domain"].index(series)]


def test_trend_chart_layers_and_encodings() -> None:
    chart = trend_chart(
        kpi_frame(), title="Potholes repaired on time", unit="percent",
        annotations=[(date(2026, 2, 2), "New crew assigned in District 4")],
    )
    spec = chart.to_dict()
    layers = layers_by_name(spec)
    assert set(layers) == {
        "centre_layer", "lower_limit_layer", "upper_limit_layer", "target_layer",
        "value_line", "value_points", "signal_points", "annotation_rules", "annotation_labels",
    }
    assert spec["title"]["text"] == "Potholes repaired on time"

    value = layers["value_line"]["encoding"]
    assert value["x"]["field"] == "period_start" and value["x"]["type"] == "temporal"
    assert value["y"]["field"] == "value" and value["y"]["axis"]["format"] == ".0%"
    tooltip_titles = [t["title"] for t in value["tooltip"]]
    assert tooltip_titles == ["Period", "Value", "Target", "Status"]

    # signals: their own colour and shape, and a tooltip saying what fired, in words
    signal = layers["signal_points"]
    assert signal["mark"]["shape"] == "diamond"
    assert layers["value_points"]["mark"]["shape"] == "circle"
    scale = signal["encoding"]["color"]["scale"]
    assert scale["range"][scale["domain"].index("Signal")] == SIGNAL_COLOUR
    assert colour_of_series(spec, layers["value_points"]) == VALUE_COLOUR
    assert SIGNAL_COLOUR not in STATUS_COLOURS.values()
    assert "signal_reason" in [t["field"] for t in signal["encoding"]["tooltip"]]
    rows = dataset_rows(spec)
    flagged = [r for r in rows if r["signal"]]
    # no direction given: the point says what happened, not whether it is good
    assert len(flagged) == 1 and flagged[0]["signal_reason"] == "Outside the natural process limits"
    assert flagged[0]["signal_series"] == "Signal"
    assert flagged[0]["value_text"] == "95.0%"

    # the target is a step line
    assert layers["target_layer"]["mark"]["interpolate"] == "step-after"
    # the centre line is solid and the limits dashed, told apart in their own legend; both are
    # split by phase so they break between phases
    dash = layers["centre_layer"]["encoding"]["strokeDash"]["scale"]
    assert dash["domain"] == ["Centre line", "Natural process limits"]
    assert dash["range"][0] != dash["range"][1]
    for name in ("centre_layer", "lower_limit_layer", "upper_limit_layer"):
        assert layers[name]["encoding"]["strokeDash"]["legend"]["symbolType"] == "stroke"
        assert layers[name]["encoding"]["detail"]["field"] == "phase"
    assert [t["calculate"] for t in layers["centre_layer"]["transform"] if "calculate" in t] == ["'Centre line'"]
    assert [t["calculate"] for t in layers["upper_limit_layer"]["transform"] if "calculate" in t] == \
        ["'Natural process limits'"]
    assert sorted({r["phase"] for r in rows}) == [0, 1]

    # annotations: a vertical rule and its text
    assert layers["annotation_rules"]["mark"]["type"] == "rule"
    assert layers["annotation_labels"]["mark"]["type"] == "text"
    note_rows = spec["datasets"][layers["annotation_labels"]["data"]["name"]]
    assert note_rows[0]["note"] == "New crew assigned in District 4"
    assert note_rows[0]["label"].startswith("New crew assigned")


def test_trend_chart_without_target_or_limits_has_no_such_layers() -> None:
    spec = trend_chart(kpi_frame(with_target=False, with_limits=False), title="Calls", unit="percent").to_dict()
    names = set(layers_by_name(spec))
    assert "target_layer" not in names
    assert not names & {"centre_layer", "lower_limit_layer", "upper_limit_layer"}
    assert not names & {"annotation_rules", "annotation_labels"}
    assert {"value_line", "value_points", "signal_points"} <= names
    legend_domain = layers_by_name(spec)["value_line"]["encoding"]["color"]["scale"]["domain"]
    assert legend_domain == ["Value", "Signal"]


def test_trend_chart_accepts_a_bare_frame() -> None:
    frame = pl.DataFrame({"period_start": WEEKS[:3], "value": [3.0, 4.5, 2.25]})
    spec = trend_chart(frame, title="Graffiti days", unit="days").to_dict()
    rows = dataset_rows(spec)
    assert [r["value_text"] for r in rows] == ["3.0 days", "4.5 days", "2.3 days"]
    assert rows[0]["period"] == "5 Jan 2026"
    assert layers_by_name(spec)["value_line"]["encoding"]["y"]["axis"]["format"] == ",.1f"


def test_trend_chart_uses_kpi_frame_label_and_phase_columns() -> None:
    frame = kpi_frame().with_columns(
        pl.Series("label", [f"Week {i}" for i in range(len(WEEKS))]),
        pl.Series("phase", [0] * 4 + [1] * 8),
    )
    rows = dataset_rows(trend_chart(frame, title="x", unit="percent").to_dict())
    assert rows[3]["period"] == "Week 3"
    assert [r["phase"] for r in rows] == [0] * 4 + [1] * 8


def test_every_registry_unit_has_a_format() -> None:
    # the units citystat.registry.models.Unit declares
    for unit in ("percent", "count", "number", "days", "hours", "minutes", "currency",
                 "ug_dl", "ug_m3", "ratio"):
        assert unit_format(unit)
        assert format_value(1.0, unit) != "—"


def test_trend_chart_bad_frame_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="period_start and value"):
        trend_chart(pl.DataFrame({"week": WEEKS}), title="x", unit="count")
    with pytest.raises(ValueError, match="unknown unit 'percentage'"):
        trend_chart(kpi_frame(), title="x", unit="percentage")


def test_trend_chart_renders_to_svg_with_title() -> None:
    chart = trend_chart(
        kpi_frame(), title="Potholes repaired on time", unit="percent",
        annotations=[(date(2026, 2, 2), "New crew")],
    )
    svg = vl_convert.vegalite_to_svg(chart.to_json())
    assert svg.lstrip().startswith("<svg")
    assert "Potholes repaired on time" in svg
    assert "New crew" in svg
    # the signal diamond (and its legend entry) are drawn; without a signal, neither is
    assert SIGNAL_COLOUR.lower() in svg.lower()
    calm = kpi_frame().with_columns(pl.lit(False).alias("signal"), pl.lit("").alias("rules"))
    calm_svg = vl_convert.vegalite_to_svg(trend_chart(calm, title="Calm", unit="percent").to_json())
    assert SIGNAL_COLOUR.lower() not in calm_svg.lower()


def test_sparkline_colours_last_point_by_status() -> None:
    frame = kpi_frame()
    spec = sparkline(frame, unit="percent").to_dict()
    assert spec["width"] == 120 and spec["height"] == 30
    line, last = spec["layer"]
    assert line["encoding"]["x"]["axis"] is None and line["encoding"]["y"]["axis"] is None
    assert last["mark"]["color"] == STATUS_COLOURS[Status.ON_TRACK]  # the last week is on track
    off = frame.with_columns(pl.Series("status", ["off_track"] * frame.height))
    assert sparkline(off, unit="percent").to_dict()["layer"][1]["mark"]["color"] == STATUS_COLOURS[Status.OFF_TRACK]
    svg = vl_convert.vegalite_to_svg(sparkline(frame, unit="percent").to_json())
    assert STATUS_COLOURS[Status.ON_TRACK].lower() in svg.lower()


def test_breakdown_chart_sorted_bars() -> None:
    frame = pl.DataFrame({
        "dimension_value": ["D1", "D2", "D3"],
        "value": [120.0, 340.0, 95.0],
        "change": [10.0, -25.0, 0.0],
    })
    chart = breakdown_chart(frame, dimension="district", unit="count")
    spec = chart.to_dict()
    bars = layers_by_name(spec)["bars"]
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["y"]["field"] == "dimension_value"
    assert bars["encoding"]["y"]["sort"] == "-x"
    assert bars["encoding"]["x"]["field"] == "value"
    assert [t["title"] for t in bars["encoding"]["tooltip"]] == ["District", "Value", "Change"]
    rows = dataset_rows(spec)
    assert [r["change_text"] for r in rows] == ["+10", "−25", "no change"]
    svg = vl_convert.vegalite_to_svg(chart.to_json())
    assert "By district" in svg and "340" in svg


def test_breakdown_chart_needs_its_columns() -> None:
    with pytest.raises(ValueError, match="'district'.*dimension_value"):
        breakdown_chart(pl.DataFrame({"value": [1.0]}), dimension="district", unit="count")


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.853, "percent", "85.3%"),
        (1.0, "percent", "100.0%"),
        (0.00049, "percent", "0.0%"),
        (1234, "count", "1,234"),
        (1234.5, "count", "1,235"),
        (3.25, "days", "3.3 days"),  # half up, as d3 does in the browser
        (0.05, "hours", "0.1 hours"),
        (5.1, "minutes", "5.1 min"),
        (21_760_000, "currency", "$21,760,000"),
        (-1500.4, "currency", "−$1,500"),
        (3.5, "ug_dl", "3.5 µg/dL"),
        (12.04, "ug_m3", "12.0 µg/m³"),
        (1.005, "ratio", "1.01"),
        (1234.5, "number", "1,234.5"),
        (2.0, "number", "2"),
        (-12.345, "number", "−12.35"),
        (None, "count", "—"),
        (float("nan"), "percent", "—"),
    ],
)
def test_format_value(value, unit, text) -> None:
    assert format_value(value, unit) == text


def test_unit_format_matches_d3_conventions() -> None:
    assert unit_format("percent") == ".1%"
    assert unit_format("count") == ",.0f"
    assert unit_format("days") == ",.1f"
    assert unit_format("currency") == "$,.0f"
    with pytest.raises(ValueError, match="unknown unit"):
        unit_format("furlongs")


def test_d3_and_python_agree_on_a_value() -> None:
    """Render a tooltip-format text mark with vl-convert: the browser's d3 must print what
    format_value prints for the same value."""
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"values": [{"v": 0.853}, {"v": 3.25}]},
        "mark": "text",
        "encoding": {"text": {"field": "v", "type": "quantitative", "format": unit_format("percent")},
                     "y": {"field": "v", "type": "nominal"}},
    }
    svg = vl_convert.vegalite_to_svg(json.dumps(spec))
    assert format_value(0.853, "percent") in svg
    days = dict(spec, encoding={**spec["encoding"], "text": {"field": "v", "type": "quantitative", "format": unit_format("days")}})
    assert "3.3" in vl_convert.vegalite_to_svg(json.dumps(days))
    assert format_value(3.25, "days").startswith("3.3")


def test_docstring_examples() -> None:
    # the value formatter's examples live with it in citystat.display.format
    import citystat.display.format as format_module

    result = doctest.testmod(format_module)
    assert result.failed == 0 and result.attempted > 0
    assert doctest.testmod(charts_module).failed == 0


@pytest.mark.parametrize(("direction", "series", "word"), [
    ("higher", "Signal: better", "better"),   # 95 % above the upper limit: better when higher is better
    ("lower", "Signal: worse", "worse"),
])
def test_signal_points_say_better_or_worse_for_the_kpi(direction, series, word) -> None:
    spec = trend_chart(kpi_frame(), title="Share", unit="percent", direction=direction).to_dict()
    flagged = [r for r in dataset_rows(spec) if r["signal"]]
    assert flagged[0]["signal_series"] == series
    assert flagged[0]["signal_reason"] == f"Outside the natural process limits — {word} than routine variation"
    domain = layers_by_name(spec)["value_line"]["encoding"]["color"]["scale"]["domain"]
    assert series in domain and "Signal" not in domain


def test_a_sudden_jump_is_judged_by_the_change_from_the_period_before() -> None:
    frame = kpi_frame().with_columns(pl.Series("rules", [""] * 6 + ["4"] + [""] * 5))
    rows = dataset_rows(trend_chart(frame, title="Share", unit="percent", direction="lower").to_dict())
    (jump,) = [r for r in rows if r["signal"]]
    # 0.90 -> 0.95 is a jump up: worse when lower is better
    assert jump["signal_series"] == "Signal: worse"
    assert jump["signal_reason"].startswith("A sudden jump from the period before")

"""The one formatter for people: hand-worked values, changes, dates, cadences and tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from citystat.display.format import (change_text, display_frame, format_date, human_label, metric_delta,
                                     refresh_words, status_counts_text)


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.8829, "percent", "88.3%"),
    (0.88249, "percent", "88.2%"),
    (0.0025, "percent", "0.3%"),       # 0.25 % rounds half up to 0.3 % (half to even would give 0.2)
    (1234.5, "count", "1,235"),         # half up (Python's round would give 1,234)
    (2.5, "count", "3"),
    (-2.5, "count", "−3"),              # a real minus sign, half away from zero
    (3.25, "days", "3.3 days"),
    (-0.37, "days", "−0.4 days"),
    (21_760_000, "currency", "$21,760,000"),
    (-1500.4, "currency", "−$1,500"),
    (None, "count", "—"),
    (float("nan"), "days", "—"),
])
def test_values_by_hand(value, unit, text):
    from citystat.display.format import format_value

    assert format_value(value, unit) == text


@pytest.mark.parametrize(("change", "unit", "direction", "text"), [
    (0.021, "percent", "higher", "▲ +2.1 pts (better)"),       # points, not per cent of per cent
    (-0.021, "percent", "higher", "▼ −2.1 pts (worse)"),
    (0.021, "percent", "lower", "▲ +2.1 pts (worse)"),
    (-0.37, "days", "lower", "▼ −0.4 days (better)"),
    (23, "count", "neutral", "▲ +23"),                          # no verdict without a direction
    (0.0004, "percent", "higher", "no change"),                 # rounds to 0.0 pts
    (None, "percent", "higher", "—"),
])
def test_change_text_by_hand(change, unit, direction, text):
    assert change_text(change, unit, direction) == text


def test_change_text_in_points_is_not_a_percent_change():
    # 80 % -> 82 %: +2.0 points (a relative change would say +2.5 %)
    assert change_text(0.82 - 0.80, "percent") == "▲ +2.0 pts"


def test_metric_card_delta_has_an_ascii_minus_for_streamlit_and_the_verdict():
    assert metric_delta(-0.021, "percent", "higher") == "-2.1 pts (worse)"
    assert metric_delta(None, "percent", "higher") is None


def test_dates_and_cadences_in_words():
    assert format_date(date(2026, 11, 9)) == "Mon 9 Nov 2026"
    assert format_date(datetime(2026, 11, 9, 0, 0)) == "Mon 9 Nov 2026"   # never "00:00:00"
    assert format_date(datetime(2026, 11, 9, 14, 5)) == "Mon 9 Nov 2026 14:05"
    assert [refresh_words(r) for r in ("P1D", "P1W", "P1M", "PT1H", "PT6H", "P2W")] == \
        ["daily", "weekly", "monthly", "hourly", "every 6 hours", "every 2 weeks"]


def test_human_labels():
    assert human_label("walk_in") == "Walk in"
    assert human_label("period_start") == "Period starts"
    assert human_label("off_track") == "Off track"
    assert human_label("D1") == "D1" and human_label("311 app") == "311 app"
    assert human_label(None) == "—"


def test_display_frame_has_human_headers_and_text_cells():
    frame = pl.DataFrame({"period_start": [date(2026, 11, 9), date(2026, 11, 16)], "value": [0.8829, None],
                          "n": [1234, None], "change_vs_prior": [0.021, None], "channel": ["walk_in", None],
                          "lag": [timedelta(days=2), None]})
    shown = display_frame(frame, units={"value": "percent", "n": "count"},
                          changes={"change_vs_prior": ("percent", "higher")}, labels=["channel"])
    assert shown.columns == ["Period starts", "Value", "Records (n)", "Change vs prior period", "Channel", "Lag"]
    assert shown.row(0) == ("9 Nov 2026", "88.3%", "1,234", "▲ +2.1 pts (better)", "Walk in", "2 days")
    assert shown.row(1) == ("16 Nov 2026", "—", "—", "—", "—", "—")
    assert all(dtype == pl.String for dtype in shown.dtypes)


def test_status_counts_have_one_order_and_the_table_words():
    statuses = ["on_track", "no_data", "off_track", "on_track", "at_risk", "no_target"]
    assert status_counts_text(statuses) == "1 Off track · 1 At risk · 2 On track · 1 No target · 1 Not enough data"
    assert status_counts_text(reversed(statuses)) == status_counts_text(statuses)


# --- no raw machine formatting on the pages people read (the sample city) ---------------------------

SNAKE = r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"


@pytest.mark.parametrize(("page", "query"), [
    ("pages/overview.py", None),
    ("pages/metric.py", {"metric": "pothole_on_time"}),
    ("pages/metric.py", {"metric": "graffiti_days_to_close"}),
    ("pages/session.py", {"department": "pw"}),
])
def test_pages_show_no_raw_machine_formatting(page, query):
    import re

    from tests.support.apptest import render, texts

    app = render(page, query)
    headers = [str(c) for frame in app.dataframe for c in frame.value.columns]
    assert not [h for h in headers if re.fullmatch(SNAKE, h)], headers
    shown = texts(app)
    assert "None" not in shown.replace("None yet", "")   # "None yet." is a sentence, not a missing value
    assert "00:00:00" not in shown and not re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", shown)
    assert "P1D" not in shown and "P1W" not in shown
    assert "◆" not in shown and "rule 1" not in shown.lower()
    cells = [str(v) for frame in app.dataframe for col in frame.value.columns if frame.value[col].dtype == object
             for v in frame.value[col].tolist()]
    assert not [c for c in cells if re.fullmatch(SNAKE, c)], "snake_case cell values"

"""The core pages render through Streamlit's AppTest without exceptions and show the right KPIs."""

from __future__ import annotations

from datetime import date

import pytest

from citystat.registry.loader import load_registry

from tests.support.apptest import render, texts
from .conftest import PROJECT_ROOT

REGISTRY = load_registry(PROJECT_ROOT / "metrics.yaml")


def test_overview_shows_every_department_and_kpi_with_cityscore():
    app = render("pages/overview.py")
    shown = texts(app)
    for metric in REGISTRY.metrics.values():
        assert metric.title in shown, metric.id
    for department in {m.department for m in REGISTRY.metrics.values()}:
        assert REGISTRY.departments[department].name in shown
    labels = [m.label for m in app.metric]
    assert any(label.startswith("Week · Week of 9 Nov 2026") for label in labels)
    assert any(label.startswith("Month · Oct 2026") for label in labels)
    assert app.selectbox[0].value.isoformat() == "2026-11-15"  # as of: the end of the latest complete week


def test_overview_filters_by_department_and_picks_an_earlier_week():
    app = render("pages/overview.py")
    app.multiselect[0].set_value(["fire"]).run()
    shown = texts(app)
    assert "EMS response time" in shown and "Potholes repaired on time" not in shown
    app.selectbox[0].set_value(date(2026, 10, 25)).run()
    assert not app.exception
    assert "Week of 19 Oct 2026" in texts(app)
    assert app.query_params["as_of"] == "2026-10-25"  # the choice is kept in the shareable URL


def test_department_page_shows_only_its_kpis_and_standard_kpis():
    app = render("pages/department.py", {"department": "pw"})
    shown = texts(app)
    assert app.title[0].value == "Public Works"
    for metric in REGISTRY.metrics.values():
        if metric.department == "pw":
            assert metric.title in shown
        elif "standard" not in metric.tags:
            assert metric.title not in shown, metric.id
    assert "Unscheduled overtime" in shown


@pytest.mark.parametrize("metric_id", ["pothole_on_time", "lead_followup_30d", "permit_backlog_change"])
def test_metric_detail_shows_trend_comparisons_breakdown_and_sql(metric_id):
    app = render("pages/metric.py", {"metric": metric_id})
    metric = REGISTRY.metrics[metric_id]
    assert app.title[0].value == metric.title
    labels = [m.label for m in app.metric]
    assert "Value" in labels and "Target" in labels
    assert "Same period last year" in labels
    charts = app.get("arrow_vega_lite_chart") or app.get("vega_lite_chart")
    assert charts, "no trend chart"
    spec = charts[0].proto.spec
    assert "Natural process limits" in spec and "Target" in spec
    code = [c.value for c in app.code]
    if metric.sql:
        assert "blood_lead_tests" in code[0]
    elif metric.derived:
        assert metric.derived in code[0]
    else:
        assert "FROM" in code[0] and metric.source in code[0]
    if metric.dimensions:
        assert len(app.tabs) >= len(metric.dimensions)


def test_metric_detail_survives_an_unknown_metric_in_the_address():
    app = render("pages/metric.py", {"metric": "'; DROP TABLE metrics; --"})
    assert any("There is no KPI called" in w.value for w in app.warning)
    assert app.title[0].value == next(iter(REGISTRY.metrics.values())).title


def test_data_health_reports_a_clean_registry():
    app = render("pages/data_health.py")
    assert any("validate" in s.value for s in app.success)

"""Freshness grace rule, ISO 8601 durations and quality-check evaluation (hand-worked)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from ruamel.yaml import YAML

from citystat.checks.quality import (SourceChecks, accrual_periodicity, check_allowed_values,
                              check_freshness, check_nulls, check_ranges, check_unique,
                              parse_duration, row_count_change, staleness)


@pytest.mark.parametrize("text, expected", [
    ("P1D", timedelta(days=1)),
    ("P1W", timedelta(days=7)),
    ("P2W", timedelta(days=14)),
    ("P1M", timedelta(days=30)),
    ("P1Y", timedelta(days=365)),
    ("PT6H", timedelta(hours=6)),
    ("PT30M", timedelta(minutes=30)),
    ("P1DT12H", timedelta(hours=36)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "1D", "P1H", "P1.5D", "-P1D", "daily", "P0D", ""])
def test_parse_duration_rejects_with_field_name(text):
    with pytest.raises(ValueError, match="refresh"):
        parse_duration(text)


def test_accrual_periodicity():
    assert accrual_periodicity("P1W") == "R/P1W"
    with pytest.raises(ValueError):
        accrual_periodicity("weekly")


NOW = datetime(2026, 11, 16, 6, 0)


@pytest.mark.parametrize("last, refresh, status", [
    (datetime(2026, 11, 15, 23, 59), "P1D", "fresh"),     # 6 h 1 min < 1 day
    (datetime(2026, 11, 15, 6, 0), "P1D", "fresh"),       # exactly 1 x: still fresh
    (datetime(2026, 11, 15, 5, 59), "P1D", "late"),       # just over 1 x
    (datetime(2026, 11, 14, 6, 0), "P1D", "late"),        # exactly 2 x: late, not stale
    (datetime(2026, 11, 14, 5, 0), "P1D", "stale"),       # over 2 x
    (datetime(2026, 11, 3, 6, 0), "P1W", "late"),         # 13 days vs 7
    (datetime(2026, 11, 1, 6, 0), "P1W", "stale"),        # 15 days vs 7 (> 14)
    (datetime(2026, 11, 16, 1, 0), "PT6H", "fresh"),      # 5 h
    (datetime(2026, 11, 15, 20, 0), "PT6H", "late"),      # 10 h
])
def test_staleness_grace_rule(last, refresh, status):
    result = staleness(last, refresh, NOW)
    assert result.status == status
    assert result.lag == NOW - last
    assert result.flagged == (status != "fresh")


def test_staleness_dates_and_unknown():
    # a DATE covers the whole day: data through 2026-11-15 checked at 2026-11-16 06:00 is fresh daily
    assert staleness(date(2026, 11, 15), "P1D", NOW).status == "fresh"
    assert staleness(date(2026, 11, 13), "P1D", NOW).status == "stale"
    unknown = staleness(None, "P1D", NOW)
    assert unknown.status == "unknown" and unknown.lag is None and unknown.allowed == timedelta(days=1)
    assert "no data" in check_freshness("permits", unknown).message
    with pytest.raises(ValueError, match="naive"):
        from datetime import timezone
        staleness(datetime(2026, 11, 15, tzinfo=timezone.utc), "P1D", NOW)


def test_row_count_change():
    assert row_count_change(1000, 950) == {"previous": 1000, "current": 950, "change": -50,
                                           "pct_change": -0.05, "shrank": True}
    assert row_count_change(None, 10)["change"] is None


YAML_TEXT = """
key_columns: {request_id: 0, district: 0.01}
ranges:
  sla_hours: {min: 1, max: 2160}
  score: [0, 100]
unique: [request_id]
allowed_values:
  channel: [phone, app, web, walk_in]
"""


def test_checks_from_yaml_and_evaluation():
    checks = SourceChecks.model_validate(YAML(typ="safe").load(YAML_TEXT))
    assert checks.ranges["score"].max == 100 and checks.ranges["sla_hours"].min == 1
    assert checks.columns_needed() == ["request_id", "district", "sla_hours", "score", "channel"]

    nulls = check_nulls("service_requests", checks, {"request_id": 0.0, "district": 0.02})
    assert [r.passed for r in nulls] == [True, False]
    assert "2.00% empty, above the limit of 1.00%" in nulls[1].message

    ranges = check_ranges("service_requests", checks, {
        "sla_hours": {"below": 0, "above": 3, "min": 4, "max": 9999},
        "score": {"below": 0, "above": 0, "min": 12, "max": 100}})
    assert [r.passed for r in ranges] == [False, True]
    assert "3 value(s) outside [1, 2160]" in ranges[0].message

    unique = check_unique("service_requests", checks, {"request_id": 2})
    assert not unique[0].passed and "2 row(s)" in unique[0].message

    allowed = check_allowed_values("service_requests", checks, {"channel": {"fax": 4}})
    assert not allowed[0].passed and "'fax' (4)" in allowed[0].message
    assert check_allowed_values("service_requests", checks, {"channel": {}})[0].passed

    missing = check_nulls("service_requests", checks, {"request_id": 0.0})
    assert not missing[1].passed and "not computed" in missing[1].message


def test_checks_validation_errors_name_the_field():
    with pytest.raises(ValueError, match="key_columns.district"):
        SourceChecks.model_validate({"key_columns": {"district": 2}})
    with pytest.raises(ValueError, match="above max"):
        SourceChecks.model_validate({"ranges": {"x": {"min": 5, "max": 1}}})
    with pytest.raises(ValueError, match="extra"):
        SourceChecks.model_validate({"uniq": ["x"]})


def test_checks_from_registry_model():
    from citystat.registry.models import QualityChecks
    registry_checks = QualityChecks(key_columns={"a": 0.1}, ranges={"b": (0, None)}, unique=["a"])
    checks = SourceChecks.from_registry(registry_checks)
    assert checks.key_columns == {"a": 0.1}
    assert checks.ranges["b"].min == 0 and checks.ranges["b"].max is None


def test_freshness_is_described_in_words():
    from datetime import datetime, timedelta

    from citystat.checks.quality import staleness

    late = staleness(datetime(2026, 3, 2, 0), "P1D", datetime(2026, 3, 3, 6))
    assert late.describe() == "late: newest data 30 hours old, expected at least every 1 day"
    stale = staleness(datetime(2026, 3, 2, 0), "P1W", datetime(2026, 3, 20, 0))
    assert stale.describe() == "stale: newest data 18 days old, expected at least every 7 days"
    assert staleness(datetime(2026, 3, 2, 0), "PT1H", datetime(2026, 3, 2, 1)).describe() == \
        "fresh: newest data 1 hour old, expected at least every 1 hour"
    assert staleness(None, "P1D", datetime(2026, 3, 2)).describe() == "no data time known"
    assert isinstance(late.lag, timedelta)

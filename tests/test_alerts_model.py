"""alerts.yaml models and loader, and the lead alert query on a hand-made extract (real DuckDB)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from citystat.alerts.rules import (AlertRulesError, alert_key, check_references, load_alert_rules,
                                   parse_alert_rules, recipients, render_summary)

ROOT = Path(__file__).resolve().parents[1]
DEPARTMENTS = {"housing": "housing@riverton.example.gov", "health": "health@riverton.example.gov",
               "pw": "publicworks@riverton.example.gov", "hr": None}


def test_repository_alerts_yaml_loads_and_references_resolve():
    rules = load_alert_rules(ROOT / "alerts.yaml")
    ids = [r.id for r in rules.rules]
    assert ids == ["lead_no_inspection", "cityscore_off_track", "kpi_process_signal"]
    lead = rules.get("lead_no_inspection")
    assert lead.kind == "sql" and lead.key_columns == ["child_id", "test_id"]
    assert (ROOT / lead.query).is_file()
    assert rules.get("cityscore_off_track").tag == "cityscore"
    assert rules.get("kpi_process_signal").kind == "spc_signal"
    problems = check_references(rules, departments=DEPARTMENTS,
                                metric_tags={"pothole_on_time": ["cityscore", "public"]}, query_root=ROOT)
    assert problems == []


BROKEN = """\
rules:
  - id: ok_rule
    title: Fine
    department: pw
    kind: kpi_off_track
    metrics: [pothole_on_time]
  - id: bad_sql
    title: Missing key
    department: pw
    kind: sql
    sql: SELECT 1 AS x
  - id: typo
    title: Typo
    department: pw
    kind: spc_signal
    tags: public
  - id: bad_channel
    title: Bad channel
    department: pw
    kind: kpi_off_track
    tag: cityscore
    channel: [publicworks at riverton]
  - id: ok_rule
    title: Duplicate
    department: pw
    kind: kpi_off_track
    tag: cityscore
"""


def test_errors_name_file_line_and_rule():
    with pytest.raises(AlertRulesError) as caught:
        parse_alert_rules(BROKEN, "alerts.yaml")
    lines = [str(p) for p in caught.value.problems]
    assert "alerts.yaml:7 [rule bad_sql]: a sql rule needs 'key_columns' naming the columns that identify a case" in lines
    assert "alerts.yaml:16 [rule typo]: unknown key 'tags' (did you mean 'tag'?)" in lines
    assert any(s.startswith("alerts.yaml:22 [rule bad_channel]: channel") and "neither an e-mail" in s
               for s in lines)
    assert "alerts.yaml:23 [rule ok_rule]: duplicate rule id 'ok_rule' (first defined at line 2)" in lines
    assert not any("ok_rule" in s and "duplicate" not in s for s in lines)  # the good rule is clean


def test_yaml_syntax_error_and_kind_mixups():
    with pytest.raises(AlertRulesError, match=r"alerts.yaml:2: YAML syntax: parsing a flow sequence opened here is not closed"):
        parse_alert_rules("rules:\n  - id: [unclosed\n", "alerts.yaml")
    with pytest.raises(AlertRulesError, match="belong to sql rules"):
        parse_alert_rules("rules:\n  - {id: a, title: t, department: pw, kind: kpi_off_track, tag: x, "
                          "key_columns: [k]}\n")
    with pytest.raises(AlertRulesError, match="exactly one of 'query'"):
        parse_alert_rules("rules:\n  - {id: a, title: t, department: pw, kind: sql, key_columns: [k]}\n")
    with pytest.raises(AlertRulesError, match="'department' .* is required"):
        parse_alert_rules("rules:\n  - {id: a, title: t, kind: spc_signal, tag: x}\n")


def test_check_references_finds_unknowns(tmp_path):
    rules = parse_alert_rules(
        "rules:\n"
        "  - {id: a, title: t, department: parks, kind: sql, query: queries/nope.sql, key_columns: [k]}\n"
        "  - {id: b, title: t, department: hr, kind: spc_signal, metrics: [ghost_metric]}\n"
        "  - {id: c, title: t, department: pw, kind: kpi_off_track, tag: nosuchtag}\n")
    found = [str(p) for p in check_references(rules, departments=DEPARTMENTS,
                                             metric_tags={"pothole_on_time": ["cityscore"]},
                                             query_root=tmp_path)]
    assert any("[rule a]" in s and "department 'parks'" in s for s in found)
    assert any("[rule a]" in s and "query file 'queries/nope.sql' not found" in s for s in found)
    assert any("[rule b]" in s and "has no e-mail" in s for s in found)
    assert any("[rule b]" in s and "metric 'ghost_metric'" in s for s in found)
    assert any("[rule c]" in s and "tag 'nosuchtag'" in s for s in found)


def test_recipients_keys_and_summaries():
    rules = load_alert_rules(ROOT / "alerts.yaml")
    lead = rules.get("lead_no_inspection")
    assert recipients(lead, DEPARTMENTS) == ["housing@riverton.example.gov", "health@riverton.example.gov"]
    kpi = rules.get("cityscore_off_track")
    assert recipients(kpi, DEPARTMENTS, metric_department="pw") == [
        "performance@riverton.example.gov", "publicworks@riverton.example.gov"]
    row = {"child_id": 41, "test_id": 9001, "address_id": 7, "district": "D3",
           "tested_at": datetime(2026, 9, 1, 10, 30), "result_ug_dl": 5.2, "days_since_test": 75}
    assert alert_key(lead, row) == "child_id=41|test_id=9001"
    assert render_summary(lead, row) == (
        "Child 41 (D3): 5.2 ug/dL on 2026-09-01, address 7 not inspected after 75 days")
    assert alert_key(kpi, {"metric_id": "pothole_on_time", "period_start": date(2026, 11, 9)}) == \
        "metric_id=pothole_on_time|period_start=2026-11-09"
    with pytest.raises(ValueError, match="did not return key column"):
        alert_key(lead, {"child_id": 1})


def test_lead_alert_query_on_hand_made_extract(tmp_path):
    """Hand-worked cases for as_of = 2026-11-15 (tests count from 2026-07-19 to 2026-10-16)."""
    tests = pl.DataFrame({
        "test_id": [1, 2, 3, 4, 5, 6, 7],
        "child_id": [10, 20, 30, 40, 50, 60, 70],
        "address_id": [100, 200, 300, 400, 500, 600, 700],
        "tested_at": [datetime(2026, 9, 1, 9), datetime(2026, 9, 1, 9), datetime(2026, 9, 1, 9),
                      datetime(2026, 10, 16, 9), datetime(2026, 10, 17, 9), datetime(2026, 9, 1, 9),
                      datetime(2026, 7, 1, 9)],
        "age_months": [24] * 7,
        "result_ug_dl": [5.0, 5.0, 3.5, 4.0, 4.0, 3.4, 6.0],
        "district": ["D1"] * 7,
    })
    inspections = pl.DataFrame({
        "inspection_id": [1, 2, 3],
        "address_id": [200, 300, 100],
        "requested_at": [datetime(2026, 9, 2)] * 3,
        "inspected_at": [datetime(2026, 10, 1, 14), datetime(2026, 10, 2, 9), None],
        "reason": ["lead_referral"] * 3, "result": ["pass", "pass", None], "violations": [0, 0, None],
        "district": ["D1"] * 3,
    })
    # child 10: elevated, only a requested (not done) inspection -> ALERT
    # child 20: inspected 2026-10-01, day 30 after the test -> no alert
    # child 30: 3.5 exactly counts; inspected 2026-10-02, day 31 -> ALERT
    # child 40: tested 2026-10-16, exactly 30 days before as_of, none -> ALERT
    # child 50: tested 2026-10-17, window still open -> no alert
    # child 60: 3.4 is below the reference value -> no alert
    # child 70: tested 2026-07-01, older than the 120-day look-back -> no alert
    tests.write_parquet(tmp_path / "blood_lead_tests.parquet")
    inspections.write_parquet(tmp_path / "housing_inspections.parquet")
    con = duckdb.connect()
    for name in ("blood_lead_tests", "housing_inspections"):
        con.sql(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{tmp_path / name}.parquet')")
    sql = (ROOT / "queries" / "alert_lead_no_inspection.sql").read_text()
    result = con.sql(sql, params={"as_of": date(2026, 11, 15)}).pl()
    assert result["child_id"].to_list() == [10, 30, 40]
    assert result["days_since_test"].to_list() == [75, 75, 30]
    assert set(result.columns) >= {"child_id", "test_id", "address_id", "district", "tested_at",
                                   "result_ug_dl", "days_since_test"}

"""The registry: the shipped one loads whole; broken ones give problems naming file, line, entry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from citystat.registry.loader import RegistryError, derived_references, load_registry
from citystat.checks.validate import validate

from .conftest import PROJECT_ROOT

HEADER = """\
city: {name: Testville, fiscal_year_start_month: 7}
departments:
  - {id: pw, name: Public Works}
  - {id: fire, name: Fire}
sources:
  - id: requests
    path: data/requests.parquet
    description: test requests
    time_column: created_at
    columns: {request_id: id, created_at: created, closed_at: closed, district: district, kind: kind}
metrics:
"""

GOOD_METRIC = """\
  - id: requests_count
    title: Requests
    department: pw
    owner: Someone
    description: How many.
    unit: count
    direction: neutral
    dimensions: [district]
    source: requests
    measure: {agg: count}
"""


@pytest.fixture
def city_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "queries").mkdir()
    duckdb.sql("""
        COPY (SELECT i AS request_id,
                     TIMESTAMP '2025-01-06 08:00:00' + to_hours(i * 7) AS created_at,
                     TIMESTAMP '2025-01-06 08:00:00' + to_hours(i * 7 + 30) AS closed_at,
                     'D' || (i % 3 + 1) AS district,
                     CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END AS kind
              FROM range(200) t(i))
        TO '{}' (FORMAT parquet)""".format(tmp_path / "data" / "requests.parquet"))
    return tmp_path


def write(city_dir: Path, metrics: str) -> Path:
    path = city_dir / "metrics.yaml"
    path.write_text(HEADER + textwrap.dedent(metrics), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    found = [i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line]
    return found[occurrence - 1]


def test_shipped_registry_loads_every_metric_without_problems():
    registry = load_registry(PROJECT_ROOT / "metrics.yaml")
    assert registry.problems == []
    assert len(registry.metrics) >= 25
    assert len({m.department for m in registry.metrics.values()}) >= 7
    assert "lead_followup_30d" in registry.metrics
    assert registry.metrics["lead_followup_30d"].sql == "queries/lead_followup_30d.sql"
    # every source path resolves against the registry's folder
    assert registry.resolve("data/permits.parquet") == str(PROJECT_ROOT / "data" / "permits.parquet")


def test_a_good_small_registry_loads(city_dir):
    registry = load_registry(write(city_dir, GOOD_METRIC))
    assert list(registry.metrics) == ["requests_count"]
    assert registry.problems == []


def test_malformed_yaml_names_the_line(city_dir):
    path = write(city_dir, GOOD_METRIC + "  - id: [unclosed\n")
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problem = caught.value.problems[0]
    assert problem.file == str(path)
    assert problem.line is not None and problem.line >= line_of(path, "[unclosed")
    assert "YAML" in problem.message


def test_duplicate_id_is_reported_at_the_second_definition(city_dir):
    path = write(city_dir, GOOD_METRIC + GOOD_METRIC)
    registry = load_registry(path)
    assert list(registry.metrics) == ["requests_count"]
    [problem] = registry.problems
    assert problem.line == line_of(path, "- id: requests_count", occurrence=2)
    assert "duplicate metric id 'requests_count'" in problem.message
    assert f"line {line_of(path, '- id: requests_count')}" in problem.message


def test_unknown_department_and_source_drop_only_that_metric(city_dir):
    path = write(city_dir, GOOD_METRIC + GOOD_METRIC.replace("requests_count", "bad_dept").replace(
        "department: pw", "department: parks") + GOOD_METRIC.replace("requests_count", "bad_source").replace(
        "source: requests", "source: nowhere"))
    registry = load_registry(path)
    assert set(registry.metrics) == {"requests_count"}
    by_entry = {p.entry: p for p in registry.problems}
    assert "unknown department 'parks'" in by_entry["metric bad_dept"].message
    assert by_entry["metric bad_dept"].line == line_of(path, "- id: bad_dept")
    assert "unknown source 'nowhere'" in by_entry["metric bad_source"].message


def test_field_errors_point_at_the_field_line(city_dir):
    bad = GOOD_METRIC.replace("requests_count", "typo").replace("direction: neutral", "direciton: neutral")
    bad += GOOD_METRIC.replace("requests_count", "bad_target").replace(
        "direction: neutral", "direction: higher\n    targets:\n      - {from: 2025-01-01, value: lots}")
    path = write(city_dir, bad)
    registry = load_registry(path)
    problems = {p.entry: p for p in registry.problems}
    assert "direciton" in problems["metric typo"].message
    assert problems["metric typo"].line == line_of(path, "direciton")
    assert "targets.0.value" in problems["metric bad_target"].message
    assert problems["metric bad_target"].line == line_of(path, "value: lots")


def test_derived_cycle_is_an_error(city_dir):
    derived = """\
  - id: a_metric
    title: A
    department: pw
    owner: x
    description: x
    unit: count
    direction: lower
    derived: b_metric + 1
  - id: b_metric
    title: B
    department: pw
    owner: x
    description: x
    unit: count
    direction: lower
    derived: a_metric - requests_count
"""
    registry = load_registry(write(city_dir, GOOD_METRIC + derived))
    assert set(registry.metrics) == {"requests_count"}
    messages = [p.message for p in registry.problems]
    assert any("cycle" in m and "a_metric" in m and "b_metric" in m for m in messages)


def test_derived_expressions_accept_only_arithmetic():
    assert derived_references("permits_applied - permits_issued * 2") == ["permits_applied", "permits_issued"]
    with pytest.raises(ValueError, match="only metric ids"):
        derived_references("a; DROP TABLE x")
    with pytest.raises(ValueError):
        derived_references("__import__('os')")


def test_query_file_outside_the_registry_folder_is_refused(city_dir):
    sql_metric = GOOD_METRIC.replace("    source: requests\n    measure: {agg: count}\n",
                                     "    sql: ../../etc/passwd\n").replace("    dimensions: [district]\n", "")
    registry = load_registry(write(city_dir, sql_metric))
    assert registry.metrics == {}
    assert "inside the registry's folder" in registry.problems[0].message


def test_validate_runs_every_query_and_names_the_broken_one(city_dir):
    (city_dir / "queries" / "broken.sql").write_text("SELECT period_start, value FROM requests WHERE (")
    metrics = GOOD_METRIC + GOOD_METRIC.replace("requests_count", "missing_column").replace(
        "measure: {agg: count}", "measure: {agg: avg, expr: no_such_column}") + """\
  - id: broken_sql
    title: Broken
    department: fire
    owner: x
    description: x
    unit: count
    direction: lower
    sql: queries/broken.sql
"""
    path = write(city_dir, metrics)
    report = validate(load_registry(path))
    errors = {p.entry: p for p in report.errors}
    assert set(errors) == {"metric missing_column", "metric broken_sql"}
    assert "no_such_column" in errors["metric missing_column"].message
    assert errors["metric missing_column"].line == line_of(path, "- id: missing_column")
    assert errors["metric broken_sql"].line == line_of(path, "- id: broken_sql")
    assert "syntax" in errors["metric broken_sql"].message.lower()
    # the healthy metric is computed all the same
    assert report.metric_state("requests_count") == "ok"
    assert report.rollup.series("requests_count", "week").height > 0


def test_missing_and_truncated_parquet_are_named(city_dir):
    data = city_dir / "data" / "requests.parquet"
    data.write_bytes(data.read_bytes()[:200])
    report = validate(load_registry(write(city_dir, GOOD_METRIC)))
    assert any(p.entry == "source requests" and "cannot read" in p.message for p in report.errors)
    assert any(p.entry == "metric requests_count" for p in report.errors)
    data.unlink()
    report = validate(load_registry(write(city_dir, GOOD_METRIC)))
    assert any(p.entry == "source requests" and "no file matches" in p.message for p in report.errors)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "citystat", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300)


def test_validate_command_passes_on_the_shipped_registry():
    result = run_cli("validate", "--today", "2026-11-21")
    assert result.returncode == 0, result.stderr
    assert "0 error(s)" in result.stdout


def test_validate_command_fails_with_a_named_error(city_dir):
    path = write(city_dir, GOOD_METRIC.replace("department: pw", "department: parks"))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert f"{path}:{line_of(path, '- id: requests_count')} [metric requests_count]" in result.stderr
    assert "unknown department 'parks'" in result.stderr


def test_the_data_root_can_be_pointed_elsewhere(city_dir, tmp_path_factory, monkeypatch):
    """$CITYSTAT_DATA_ROOT moves the extracts away from the registry's folder."""
    registry_path = write(city_dir, GOOD_METRIC)
    elsewhere = tmp_path_factory.mktemp("extracts")
    (city_dir / "data").rename(elsewhere / "data")
    assert any("no file matches" in p.message for p in validate(load_registry(registry_path)).errors)
    monkeypatch.setenv("CITYSTAT_DATA_ROOT", str(elsewhere))
    report = validate(load_registry(registry_path))
    assert report.errors == []
    assert report.rollup.series("requests_count", "week")["value"].sum() == 200

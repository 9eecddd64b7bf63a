"""'Did you mean' for unknown keys, and validate's check that publishable sources have a city website."""

from __future__ import annotations

from pathlib import Path

import pytest

from citystat.registry.loader import load_registry
from citystat.registry.yamlfile import did_you_mean
from citystat.checks.validate import validate


@pytest.mark.parametrize("key, allowed, expected", [
    ("dimension", ["dimensions", "description", "direction"], "dimensions"),
    ("tilte", ["title", "tags"], "title"),
    ("Grain", ["grain", "tags"], "grain"),
    ("numerater", ["numerator", "denominator"], "numerator"),
    ("colour", ["title", "unit"], None),
    ("dimensions", ["dimensions"], None),  # not unknown: nothing to suggest
    ("x", [], None),
])
def test_did_you_mean(key, allowed, expected):
    assert did_you_mean(key, allowed) == expected


@pytest.fixture
def city(tmp_path) -> Path:
    from citystat.analyst.scaffold import init_city
    from citystat.extract import load_extracts, run_extract

    init_city(tmp_path / "city", name="Testville")
    run_extract(load_extracts(tmp_path / "city" / "extracts.yaml"), "service_requests", progress=False)
    return tmp_path / "city" / "metrics.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_unknown_key_says_did_you_mean_with_its_line(city):
    edit(city, "    dimensions: [district]\n", "    dimension: [district]\n")
    line = city.read_text().splitlines().index("    dimension: [district]") + 1
    problems = [p for p in load_registry(city).problems if p.entry == "metric closed_within_7_days"]
    assert [str(p).split(": ", 1)[1] for p in problems] == ["unknown key 'dimension' (did you mean 'dimensions'?)"]
    assert problems[0].line == line


def test_unknown_nested_key_suggests_from_the_nested_model(city):
    edit(city, "denominator: {agg: count}", "denominator: {agg: count, filtr: \"closed_at IS NULL\"}")
    messages = [p.message for p in load_registry(city).problems]
    assert "denominator: unknown key 'filtr' (did you mean 'filter'?)" in messages


def test_publishable_source_needs_city_website(city):
    edit(city, "    refresh: P1D\n", "    refresh: P1D\n    publishable: true\n")
    report = validate(load_registry(city))
    errors = [p for p in report.errors if p.entry == "source service_requests"]
    assert len(errors) == 1 and "city.website" in errors[0].message
    assert errors[0].line == city.read_text().splitlines().index("  - id: service_requests") + 1

    edit(city, "  # website: https://performance.example.gov", "  website: https://performance.example.gov")
    assert validate(load_registry(city)).errors == []


def test_extracts_file_errors_name_line_and_entry(tmp_path):
    from citystat.extract import load_extracts

    path = tmp_path / "extracts.yaml"
    path.write_text(
        "extracts:\n"
        "  - id: a\n"
        "    kind: csvv\n"
        "    path: a.csv\n"
        "  - id: b\n"
        "    kind: csv\n"
        "    path: b.csv\n"
        "    out: data/b\n"
        "    time_colum: opened\n"
        "  - id: c\n"
        "    kind: csv\n"
        "    path: c.csv\n"
        "    out: data/c\n"
        "    time_column: opened\n"
        "    types: {opened: datetime}\n")
    config = load_extracts(path)
    assert config.extracts == {}
    found = {(p.line, p.entry, p.message) for p in config.problems}
    assert (3, "extract a", "kind must be one of csv, excel, postgres, http, not 'csvv' (did you mean 'csv'?)") in found
    assert (9, "extract b", "unknown key 'time_colum' (did you mean 'time_column'?)") in found
    assert any(line == 15 and entry == "extract c" and "unknown column type 'datetime'" in message
               for line, entry, message in found)

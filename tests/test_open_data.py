"""Open data: data.json valid against DCAT-US 1.1, downloads in three formats, sensitive
sources published only as suppressed aggregates, and the catalog command."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime

import polars as pl
import pytest

from citystat import CityStat
from citystat.cli import main
from citystat.publish.catalog import (CatalogError, catalog_document, catalog_entries, download_bytes,
                                      download_frame)
from citystat.publish.dcat import validate_catalog
from tests.support.cities import CASES, make_city


@pytest.fixture()
def city(tmp_path) -> CityStat:
    return CityStat.open(make_city(tmp_path / "city"), use_disk_cache=False).sync()


def test_data_json_is_valid_dcat_us_with_the_required_fields(city):
    doc = catalog_document(city)
    assert validate_catalog(doc) == []
    datasets = {d["title"]: d for d in doc["dataset"]}
    assert set(datasets) == {"Service requests", "Lead test cases"}      # old_feed is not publishable
    requests = datasets["Service requests"]
    assert requests["accrualPeriodicity"] == "R/P1D"
    assert requests["temporal"] == "2026-01-05T03:00:00/2026-03-01T22:00:00"
    assert requests["modified"] == "2026-03-01T22:00:00"
    assert requests["describedBy"] == "https://testville.example.gov/opendata/requests.dictionary.json"
    assert requests["contactPoint"]["hasEmail"] == "mailto:open@testville.example.gov"
    assert requests["license"] == "https://creativecommons.org/publicdomain/zero/1.0/"
    urls = sorted(d["downloadURL"] for d in requests["distribution"])
    assert urls == [f"https://testville.example.gov/opendata/requests.{f}" for f in ("csv", "parquet", "xlsx")]
    assert datasets["Lead test cases"]["accrualPeriodicity"] == "R/P1W"


def test_the_validator_rejects_a_broken_catalog(city):
    doc = catalog_document(city)
    del doc["dataset"][0]["contactPoint"]
    doc["dataset"][1]["accrualPeriodicity"] = "weekly"
    problems = validate_catalog(doc)
    assert any("contactPoint" in p for p in problems)
    assert any("accrualPeriodicity" in p for p in problems)


def test_catalog_needs_a_website(tmp_path):
    text = (make_city(tmp_path / "c").read_text()).replace("  website: https://testville.example.gov\n", "")
    (tmp_path / "c" / "metrics.yaml").write_text(text)
    stat = CityStat.open(tmp_path / "c" / "metrics.yaml", use_disk_cache=False).sync()
    with pytest.raises(CatalogError, match="city.website"):
        catalog_document(stat)


def test_entries_carry_dictionary_rows_and_time_range(city):
    entries = {e.id: e for e in catalog_entries(city)}
    requests = entries["requests"]
    assert requests.rows == 1120
    assert requests.first_time == datetime(2026, 1, 5, 3) and requests.last_time == datetime(2026, 3, 1, 22)
    fields = {f["name"]: f for f in requests.dictionary}
    assert fields["district"]["description"] == "Council district"
    assert fields["sla_hours"]["type"] == "integer"
    assert entries["cases"].aggregated and not requests.aggregated


def test_downloads_in_csv_parquet_and_xlsx(city):
    csv = pl.read_csv(io.BytesIO(download_bytes(city, "requests", "csv")))
    assert csv.height == 1120 and csv.columns == ["request_id", "created_at", "district", "sla_hours"]
    parquet = pl.read_parquet(io.BytesIO(download_bytes(city, "requests", "parquet")))
    assert parquet.height == 1120 and parquet["sla_hours"].max() == 500
    with zipfile.ZipFile(io.BytesIO(download_bytes(city, "requests", "xlsx"))) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert len(re.findall(r"<row ", sheet)) == 1121          # header + every row
    assert "<t>request_id</t>" in strings and "<t>district</t>" in strings
    with pytest.raises(CatalogError, match="not publishable"):
        download_frame(city, "old_feed")


def published_lines(frame: pl.DataFrame) -> list[list]:
    """Rows and columns of a published two-way table with its Total row and column."""
    grid = frame.drop("month").rows()
    rows = [list(r) for r in grid]
    columns = [list(c) for c in zip(*grid)]
    return rows + columns


def test_sensitive_source_is_published_as_a_suppressed_aggregate_only(city):
    frame = download_frame(city, "cases")
    assert "child_id" not in frame.columns and "test_id" not in frame.columns
    assert frame.columns == ["month", "D1", "D2", "D3", "Total"]
    by_month = {r["month"]: r for r in frame.iter_rows(named=True)}
    # hand counts: Jan D1 = 3 (hidden), D2 = 30, D3 = 25; Feb D1 = 40, D2 = 30, D3 = 26
    assert by_month["2026-01"]["D1"] is None
    assert by_month["Total"]["Total"] == sum(t for t, _ in CASES.values()) == 154
    # naive suppression would leave Jan D1 = 58 - 30 - 25: complementary suppression hides a
    # second cell in that row and in that column, so no line has exactly one hidden cell
    for line in published_lines(frame):
        assert sum(v is None for v in line) != 1, line
    published = [v for r in frame.drop("month").rows() for v in r if v is not None]
    assert all(v == 0 or v > 10 for v in published)
    assert 3 not in published


def test_catalog_command_writes_data_json_dictionaries_and_downloads(city, tmp_path, capsys):
    out = tmp_path / "site"
    code = main(["catalog", "--registry", str(city.registry_path), "--out", str(out), "--formats", "csv,parquet"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "data.json").read_text())
    assert validate_catalog(doc) == []
    assert (out / "opendata" / "requests.csv").is_file() and (out / "opendata" / "cases.parquet").is_file()
    dictionary = json.loads((out / "opendata" / "requests.dictionary.json").read_text())
    assert [f["name"] for f in dictionary["fields"]] == ["request_id", "created_at", "district", "sla_hours"]
    cases = pl.read_csv(out / "opendata" / "cases.csv")
    assert "child_id" not in cases.columns
    assert main(["catalog", "--registry", str(city.registry_path), "--out", str(out), "--formats", "pdf"]) == 2

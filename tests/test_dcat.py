"""data.json (Project Open Data v1.1) against the vendored official JSON Schemas."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from jsonschema import Draft4Validator

from citystat.publish.dcat import (SCHEMA_DIR, DatasetInfo, build_catalog, data_dictionary,
                                   data_dictionary_document, validate_catalog)

BASE = "https://performance.riverton.example.gov"


def sample_datasets() -> list[DatasetInfo]:
    return [
        DatasetInfo(
            identifier="service_requests", title="311 service requests",
            description="One row per 311 service request, with its SLA.",
            keywords=["311", "service requests"], modified=datetime(2026, 11, 15, 23, 59, 0),
            publisher="311 Customer Service", parent_publisher="City of Riverton",
            contact_name="Riverton Performance Office", contact_email="performance@riverton.example.gov",
            license="https://opendatacommons.org/licenses/pddl/1-0/", refresh="P1D",
            download_base=f"{BASE}/opendata/service_requests",
            described_by=f"{BASE}/opendata/service_requests.dictionary.json",
            temporal_start=date(2023, 11, 13), temporal_end=date(2026, 11, 15),
            spatial="Riverton"),
        DatasetInfo(
            identifier="permits", title="Building permits",
            description="One row per permit application.", keywords=["permits"],
            modified=date(2026, 11, 15), publisher="Buildings & Permits",
            contact_name="Permits desk", contact_email="permits@riverton.example.gov",
            license="https://opendatacommons.org/licenses/pddl/1-0/", refresh="P1W",
            download_base=f"{BASE}/opendata/permits", described_by=f"{BASE}/opendata/permits.dictionary.json",
            temporal_start=date(2023, 11, 13), temporal_end=date(2026, 11, 15)),
    ]


def catalog() -> dict:
    return build_catalog({"@id": f"{BASE}/data.json"}, sample_datasets())


def test_generated_catalog_has_the_required_pod_fields():
    doc = catalog()
    assert doc["@type"] == "dcat:Catalog"
    assert doc["conformsTo"] == "https://project-open-data.cio.gov/v1.1/schema"
    first = doc["dataset"][0]
    assert first["accrualPeriodicity"] == "R/P1D"
    assert doc["dataset"][1]["accrualPeriodicity"] == "R/P1W"
    assert first["temporal"] == "2023-11-13/2026-11-15"
    assert first["modified"] == "2026-11-15T23:59:00"
    assert first["contactPoint"] == {"@type": "vcard:Contact", "fn": "Riverton Performance Office",
                                     "hasEmail": "mailto:performance@riverton.example.gov"}
    media = {d["downloadURL"].rsplit(".", 1)[1]: d["mediaType"] for d in first["distribution"]}
    assert media == {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
                     "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    assert first["describedBy"].endswith("service_requests.dictionary.json")
    json.dumps(doc)  # serialisable as is


def test_generated_catalog_validates_non_federal():
    assert validate_catalog(catalog()) == []


def test_federal_profile_requires_omb_codes_and_accepts_them():
    problems = validate_catalog(catalog(), profile="federal")
    assert any("'bureauCode' is a required property" in p for p in problems)
    assert any("'programCode' is a required property" in p for p in problems)
    datasets = [DatasetInfo(**{**info.__dict__, "bureau_code": ["015:11"], "program_code": ["015:001"]})
                for info in sample_datasets()]
    assert validate_catalog(build_catalog({}, datasets), profile="federal") == []


def test_missing_required_field_is_named():
    doc = catalog()
    del doc["dataset"][1]["title"]
    problems = validate_catalog(doc)
    assert problems == ["dataset[1] (permits): 'title' is a required property"]
    doc = catalog()
    del doc["dataset"][0]["contactPoint"]["fn"]
    assert validate_catalog(doc) == [
        "dataset[0] (service_requests).contactPoint: 'fn' is a required property"]


def test_bad_accrual_periodicity_fails_readably():
    doc = catalog()
    doc["dataset"][0]["accrualPeriodicity"] = "weekly"
    problems = validate_catalog(doc)
    assert len(problems) == 1
    assert problems[0].startswith("dataset[0] (service_requests).accrualPeriodicity (Frequency): 'weekly'")
    assert "R/P1W" in problems[0]
    for good in ("R/P1W", "R/PT6H", "irregular", "R/P1M"):
        doc["dataset"][0]["accrualPeriodicity"] = good
        assert validate_catalog(doc) == [], good


def test_other_schema_rules_fire():
    doc = catalog()
    doc["dataset"][0]["accessLevel"] = "open"
    doc["dataset"][0]["temporal"] = "2023 to 2026"
    doc["dataset"][1]["distribution"][0]["mediaType"] = "csv"
    doc["conformsTo"] = "https://example.org/other"
    problems = "\n".join(validate_catalog(doc))
    assert "accessLevel" in problems and "'open' is not one of" in problems
    assert "temporal (Temporal): '2023 to 2026'" in problems
    assert "distribution[0].mediaType" in problems
    assert "conformsTo" in problems


def test_schema_files_are_draft4_and_self_consistent():
    for path in SCHEMA_DIR.glob("*/*.json"):
        schema = json.loads(path.read_text())
        Draft4Validator.check_schema(schema)
        assert schema["id"].startswith("https://project-open-data.cio.gov/v1.1/schema/")


def test_build_rejects_bad_input():
    infos = sample_datasets()
    with pytest.raises(ValueError, match="share the identifier 'permits'"):
        build_catalog({}, [infos[1], infos[1]])
    bad = DatasetInfo(**{**infos[0].__dict__, "refresh": "daily"})
    with pytest.raises(ValueError, match="refresh"):
        build_catalog({}, [bad])
    bad = DatasetInfo(**{**infos[0].__dict__, "formats": ("csv", "docx")})
    with pytest.raises(ValueError, match="docx"):
        build_catalog({}, [bad])


def test_data_dictionary_from_columns_and_types():
    class Source:  # the registry Source's shape
        id = "permits"
        title = "Building permits"
        description = "One row per permit."
        columns = {"permit_id": "Unique permit number", "applied_at": "When applied"}

    fields = data_dictionary(Source(), {"permit_id": "BIGINT", "applied_at": "TIMESTAMP",
                                        "valuation": "DOUBLE"})
    assert fields == [
        {"name": "permit_id", "description": "Unique permit number", "type": "integer", "sqlType": "BIGINT"},
        {"name": "applied_at", "description": "When applied", "type": "datetime", "sqlType": "TIMESTAMP"},
        {"name": "valuation", "description": "", "type": "number", "sqlType": "DOUBLE"},
    ]
    doc = data_dictionary_document(Source())
    assert doc["title"] == "Building permits" and doc["fields"][0]["type"] == "any"

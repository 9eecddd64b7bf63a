"""Project Open Data v1.1 (DCAT-US) catalog: build `data.json` and validate it offline.

Why: data.json is how Data.gov, search engines and civic-tech tools find a city's open data.
We build it from the registry's publishable sources and validate it against the official
JSON Schema, vendored in `schema/` (see `schema/PROVENANCE.md`), so a broken catalog fails
in CI instead of on a harvester.

Two schema profiles:

* ``"non-federal"`` (default) - the v1.1 schema as the GSA validator applies it to cities,
  counties and states: ``bureauCode``/``programCode`` (OMB federal codes) are optional.
* ``"federal"`` - the official schema as published, which requires those two codes.

Pure: no DuckDB, no Streamlit, no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from citystat.checks.quality import accrual_periodicity

SCHEMA_DIR = Path(__file__).parent / "schema"
POD_CONTEXT = "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld"
POD_CONFORMS_TO = "https://project-open-data.cio.gov/v1.1/schema"
POD_CATALOG_SCHEMA = "https://project-open-data.cio.gov/v1.1/schema/catalog.json"
DICTIONARY_MEDIA_TYPE = "application/json"

MEDIA_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
FORMAT_NAMES = {"csv": "CSV", "parquet": "Apache Parquet", "xlsx": "Excel (XLSX)", "json": "JSON"}

Profile = Literal["non-federal", "federal"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the catalog says about one published source (filled from the registry + engine).

    `refresh` is the source's ISO 8601 expected refresh (``P1D``); it becomes
    ``accrualPeriodicity`` ``R/P1D``. `download_base` is the URL prefix of the files; each
    format in `formats` is published at ``{download_base}.{format}``.
    """

    identifier: str
    title: str
    description: str
    keywords: Sequence[str]
    modified: date | datetime
    publisher: str
    contact_name: str
    contact_email: str
    license: str
    refresh: str
    download_base: str
    described_by: str
    temporal_start: date | datetime | None = None
    temporal_end: date | datetime | None = None
    spatial: str | None = None
    access_level: Literal["public", "restricted public", "non-public"] = "public"
    rights: str | None = None
    formats: Sequence[str] = ("csv", "parquet", "xlsx")
    landing_page: str | None = None
    theme: Sequence[str] = ()
    parent_publisher: str | None = None
    bureau_code: Sequence[str] = ()
    program_code: Sequence[str] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def iso(value: date | datetime) -> str:
    """ISO 8601 text for dates and (naive or aware) datetimes, seconds precision."""
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat()
    return value.isoformat()


def dataset_entry(info: DatasetInfo) -> dict[str, Any]:
    """One `dataset` entry of data.json."""
    if not info.keywords:
        raise ValueError(f"dataset {info.identifier!r}: give at least one keyword")
    unknown = [f for f in info.formats if f not in MEDIA_TYPES]
    if unknown:
        raise ValueError(f"dataset {info.identifier!r}: unknown download format(s) {unknown}; "
                         f"known: {sorted(MEDIA_TYPES)}")
    publisher: dict[str, Any] = {"@type": "org:Organization", "name": info.publisher}
    if info.parent_publisher:
        publisher["subOrganizationOf"] = {"@type": "org:Organization", "name": info.parent_publisher}
    entry: dict[str, Any] = {
        "@type": "dcat:Dataset",
        "identifier": info.identifier,
        "title": info.title,
        "description": info.description,
        "keyword": list(dict.fromkeys(info.keywords)),
        "modified": iso(info.modified),
        "publisher": publisher,
        "contactPoint": {"@type": "vcard:Contact", "fn": info.contact_name,
                         "hasEmail": f"mailto:{info.contact_email}"},
        "accessLevel": info.access_level,
        "license": info.license,
        "accrualPeriodicity": accrual_periodicity(info.refresh),
        "describedBy": info.described_by,
        "describedByType": DICTIONARY_MEDIA_TYPE,
        "distribution": [
            {"@type": "dcat:Distribution",
             "title": f"{info.title} ({FORMAT_NAMES[fmt]})",
             "downloadURL": f"{info.download_base}.{fmt}",
             "mediaType": MEDIA_TYPES[fmt],
             "format": FORMAT_NAMES[fmt],
             "describedBy": info.described_by,
             "describedByType": DICTIONARY_MEDIA_TYPE}
            for fmt in info.formats
        ],
    }
    if info.temporal_start is not None and info.temporal_end is not None:
        entry["temporal"] = f"{iso(info.temporal_start)}/{iso(info.temporal_end)}"
    if info.spatial:
        entry["spatial"] = info.spatial
    if info.rights:
        entry["rights"] = info.rights
    if info.landing_page:
        entry["landingPage"] = info.landing_page
    if info.theme:
        entry["theme"] = list(info.theme)
    if info.bureau_code:
        entry["bureauCode"] = list(info.bureau_code)
    if info.program_code:
        entry["programCode"] = list(info.program_code)
    entry.update(info.extra)
    return entry


def build_catalog(catalog_info: Mapping[str, Any], datasets: Sequence[DatasetInfo]) -> dict[str, Any]:
    """The whole data.json document.

    `catalog_info` may hold ``"@id"`` (the URL of data.json itself; recommended). Dataset
    identifiers must be unique.
    """
    seen: set[str] = set()
    for info in datasets:
        if info.identifier in seen:
            raise ValueError(f"two datasets share the identifier {info.identifier!r}")
        seen.add(info.identifier)
    doc: dict[str, Any] = {
        "@context": POD_CONTEXT,
        "@type": "dcat:Catalog",
        "conformsTo": POD_CONFORMS_TO,
        "describedBy": POD_CATALOG_SCHEMA,
    }
    if catalog_info.get("@id"):
        doc["@id"] = catalog_info["@id"]
    doc["dataset"] = [dataset_entry(info) for info in datasets]
    return doc


# --- validation ---------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _validator(profile: Profile):
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    folder = SCHEMA_DIR / profile
    if not folder.is_dir():
        raise ValueError(f"unknown schema profile {profile!r}; use 'non-federal' or 'federal'")
    resources = []
    root = None
    for path in sorted(folder.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = contents["id"].rstrip("#")
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT4)))
        if path.name == "catalog.json":
            root = contents
    registry = Registry().with_resources(resources)
    return Draft4Validator(root, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER)


def _where(doc: Mapping[str, Any], path: Sequence[Any]) -> str:
    parts: list[str] = []
    node: Any = doc
    for step in path:
        if isinstance(step, int):
            label = f"[{step}]"
            try:
                node = node[step]
                if isinstance(node, Mapping) and node.get("identifier"):
                    label = f"[{step}] ({node['identifier']})"
            except (IndexError, KeyError, TypeError):
                pass
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(step))
            try:
                node = node[step]
            except (KeyError, TypeError):
                pass
    return "".join(parts) or "catalog"


def _deepest(error):
    """For an anyOf failure whose branches went inside the value (e.g. a distribution item),
    report the nested error that names the field, not the generic "not valid under any"."""
    while error.validator == "anyOf" and error.context:
        deeper = [e for e in error.context if len(e.absolute_path) > len(error.absolute_path)]
        if not deeper:
            break
        error = max(deeper, key=lambda e: len(e.absolute_path))
    return error


def validate_catalog(doc: Mapping[str, Any], profile: Profile = "non-federal") -> list[str]:
    """Readable problems with a data.json document; an empty list means it is valid.

    Each message names where the problem is, e.g.
    ``dataset[0] (service_requests).accrualPeriodicity (Frequency): 'weekly' is not valid ...``.
    """
    validator = _validator(profile)
    problems = []
    errors = [_deepest(e) for e in validator.iter_errors(doc)]
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = _where(doc, list(error.absolute_path))
        title = error.schema.get("title") if isinstance(error.schema, Mapping) else None
        label = f"{where} ({title})" if title and error.validator != "required" else where
        message = error.message
        if error.validator == "anyOf":
            message = f"{error.instance!r} is not an accepted value"
            if isinstance(error.schema, Mapping) and error.schema.get("description"):
                message += f" - expected: {error.schema['description']}"
            if title == "Frequency":
                message += " (use 'irregular' or R/ followed by an ISO 8601 duration, e.g. R/P1W)"
        problems.append(f"{label}: {message}")
    return problems


# --- data dictionary (the describedBy target) ---------------------------------------------------

_TABLE_SCHEMA_TYPES = {
    "BIGINT": "integer", "INTEGER": "integer", "SMALLINT": "integer", "TINYINT": "integer",
    "HUGEINT": "integer", "UBIGINT": "integer", "UINTEGER": "integer",
    "DOUBLE": "number", "FLOAT": "number", "REAL": "number", "DECIMAL": "number",
    "VARCHAR": "string", "TEXT": "string", "STRING": "string",
    "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "datetime", "TIMESTAMP_NS": "datetime",
    "TIMESTAMP WITH TIME ZONE": "datetime", "TIME": "time", "INTERVAL": "duration",
}


def table_schema_type(sql_type: str | None) -> str:
    """Frictionless Table Schema type for a DuckDB/Polars type name ('any' when unknown)."""
    if not sql_type:
        return "any"
    name = str(sql_type).upper().split("(")[0].strip()
    polars_names = {"INT64": "integer", "INT32": "integer", "INT16": "integer", "INT8": "integer",
                    "UINT32": "integer", "UINT64": "integer", "FLOAT64": "number", "FLOAT32": "number",
                    "UTF8": "string", "DATETIME": "datetime"}
    return _TABLE_SCHEMA_TYPES.get(name) or polars_names.get(name) or "any"


def data_dictionary(source: Any, column_types: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Fields of a source's data dictionary, Frictionless Table Schema style.

    `source` is a registry Source (uses ``.columns``: name -> description) or a plain
    mapping of column -> description. `column_types` (name -> DuckDB type, from the engine)
    adds a ``type``; columns found in the data but not described are listed too, with an
    empty description, so the dictionary always covers the whole download.
    """
    columns = source if isinstance(source, Mapping) else getattr(source, "columns", None)
    if columns is None:
        raise ValueError("data_dictionary needs a source with .columns or a mapping of column -> description")
    types = dict(column_types or {})
    names = list(columns) + [name for name in types if name not in columns]
    fields = []
    for name in names:
        entry: dict[str, Any] = {"name": name, "description": columns.get(name, "") or ""}
        entry["type"] = table_schema_type(types.get(name))
        if name in types:
            entry["sqlType"] = str(types[name])
        fields.append(entry)
    return fields


def data_dictionary_document(source: Any, column_types: Mapping[str, str] | None = None, *,
                             title: str | None = None, description: str | None = None) -> dict[str, Any]:
    """The JSON document served at a dataset's ``describedBy`` URL."""
    doc: dict[str, Any] = {"fields": data_dictionary(source, column_types)}
    name = title or getattr(source, "title", None) or getattr(source, "id", None)
    if name:
        doc["title"] = name
    text = description or getattr(source, "description", None)
    if text:
        doc["description"] = text
    return doc

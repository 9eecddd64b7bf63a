"""The open-data catalog: what the city publishes, its dictionaries, downloads and data.json.

Why here and not in the page: the Open data page, `python -m citystat catalog --out DIR` (for
a web server or a portal to pick up) and the tests must publish exactly the same thing.

Rules:
- Only sources marked ``publishable: true`` in the registry are listed.
- A publishable source that is also ``sensitive`` (about people) is never published row by
  row: its download is an aggregate table (records per month, by district when the source
  has one) with small-cell suppression (`citystat.publish.suppression`), and its dictionary
  describes that table.
- Everything is read through the engine (the sandboxed DuckDB layer); no SQL is built from
  anything but registry identifiers, quoted.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from citystat.kpis.engine import quote_identifier
from citystat.registry.loader import Registry
from citystat.registry.models import Source
from citystat.publish.dcat import DatasetInfo, build_catalog, data_dictionary, data_dictionary_document
from citystat.publish.suppression import SuppressedTable, suppress_table, suppression_note
from citystat.files.csv import csv_bytes

if TYPE_CHECKING:
    from citystat.api import CityStat

FORMATS = ("csv", "parquet", "xlsx")
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header row
AGGREGATE_DIMENSION = "district"


class CatalogError(ValueError):
    """The registry lacks something the catalog needs (the message names the field)."""


@dataclass(frozen=True)
class CatalogEntry:
    """One published dataset as the Open data page shows it."""

    source: Source
    title: str
    rows: int | None
    first_time: datetime | None
    last_time: datetime | None
    last_refresh: datetime | None   # when the extract file last changed (UTC)
    license: str
    dictionary: list[dict[str, Any]]
    aggregated: bool                # sensitive: published as a suppressed aggregate table

    @property
    def id(self) -> str:
        return self.source.id


def publishable_sources(registry: Registry) -> list[Source]:
    return [s for s in registry.sources.values() if s.publishable]


def _publishable(stat: "CityStat", source_id: str) -> Source:
    source = stat.registry.sources.get(source_id)
    if source is None or not source.publishable:
        raise CatalogError(f"source {source_id!r} is not publishable (set publishable: true in "
                           f"{stat.registry.path} to list it in the open-data catalog)")
    if source_id not in stat.engine.available:
        raise CatalogError(f"source {source_id!r} cannot be read; see the Data health page")
    return source


def _file_modified(stat: "CityStat", source_id: str) -> datetime | None:
    files = stat.engine.source_files.get(source_id)
    if files is None:
        return None
    times = []
    for name in files.files:
        try:
            times.append(os.stat(name).st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times), tz=timezone.utc).replace(microsecond=0) if times else None


def catalog_entries(stat: "CityStat") -> list[CatalogEntry]:
    """Every publishable, readable source with its dictionary, time range and row count."""
    extents = {row["source_id"]: row for row in stat.rollup.extents.iter_rows(named=True)}
    entries = []
    for source in publishable_sources(stat.registry):
        if source.id not in stat.engine.available:
            continue
        extent = extents.get(source.id)
        if extent is not None:
            rows = int(extent["rows"])
        else:
            rows = int(stat.engine.query(f"SELECT count(*) AS n FROM {quote_identifier(source.id)}",
                                         context=f"source {source.id}")["n"][0])
        aggregated = source.sensitive
        dictionary = (aggregate_dictionary(stat, source) if aggregated
                      else data_dictionary(source, _column_types(stat, source.id)))
        entries.append(CatalogEntry(
            source=source, title=source.title or source.id, rows=rows,
            first_time=extent["first_time"] if extent else None,
            last_time=extent["last_time"] if extent else None,
            last_refresh=_file_modified(stat, source.id),
            license=source.license or stat.registry.city.license,
            dictionary=dictionary, aggregated=aggregated))
    return entries


def _column_types(stat: "CityStat", source_id: str) -> dict[str, str]:
    columns = stat.engine.columns(source_id)
    return dict(zip(columns["column_name"].to_list(), columns["column_type"].to_list()))


# --- downloads -------------------------------------------------------------------------------------

def sensitive_aggregate(stat: "CityStat", source: Source) -> SuppressedTable:
    """Records per month (rows) by district (columns, when the source has one), suppressed.

    Complementary suppression makes sure no hidden cell can be recovered from the row and
    column totals, which are part of the published table.
    """
    if not source.time_column:
        raise CatalogError(f"source {source.id!r} is sensitive and publishable but has no time_column: "
                           "an aggregate table needs one (or set publishable: false)")
    table = quote_identifier(source.id)
    month = f"strftime(date_trunc('month', {quote_identifier(source.time_column)}), '%Y-%m')"
    has_dimension = AGGREGATE_DIMENSION in _column_types(stat, source.id)
    dimension = (f"coalesce(CAST({quote_identifier(AGGREGATE_DIMENSION)} AS VARCHAR), 'Unknown')"
                 if has_dimension else "'Records'")
    long = stat.engine.query(
        f"SELECT {month} AS month, {dimension} AS label, count(*)::BIGINT AS n FROM {table} "
        f"WHERE {quote_identifier(source.time_column)} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
        context=f"source {source.id} aggregate")
    if long.is_empty():
        wide = pl.DataFrame({"month": [], "Records": []}, schema={"month": pl.String, "Records": pl.Int64})
    else:
        wide = long.pivot(on="label", index="month", values="n").fill_null(0).sort("month")
    count_columns = [c for c in wide.columns if c != "month"]
    return suppress_table(wide, count_columns=count_columns, row_key="month",
                          threshold=stat.registry.city.suppression_threshold)


def aggregate_dictionary(stat: "CityStat", source: Source) -> list[dict[str, Any]]:
    """The data dictionary of a sensitive source's published aggregate table."""
    noun = (source.title or source.id).lower()
    fields = [{"name": "month", "description": "Month (YYYY-MM) of the record's "
               f"{source.time_column or 'date'}; 'Total' for the whole period", "type": "string"}]
    published = sensitive_aggregate(stat, source).frame
    for name in published.columns[1:]:
        what = "all districts" if name == "Total" else f"{AGGREGATE_DIMENSION} {name}" \
            if AGGREGATE_DIMENSION in _column_types(stat, source.id) else "the city"
        fields.append({"name": name, "type": "integer",
                       "description": f"Number of {noun} records in {what}; empty when suppressed. "
                       + suppression_note(stat.registry.city.suppression_threshold)})
    return fields


def download_frame(stat: "CityStat", source_id: str) -> pl.DataFrame:
    """The table published for a source: every row, or the suppressed aggregate if sensitive."""
    source = _publishable(stat, source_id)
    if source.sensitive:
        return sensitive_aggregate(stat, source).frame
    order = f" ORDER BY {quote_identifier(source.time_column)}" if source.time_column else ""
    return stat.engine.query(f"SELECT * FROM {quote_identifier(source.id)}{order}",
                             context=f"source {source.id} download")


def to_bytes(frame: pl.DataFrame, fmt: str, *, sheet: str = "data") -> bytes:
    """CSV (UTF-8, header), Parquet (zstd) or XLSX bytes of a frame."""
    buffer = io.BytesIO()
    if fmt == "csv":
        buffer.write(csv_bytes(frame))
    elif fmt == "parquet":
        frame.write_parquet(buffer, compression="zstd")
    elif fmt == "xlsx":
        if frame.height > XLSX_MAX_ROWS:
            raise CatalogError(f"{frame.height:,} rows do not fit in an Excel sheet "
                               f"({XLSX_MAX_ROWS:,} at most): download CSV or Parquet instead")
        frame.write_excel(buffer, worksheet=sheet[:31], autofit=False, float_precision=6)
    else:
        raise CatalogError(f"unknown download format {fmt!r}; use one of {', '.join(FORMATS)}")
    return buffer.getvalue()


def download_bytes(stat: "CityStat", source_id: str, fmt: str) -> bytes:
    return to_bytes(download_frame(stat, source_id), fmt, sheet=source_id)


def file_name(source_id: str, fmt: str) -> str:
    return f"{source_id}.{fmt}"


# --- data.json ----------------------------------------------------------------------------------

def _website(registry: Registry) -> str:
    website = (registry.city.website or "").rstrip("/")
    if not website:
        raise CatalogError(f"{registry.path}: city.website is not set; data.json needs it for the "
                           "download and dictionary links")
    return website


def _contact(registry: Registry) -> str:
    if not registry.city.contact_email:
        raise CatalogError(f"{registry.path}: city.contact_email is not set; data.json needs a contact point")
    return registry.city.contact_email


def dataset_url(registry: Registry, source_id: str) -> str:
    return f"{_website(registry)}/opendata/{source_id}"


def dataset_info(stat: "CityStat", entry: CatalogEntry) -> DatasetInfo:
    """DCAT-US fields of one catalog entry."""
    registry = stat.registry
    source = entry.source
    base = dataset_url(registry, source.id)
    department = registry.departments.get(source.department) if source.department else None
    keywords = [entry.title.lower(), registry.city.name.lower()]
    if department:
        keywords.append(department.name.lower())
    description = source.description
    if entry.aggregated:
        description += (" Published as monthly counts"
                        + (f" by {AGGREGATE_DIMENSION}"
                           if AGGREGATE_DIMENSION in _column_types(stat, source.id) else "")
                        + " because the records are about people. "
                        + suppression_note(registry.city.suppression_threshold))
    modified = entry.last_time or entry.last_refresh or datetime.now(timezone.utc).replace(microsecond=0)
    return DatasetInfo(
        identifier=f"{_website(registry)}/opendata/{source.id}",
        title=entry.title,
        description=description,
        keywords=keywords,
        modified=modified,
        publisher=f"City of {registry.city.name}",
        parent_publisher=None,
        contact_name=f"{registry.city.name} performance team",
        contact_email=_contact(registry),
        license=entry.license,
        refresh=source.refresh,
        download_base=base,
        described_by=f"{base}.dictionary.json",
        temporal_start=entry.first_time,
        temporal_end=entry.last_time,
        landing_page=f"{_website(registry)}/opendata",
        formats=FORMATS,
    )


def catalog_document(stat: "CityStat") -> dict[str, Any]:
    """The whole data.json (Project Open Data v1.1) for every publishable source."""
    registry = stat.registry
    infos = [dataset_info(stat, entry) for entry in catalog_entries(stat)]
    return build_catalog({"@id": f"{_website(registry)}/data.json"}, infos)


def dictionary_document(stat: "CityStat", entry: CatalogEntry) -> dict[str, Any]:
    """The JSON served at a dataset's describedBy URL."""
    if entry.aggregated:
        return {"title": entry.title, "description": entry.source.description, "fields": entry.dictionary}
    return data_dictionary_document(entry.source, _column_types(stat, entry.id))


def write_catalog(stat: "CityStat", out_dir: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write data.json, each dataset's dictionary and its downloads under `out_dir`.

    Layout matches the URLs in data.json: ``data.json`` and ``opendata/<id>.<format>``,
    ``opendata/<id>.dictionary.json``. Returns the files written.
    """
    import json

    from citystat.publish.dcat import validate_catalog

    out = Path(out_dir)
    folder = out / "opendata"
    folder.mkdir(parents=True, exist_ok=True)
    document = catalog_document(stat)
    problems = validate_catalog(document)
    if problems:
        raise CatalogError("data.json does not validate against the DCAT-US 1.1 schema:\n" + "\n".join(problems))
    written = []
    for entry in catalog_entries(stat):
        path = folder / f"{entry.id}.dictionary.json"
        path.write_text(json.dumps(dictionary_document(stat, entry), indent=2, default=str), encoding="utf-8")
        written.append(path)
        frame = download_frame(stat, entry.id)
        for fmt in formats:
            if fmt == "xlsx" and frame.height > XLSX_MAX_ROWS:
                continue
            path = folder / file_name(entry.id, fmt)
            path.write_bytes(to_bytes(frame, fmt, sheet=entry.id))
            written.append(path)
    path = out / "data.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    written.append(path)
    return written

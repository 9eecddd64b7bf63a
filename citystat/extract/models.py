"""Typed models of extracts.yaml: where a city's data comes from and where its Parquet goes.

Pure and IO-free, like `citystat.registry.models`: loading with line numbers is in `loader.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from citystat.registry.models import Identifier, Strict

SIMPLE_TYPES = {
    "varchar": "VARCHAR", "text": "VARCHAR", "string": "VARCHAR",
    "bigint": "BIGINT", "integer": "BIGINT", "int": "BIGINT",
    "double": "DOUBLE", "float": "DOUBLE", "number": "DOUBLE",
    "boolean": "BOOLEAN", "bool": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ",
}
DECIMAL = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$", re.IGNORECASE)
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PARTITION_KEY = "month"


def canonical_type(text: str) -> str:
    """A declared column type as DuckDB spells it; only a fixed list is accepted (they reach SQL)."""
    simple = SIMPLE_TYPES.get(text.strip().lower())
    if simple:
        return simple
    match = DECIMAL.match(text.strip())
    if match and int(match.group(2)) <= int(match.group(1)) <= 38:
        return f"DECIMAL({int(match.group(1))},{int(match.group(2))})"
    raise ValueError(f"unknown column type {text!r}; use one of: {', '.join(sorted(set(SIMPLE_TYPES)))} "
                     "or decimal(p,s)")


class ExtractBase(Strict):
    id: Identifier = Field(description="Name of the extract (used by `citystat extract --only` and in messages).")
    out: str = Field(description="Output folder of month-partitioned Parquet (`<out>/month=YYYY-MM/part-*.parquet`); "
                                 "relative to extracts.yaml, or to $CITYSTAT_DATA_ROOT when it is set.")
    time_column: str = Field(description="Date or timestamp column that puts each row in a month partition.")
    watermark: str | None = Field(
        None, description="Column that only grows (an id or last-modified time): each run adds only rows above "
                          "the largest value already extracted. Omit to replace the whole output on each run.")
    types: dict[str, str] = Field(
        default_factory=dict, description="Column -> type (varchar, bigint, double, boolean, date, timestamp, "
                                          "timestamptz, decimal(p,s)). Other columns are inferred on the first run "
                                          "and kept from then on.")
    bad_rows: Literal["fail", "reject"] = Field(
        "fail", description="`fail`: a row that cannot be read stops the run and nothing is written. `reject`: good "
                            "rows are written and bad ones go to `<out>/_rejects/<run>.csv`. Both list every bad row "
                            "with its line number.")

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        return {column: canonical_type(kind) for column, kind in value.items()}

    @model_validator(mode="after")
    def _partition_key(self):
        if PARTITION_KEY in (self.time_column, self.watermark, *self.types):
            raise ValueError(f"a column named {PARTITION_KEY!r} clashes with the partition folders "
                             f"({PARTITION_KEY}=YYYY-MM); rename it in the source")
        return self


class CsvExtract(ExtractBase):
    kind: Literal["csv"]
    path: str = Field(description="CSV file (or glob), relative to extracts.yaml.")
    delimiter: str | None = Field(None, description="Field separator (detected when omitted).")
    encoding: Literal["utf-8", "latin-1", "utf-16"] = Field("utf-8", description="Text encoding of the file.")


class ExcelExtract(ExtractBase):
    kind: Literal["excel"]
    path: str = Field(description="XLSX file, relative to extracts.yaml.")
    sheet: str | int = Field(0, description="Sheet name, or its position (0 = first).")
    header_row: int = Field(1, ge=1, description="Spreadsheet row holding the column names.")


class PostgresExtract(ExtractBase):
    kind: Literal["postgres"]
    dsn_env: str = Field(description="Environment variable holding the connection string "
                                     "(postgresql://user@host/db; keep passwords out of this file).")
    table: str | None = Field(None, description="Table to read (optionally schema.table).")
    query: str | None = Field(None, description="Instead of table: a SELECT whose rows are extracted.")
    batch_rows: int = Field(50_000, ge=100, description="Rows fetched per round trip.")

    @model_validator(mode="after")
    def _table_or_query(self):
        if (self.table is None) == (self.query is None):
            raise ValueError("a postgres extract needs exactly one of 'table' or 'query'")
        return self


class HttpExtract(ExtractBase):
    kind: Literal["http"]
    url: str = Field(description="Export URL of an open-data portal dataset (e.g. Socrata /resource/<id>.json).")
    format: Literal["json", "csv"] = Field("json", description="`json` (a list of records per page) or `csv`.")
    page_size: int = Field(50_000, ge=1, le=1_000_000, description="Rows per page (`$limit`); pages follow by `$offset`.")
    server_filter: bool = Field(
        True, description="Ask the portal for new rows only (`$where=<watermark> > '<last>'`, `$order=<watermark>`).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _soql_names(self):
        for column in (self.watermark, self.time_column):
            if column and not COLUMN_NAME.match(column):
                raise ValueError(f"column {column!r}: portal queries need a plain column name")
        return self


Extract = Annotated[CsvExtract | ExcelExtract | PostgresExtract | HttpExtract, Field(discriminator="kind")]


class ExtractsFile(Strict):
    """The whole extracts.yaml."""

    extracts: list[Extract] = Field(description="Each extract: where the rows come from and where they go.")

"""Read each kind of extract into a DuckDB table `typed` (one row per source row) plus its bad rows.

CSV goes through DuckDB's own reader (`read_csv` with `store_rejects`: fast, parallel, and it
reports each row it cannot read with its line number). Excel (via fastexcel: DuckDB's `excel`
extension is not bundled with the wheel and would need a download), portal exports over HTTP and
PostgreSQL numerics arrive as text in a table `raw` with a `_line` column and are typed by
`cast_raw`, which reports every value that does not read as its column's type.
"""

from __future__ import annotations

import csv
import io
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from citystat.extract.models import CsvExtract, ExcelExtract, HttpExtract, PostgresExtract
from citystat.extract.progress import Progress
from citystat.kpis.engine import quote_identifier

INFER_ORDER = ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN")
INFER_TOLERANCE = 0.001  # a type fits when at most 0.1 % of a column's values do not read as it


@dataclass(frozen=True)
class BadRow:
    line: int | None  # line (CSV), sheet row (Excel), record number (HTTP, PostgreSQL)
    column: str | None
    message: str
    raw: str = ""


class ExtractError(Exception):
    """The extract cannot run (configuration, source unreachable, columns missing)."""


# ---- text-staged sources --------------------------------------------------------------------

def _stage_strings(con: duckdb.DuckDBPyConnection, columns: list[str], lines: list[int],
                   values: dict[str, list[str | None]]) -> None:
    arrays = [pa.array(lines, pa.int64())] + [pa.array(values[c], pa.string()) for c in columns]
    table = pa.Table.from_arrays(arrays, names=["_line", *columns])
    con.register("raw_arrow", table)
    con.execute("CREATE OR REPLACE TABLE raw AS SELECT * FROM raw_arrow")
    con.unregister("raw_arrow")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def infer_type(con: duckdb.DuckDBPyConnection, column: str) -> str:
    """The first of BIGINT, DOUBLE, DATE, TIMESTAMP, BOOLEAN that (nearly) every value reads as; else VARCHAR.

    Numbers with leading zeros (ZIP codes, ids) stay text. Values that do not read as the chosen
    type are reported as bad rows by `cast_raw`, never dropped."""
    v = "NULLIF(trim(" + quote_identifier(column) + "), '')"
    checks = {
        "BIGINT": f"NOT regexp_matches({v}, '^[-+]?[0-9]+$') OR TRY_CAST({v} AS BIGINT) IS NULL "
                  f"OR regexp_matches({v}, '^-?0[0-9]')",  # DuckDB would round '42.35' to 42
        "DOUBLE": f"TRY_CAST({v} AS DOUBLE) IS NULL OR regexp_matches({v}, '^-?0[0-9]')",
        "DATE": f"TRY_CAST({v} AS DATE) IS NULL OR length({v}) > 10",
        "TIMESTAMP": f"TRY_CAST({v} AS TIMESTAMP) IS NULL",
        "BOOLEAN": f"lower({v}) NOT IN ('true', 'false', 't', 'f', 'yes', 'no')",
    }
    selects = ", ".join(f"count(*) FILTER (WHERE {v} IS NOT NULL AND ({check}))" for check in checks.values())
    row = con.execute(f"SELECT count({v}), {selects} FROM raw").fetchone()
    total, misses = row[0], row[1:]
    if not total:
        return "VARCHAR"
    for kind, missed in zip(checks, misses):
        if missed <= int(total * INFER_TOLERANCE):
            return kind
    return "VARCHAR"


def cast_raw(con: duckdb.DuckDBPyConnection, types: dict[str, str], infer: set[str]) -> tuple[dict[str, str], list[BadRow]]:
    """`raw` (text) -> `typed`; returns the types used and every value that did not read."""
    described = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'raw' ORDER BY ordinal_position").fetchall()
    columns = [name for name, _ in described if name != "_line"]
    kinds = dict(described)
    used: dict[str, str] = {}
    for column in columns:
        if column in types:
            used[column] = types[column]
        elif kinds[column] == "VARCHAR" and column in infer:
            used[column] = infer_type(con, column)
        else:
            used[column] = kinds[column]
    bad: list[BadRow] = []
    selects = ["_line"]
    for column in columns:
        name = quote_identifier(column)
        target = used[column]
        if target == kinds[column]:
            selects.append(name)
            continue
        value = f"NULLIF(trim({name}), '')" if target != "VARCHAR" else name
        selects.append(f"TRY_CAST({value} AS {target}) AS {name}")
        failed = con.execute(f"SELECT _line, {name} FROM raw WHERE {value} IS NOT NULL "
                             f"AND TRY_CAST({value} AS {target}) IS NULL ORDER BY _line").fetchall()
        bad += [BadRow(line, column, f"{value_text!r} is not a {target.lower()}", value_text)
                for line, value_text in failed]
    # A row with a value that does not read is a bad row as a whole: it is reported, not loaded half-empty.
    con.execute("CREATE OR REPLACE TEMP TABLE bad_lines (line BIGINT)")
    if bad:
        con.executemany("INSERT INTO bad_lines VALUES (?)", [(b.line,) for b in bad])
    con.execute(f"CREATE OR REPLACE TABLE typed AS SELECT {', '.join(selects)} FROM raw "
                "WHERE _line NOT IN (SELECT line FROM bad_lines)")
    return used, bad


# ---- CSV (DuckDB's reader) ------------------------------------------------------------------

def read_csv(con: duckdb.DuckDBPyConnection, spec: CsvExtract, path: str, types: dict[str, str]) -> list[BadRow]:
    options = ["header = true", "store_rejects = true", "rejects_table = 'csv_bad'", "rejects_scan = 'csv_scan'"]
    params: dict[str, Any] = {"path": path}
    if types:
        options.append("types = $types")
        params["types"] = types
    if spec.delimiter:
        options.append("delim = $delim")
        params["delim"] = spec.delimiter
    if spec.encoding != "utf-8":
        options.append("encoding = $encoding")
        params["encoding"] = spec.encoding
    try:
        keep = _leading_zero_columns(con, path, options[4:], params, types)
        if keep:  # codes such as ZIPs and precincts: DuckDB's sniffer would read them as numbers
            types = {**types, **{column: "VARCHAR" for column in keep}}
            params["types"] = types
            if "types = $types" not in options:
                options.append("types = $types")
        con.execute(f"CREATE OR REPLACE TABLE typed AS SELECT NULL::BIGINT AS _line, * "
                    f"FROM read_csv($path, {', '.join(options)})", params)
    except duckdb.Error as exc:
        raise ExtractError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    rows = con.execute("SELECT line, column_name, error_type::VARCHAR, error_message, csv_line FROM csv_bad "
                       "ORDER BY line").fetchall()
    return [BadRow(line, column, f"{kind.lower()}: {message.splitlines()[0]}", text)
            for line, column, kind, message, text in rows]


def _leading_zero_columns(con, path: str, options: list[str], params: dict, types: dict[str, str]) -> list[str]:
    """Undeclared columns the sniffer reads as numbers although some values have leading zeros."""
    sniff = ", ".join(["header = true", *options])
    described = con.execute(f"DESCRIBE SELECT * FROM read_csv($path, {sniff})", params).fetchall()
    numeric = [name for name, kind, *_ in described
               if name not in types and kind in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "HUGEINT")]
    if not numeric:
        return []
    checks = ", ".join(f"bool_or(regexp_matches({quote_identifier(c)}, '^-?0[0-9]'))" for c in numeric)
    text = ", ".join(["header = true", "all_varchar = true", "ignore_errors = true",
                      *[o for o in options if not o.startswith("types")]])
    found = con.execute(f"SELECT {checks} FROM read_csv($path, {text})",
                        {k: v for k, v in params.items() if k != "types"}).fetchone()
    return [c for c, leading in zip(numeric, found) if leading]


def csv_lines_of(path: str, records: list[int], encoding: str = "utf-8", skip_lines: set[int] = frozenset()) -> dict[int, int]:
    """Line numbers of the given 1-based data records, counting as DuckDB does (rejected lines skipped)."""
    wanted, found = set(records), {}
    with open(path, newline="", encoding=encoding) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        record, start = 0, reader.line_num + 1
        for _ in reader:
            line, start = start, reader.line_num + 1
            if line in skip_lines:
                continue
            record += 1
            if record in wanted:
                found[record] = line
                if len(found) == len(wanted):
                    break
    return found


# ---- Excel (fastexcel) ----------------------------------------------------------------------

def read_excel(con: duckdb.DuckDBPyConnection, spec: ExcelExtract, path: str) -> None:
    import fastexcel

    try:
        reader = fastexcel.read_excel(path)
        sheet = reader.load_sheet(spec.sheet, header_row=spec.header_row - 1, dtypes="string",
                                  skip_whitespace_tail_rows=True)
        batch = sheet.to_arrow()
    except Exception as exc:  # fastexcel raises its own error types
        raise ExtractError(f"cannot read {path} sheet {spec.sheet!r}: {exc}") from None
    first = spec.header_row + 1
    table = pa.Table.from_batches([batch])
    table = table.add_column(0, "_line", pa.array(range(first, first + table.num_rows), pa.int64()))
    con.register("raw_arrow", table)
    con.execute("CREATE OR REPLACE TABLE raw AS SELECT * FROM raw_arrow")
    con.unregister("raw_arrow")


# ---- open-data portal over HTTP (Socrata-style paging) --------------------------------------

def soql_literal(value: Any) -> str:
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    elif isinstance(value, date):
        text = value.isoformat() + "T00:00:00.000"
    elif isinstance(value, (int, float)):
        return repr(value)
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


def read_http(con: duckdb.DuckDBPyConnection, spec: HttpExtract, after: Any, progress: Progress,
              timeout: float = 60.0) -> list[BadRow]:
    columns: list[str] = []
    values: dict[str, list[str | None]] = {}
    lines: list[int] = []
    bad: list[BadRow] = []
    offset = 0
    while True:
        query = {"$limit": spec.page_size, "$offset": offset}
        if spec.server_filter and spec.watermark:
            query["$order"] = f"{spec.watermark},:id"
            if after is not None:
                query["$where"] = f"{spec.watermark} > {soql_literal(after)}"
        separator = "&" if urllib.parse.urlsplit(spec.url).query else "?"
        url = spec.url + separator + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read().decode("utf-8")
        except (OSError, ValueError) as exc:
            raise ExtractError(f"cannot fetch {url}: {exc}") from None
        records = _page_records(spec, body, url)
        for index, record in enumerate(records):
            number = offset + index + 1
            if isinstance(record, BadRow):
                bad.append(BadRow(number, None, record.message, record.raw))
                continue
            for key in record:
                if key not in values:
                    columns.append(key)
                    values[key] = [None] * len(lines)
            lines.append(number)
            for key in columns:
                values[key].append(_text(record.get(key)))
        progress.update(len(records))
        if len(records) < spec.page_size:
            break
        offset += len(records)
    if not columns:
        raise ExtractError(f"{spec.url}: the export returned no rows and no columns")
    _stage_strings(con, columns, lines, values)
    return bad


def _page_records(spec: HttpExtract, body: str, url: str) -> list[dict | BadRow]:
    if spec.format == "json":
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ExtractError(f"{url}: not JSON ({exc})") from None
        if not isinstance(data, list):
            raise ExtractError(f"{url}: expected a JSON list of records, got {type(data).__name__}")
        return [r if isinstance(r, dict) else BadRow(None, None, "record is not an object", json.dumps(r))
                for r in data]
    rows = list(csv.reader(io.StringIO(body)))
    if not rows:
        return []
    header, out = rows[0], []
    for row in rows[1:]:
        if len(row) != len(header):
            out.append(BadRow(None, None, f"expected {len(header)} fields, found {len(row)}", ",".join(row)))
        else:
            out.append(dict(zip(header, row)))
    return out


# ---- PostgreSQL (psycopg 3) -----------------------------------------------------------------

PG_ARROW = {16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(), 701: pa.float64(),
            1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC")}


def postgres_query(spec: PostgresExtract, after: Any):
    from psycopg import sql

    if spec.table:
        source = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*spec.table.split(".")))
    else:  # the configured SELECT (trusted configuration, like the registry's SQL files)
        source = sql.SQL("SELECT * FROM ({}) AS extract_source").format(sql.SQL(spec.query.strip().rstrip(";")))
    if spec.watermark is None:
        return source, []
    wm = sql.Identifier(spec.watermark)
    if after is None:
        return sql.SQL("SELECT * FROM ({}) AS s ORDER BY {}").format(source, wm), []
    return sql.SQL("SELECT * FROM ({}) AS s WHERE {} > %s ORDER BY {}").format(source, wm, wm), [after]


def read_postgres(con: duckdb.DuckDBPyConnection, spec: PostgresExtract, after: Any, progress: Progress) -> set[str]:
    """Stage the rows in `raw`; returns the columns staged as text that should be typed (numerics)."""
    import psycopg

    dsn = os.environ.get(spec.dsn_env)
    if not dsn:
        raise ExtractError(f"environment variable {spec.dsn_env} (the connection string) is not set")
    dsn = dsn.replace("postgresql+psycopg://", "postgresql://", 1)
    query, params = postgres_query(spec, after)
    batches: list[pa.RecordBatch] = []
    numeric: set[str] = set()
    line = 0
    try:
        with psycopg.connect(dsn) as conn, conn.cursor(name="citystat_extract") as cursor:
            cursor.itersize = spec.batch_rows
            cursor.execute(query, params)
            while True:
                rows = cursor.fetchmany(spec.batch_rows)
                if cursor.description is None:
                    break
                names = [c.name for c in cursor.description]
                types = [PG_ARROW.get(c.type_code, pa.string()) for c in cursor.description]
                numeric |= {c.name for c in cursor.description if c.type_code == 1700}
                arrays = [pa.array(range(line + 1, line + 1 + len(rows)), pa.int64())]
                for index, kind in enumerate(types):
                    column = [r[index] for r in rows]
                    if kind == pa.string():
                        column = [_text(v) for v in column]
                    arrays.append(pa.array(column, kind))
                batches.append(pa.RecordBatch.from_arrays(arrays, names=["_line", *names]))
                line += len(rows)
                progress.update(len(rows))
                if len(rows) < spec.batch_rows:
                    break
    except psycopg.Error as exc:
        raise ExtractError(f"PostgreSQL ({spec.table or 'query'}): {str(exc).strip().splitlines()[0]}") from None
    table = pa.Table.from_batches(batches)
    con.register("raw_arrow", table)
    con.execute("CREATE OR REPLACE TABLE raw AS SELECT * FROM raw_arrow")
    con.unregister("raw_arrow")
    return numeric

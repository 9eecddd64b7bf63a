"""Run one extract: read, type, keep only new rows, write month partitions atomically.

Output layout (what a registry source's `path: <out>/*/*.parquet` reads)::

    <out>/month=2015-01/part-<run>-0.parquet
    <out>/_extract_state.json      watermark, column types, recent runs
    <out>/_rejects/<run>.csv       bad rows of a run (line, column, problem, value)

Atomicity: new files are written as `*.parquet.tmp` (no `*.parquet` glob sees them), then a
journal naming them and the new watermark is written (atomic rename: the commit point), then
each file is renamed into place and the state updated. A run killed before the commit point
leaves only `.tmp` files, removed by the next run; one killed after it is completed by the next
run. Every Parquet file is therefore whole, and a month never shows half a run's rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from citystat.extract.loader import ExtractsConfig
from citystat.extract.models import PARTITION_KEY, CsvExtract, ExcelExtract, HttpExtract, PostgresExtract
from citystat.extract.progress import Progress
from citystat.extract.readers import (
    BadRow,
    ExtractError,
    cast_raw,
    csv_lines_of,
    read_csv,
    read_excel,
    read_http,
    read_postgres,
)
from citystat.kpis.engine import quote_identifier, quote_literal

STATE = "_extract_state.json"
JOURNAL = "_extract_pending.json"
REJECTS = "_rejects"
SHOWN_BAD_ROWS = 20


@dataclass
class RunResult:
    extract: str
    source_rows: int = 0
    new_rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    months: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    watermark: Any = None


class BadRowsError(ExtractError):
    def __init__(self, result: RunResult, message: str):
        self.result = result
        super().__init__(message)


# ---- state ---------------------------------------------------------------------------------

def _encode(value: Any) -> dict | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"type": "timestamp", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"type": "text", "value": str(value)}
    return {"type": "int" if isinstance(value, int) else "float", "value": value}


def _decode(stored: dict | None) -> Any:
    if not stored:
        return None
    kind, value = stored["type"], stored["value"]
    return {"timestamp": datetime.fromisoformat, "date": date.fromisoformat,
            "int": int, "float": float}.get(kind, str)(value)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_state(out: Path) -> dict:
    try:
        return json.loads((out / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def recover(out: Path) -> None:
    """Finish a run that passed its commit point; drop the leftovers of one that did not."""
    journal = out / JOURNAL
    if journal.exists():
        pending = json.loads(journal.read_text(encoding="utf-8"))
        _apply(out, pending)
    for leftover in out.glob(f"{PARTITION_KEY}=*/*.parquet.tmp"):
        leftover.unlink()
    for folder in out.glob(f"{PARTITION_KEY}=*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _apply(out: Path, pending: dict) -> None:
    for name in pending["files"]:
        tmp = out / (name + ".tmp")
        if tmp.exists():
            os.replace(tmp, out / name)
    for name in pending.get("delete", []):
        (out / name).unlink(missing_ok=True)
    _write_json(out / STATE, pending["state"])
    (out / JOURNAL).unlink(missing_ok=True)


# ---- the run ---------------------------------------------------------------------------------

def run_extract(config: ExtractsConfig, extract_id: str, *, full: bool = False, progress: bool | None = None,
                now: datetime | None = None) -> RunResult:
    spec = config.extracts[extract_id]
    out = config.output_path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    recover(out)
    state = {} if full else read_state(out)
    incremental = spec.watermark is not None and not full
    after = _decode(state.get("watermark")) if incremental else None
    types = {**state.get("types", {}), **spec.types}
    result = RunResult(extract=spec.id)
    location = spec.url if isinstance(spec, HttpExtract) else (
        spec.dsn_env if isinstance(spec, PostgresExtract) else str(config.input_path(spec.path)))
    con = duckdb.connect()
    with Progress(f"{spec.id}: reading", unit="rows", enabled=progress) as bar:
        bad = _stage(con, spec, config, types, after, bar)
    used = _column_types(con)
    missing = [c for c in (spec.time_column, spec.watermark, *spec.types) if c and c not in used]
    if missing:
        raise ExtractError(f"{spec.id}: column(s) {', '.join(missing)} not in {location} "
                           f"(has: {', '.join(sorted(used))})")
    if PARTITION_KEY in used:
        raise ExtractError(f"{spec.id}: the source has a column {PARTITION_KEY!r}, which clashes with the partition "
                           f"folders ({PARTITION_KEY}=YYYY-MM); rename it in the source or its query")
    if not (used[spec.time_column].startswith("TIMESTAMP") or used[spec.time_column] == "DATE"):
        raise ExtractError(f"{spec.id}: time_column {spec.time_column!r} reads as {used[spec.time_column]}, not a "
                           f"date or timestamp; declare it under types (e.g. {spec.time_column}: timestamp)")
    time = quote_identifier(spec.time_column)
    result.source_rows = con.execute("SELECT count(*) FROM typed").fetchone()[0] + len(
        {b.line for b in bad if b.line is not None}) + sum(1 for b in bad if b.line is None)
    bad += _null_times(con, spec, location)  # these rows are in `typed`: already counted
    where, params = f"{time} IS NOT NULL", {}
    if after is not None:
        where += f" AND {quote_identifier(spec.watermark)} > $after"
        params["after"] = after
    con.execute(f"CREATE OR REPLACE TABLE new_rows AS SELECT * EXCLUDE (_line) FROM typed WHERE {where}", params)
    result.new_rows = con.execute("SELECT count(*) FROM new_rows").fetchone()[0]
    result.bad_rows = bad
    run_id = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    if bad:
        result.rejects_file = str(_write_rejects(out, run_id, location, bad))
        if spec.bad_rows == "fail":
            raise BadRowsError(result, _bad_rows_message(spec, location, result))
    if spec.watermark:
        latest = con.execute(f"SELECT max({quote_identifier(spec.watermark)}) FROM new_rows").fetchone()[0]
        result.watermark = latest if latest is not None else after
    new_state = {
        "extract": spec.id, "kind": spec.kind, "watermark": _encode(result.watermark),
        "types": {c: t for c, t in used.items() if c != "_line"},
        "runs": (state.get("runs", []) + [{
            "run": run_id, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_rows": result.source_rows, "new_rows": result.new_rows, "bad_rows": len(bad),
            "full": not incremental}])[-20:],
    }
    _write_partitions(con, spec, out, run_id, result, new_state, replace=not incremental)
    return result


def _stage(con, spec, config: ExtractsConfig, types: dict[str, str], after: Any, bar: Progress) -> list[BadRow]:
    if isinstance(spec, CsvExtract):
        path = config.input_path(spec.path)
        bad = read_csv(con, spec, str(path), types)
        bar.update(con.execute("SELECT count(*) FROM typed").fetchone()[0])
        return bad
    if isinstance(spec, ExcelExtract):
        read_excel(con, spec, str(config.input_path(spec.path)))
        bar.update(con.execute("SELECT count(*) FROM raw").fetchone()[0])
        infer = set(_column_types(con, "raw")) - {"_line"}
        _, bad = cast_raw(con, types, infer)
        return bad
    if isinstance(spec, HttpExtract):
        bad = read_http(con, spec, after, bar)
        infer = set(_column_types(con, "raw")) - {"_line"}
        _, cast_bad = cast_raw(con, types, infer)
        return bad + cast_bad
    numeric = read_postgres(con, spec, after, bar)
    _, bad = cast_raw(con, {**{c: "DOUBLE" for c in numeric}, **types}, set())
    return bad


def _column_types(con, table: str = "typed") -> dict[str, str]:
    return dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $t "
                            "ORDER BY ordinal_position", {"t": table}).fetchall())


def _null_times(con, spec, location: str) -> list[BadRow]:
    """Rows without a time cannot go in a month: bad rows (with their line numbers), never dropped."""
    time = quote_identifier(spec.time_column)
    if isinstance(spec, CsvExtract):
        records = [r[0] for r in con.execute(
            f"SELECT n FROM (SELECT row_number() OVER () AS n, {time} AS t FROM typed) WHERE t IS NULL").fetchall()]
        if not records:
            return []
        skip = {r[0] for r in con.execute("SELECT line FROM csv_bad").fetchall()}
        lines = csv_lines_of(location, records, spec.encoding, skip)
        return [BadRow(lines.get(r), spec.time_column, f"no {spec.time_column}: the row cannot be placed in a month")
                for r in records]
    rows = con.execute(f"SELECT _line FROM typed WHERE {time} IS NULL ORDER BY _line").fetchall()
    return [BadRow(r[0], spec.time_column, f"no {spec.time_column}: the row cannot be placed in a month")
            for r in rows]


def _unit(spec) -> str:
    return {"csv": "line", "excel": "row", "http": "record", "postgres": "row"}[spec.kind]


def _bad_rows_message(spec, location: str, result: RunResult) -> str:
    lines = [f"{spec.id}: {len(result.bad_rows)} bad row(s) in {location}; nothing was written "
             f"(all listed in {result.rejects_file}; set bad_rows: reject to load the good rows):"]
    for row in result.bad_rows[:SHOWN_BAD_ROWS]:
        where = f"{_unit(spec)} {row.line}" if row.line is not None else f"{_unit(spec)} ?"
        lines.append(f"  {location}:{where}: " + (f"column {row.column}: " if row.column else "") + row.message)
    if len(result.bad_rows) > SHOWN_BAD_ROWS:
        lines.append(f"  ... and {len(result.bad_rows) - SHOWN_BAD_ROWS} more")
    return "\n".join(lines)


def _write_rejects(out: Path, run_id: str, location: str, bad: list[BadRow]) -> Path:
    folder = out / REJECTS
    folder.mkdir(exist_ok=True)
    path = folder / f"{run_id}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "line", "column", "problem", "value"])
        for row in bad:
            writer.writerow([location, row.line, row.column or "", row.message, row.raw])
    return path


def _write_partitions(con, spec, out: Path, run_id: str, result: RunResult, new_state: dict, *, replace: bool) -> None:
    time = quote_identifier(spec.time_column)
    staging = out / f"_staging-{run_id}"
    old = sorted(str(p.relative_to(out)) for p in out.glob(f"{PARTITION_KEY}=*/*.parquet")) if replace else []
    files: list[str] = []
    if result.new_rows:
        with Progress(f"{spec.id}: writing", unit="rows", total=result.new_rows, enabled=None) as bar:
            con.execute(
                f"COPY (SELECT *, strftime({time}, '%Y-%m') AS {PARTITION_KEY} FROM new_rows ORDER BY {time}) "
                f"TO {quote_literal(str(staging))} (FORMAT parquet, PARTITION_BY ({PARTITION_KEY}), "
                f"FILENAME_PATTERN {quote_literal('part-' + run_id + '-{i}')}, FILE_EXTENSION 'parquet.tmp')")
            bar.update(result.new_rows)
        for tmp in sorted(staging.glob(f"{PARTITION_KEY}=*/*.parquet.tmp")):
            folder = out / tmp.parent.name
            folder.mkdir(exist_ok=True)
            target = folder / tmp.name
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)  # still *.tmp: invisible to readers until the commit
            files.append(str(target.relative_to(out))[: -len(".tmp")])
        shutil.rmtree(staging, ignore_errors=True)
        months = con.execute(f"SELECT strftime({time}, '%Y-%m') AS m, count(*) FROM new_rows GROUP BY m ORDER BY m")
        result.months = dict(months.fetchall())
    result.files = files
    _write_json(out / JOURNAL, {"run": run_id, "files": files, "delete": old, "state": new_state})  # commit point
    _apply(out, {"files": files, "delete": old, "state": new_state})

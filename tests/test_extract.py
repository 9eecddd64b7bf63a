"""`citystat extract` against real data: the 2015 Boston 311 requests exported to CSV and XLSX,
a real PostgreSQL server and an open-data portal (Socrata-style paging) on loopback."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from citystat.extract import BadRowsError, load_extracts, read_state, run_extract
from citystat.extract import runner

from .conftest import realdata

from tests.support.pg_server import pg_server, pg_url  # noqa: F401  (pytest fixtures)

COLUMNS = ("CASE_ENQUIRY_ID", "OPEN_DT", "CLOSED_DT", "CASE_STATUS", "SUBJECT", "TYPE", "LOCATION_ZIPCODE", "LATITUDE")
SPLIT = "2015-07-01"


@pytest.fixture(scope="module")
def boston():
    path = realdata("boston_311_2015.parquet")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE boston AS SELECT * FROM read_parquet('{path}') ORDER BY OPEN_DT, CASE_ENQUIRY_ID")
    return con


def month_counts(con, where: str = "TRUE") -> dict[str, int]:
    return dict(con.execute(f"SELECT strftime(OPEN_DT, '%Y-%m') m, count(*) FROM boston WHERE {where} "
                            "GROUP BY m ORDER BY m").fetchall())


def written(out: Path, time_column: str = "OPEN_DT") -> dict[str, int]:
    """Rows per month as DuckDB reads the output the way a registry source does (a glob, hive folders)."""
    con = duckdb.connect()
    rows = con.execute(f"SELECT month, strftime({time_column}, '%Y-%m') = month, count(*) "
                       f"FROM read_parquet('{out}/*/*.parquet', union_by_name = true) GROUP BY ALL ORDER BY 1").fetchall()
    assert all(same for _, same, _ in rows), "a row is in the wrong month folder"
    return {month: n for month, _, n in rows}


def write_yaml(folder: Path, body: str) -> Path:
    path = folder / "extracts.yaml"
    path.write_text("extracts:\n" + body)
    return path


def physical_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


# ---- CSV ----------------------------------------------------------------------------------------

def test_csv_bad_rows_then_incremental(tmp_path, boston):
    csv_path = tmp_path / "requests.csv"
    boston.execute(f"COPY (SELECT * FROM boston WHERE OPEN_DT < '{SPLIT}') TO '{csv_path}' (HEADER)")
    first_half = boston.execute(f"SELECT count(*) FROM boston WHERE OPEN_DT < '{SPLIT}'").fetchone()[0]
    header = csv_path.read_text().splitlines()[0].split(",")
    good = boston.execute(f"SELECT * FROM boston WHERE OPEN_DT < '{SPLIT}' LIMIT 1").fetchone()
    base = physical_lines(csv_path)

    def row(**changes) -> str:
        values = ["" if v is None else str(v) for v in good]
        for column, value in changes.items():
            values[header.index(column)] = value
        return ",".join(f'"{v}"' for v in values)

    with open(csv_path, "a") as handle:
        handle.write(row(LATITUDE="forty-two") + "\n")            # line base+1: not a number
        handle.write(row(OPEN_DT="2015-13-45 10:00:00") + "\n")   # line base+2: not a timestamp
        handle.write(row() + ',"one too many"\n')                 # line base+3: extra field
        handle.write(row(OPEN_DT="") + "\n")                      # line base+4: no time: no month
    bad_lines = [base + 1, base + 2, base + 3, base + 4]

    spec = ("  - id: requests\n    kind: csv\n    path: requests.csv\n    out: out/requests\n"
            "    time_column: OPEN_DT\n    watermark: OPEN_DT\n"
            "    types: {OPEN_DT: timestamp, CLOSED_DT: timestamp, TARGET_DT: timestamp, LATITUDE: double}\n")
    config = load_extracts(write_yaml(tmp_path, spec))
    with pytest.raises(BadRowsError) as failed:
        run_extract(config, "requests", progress=False)
    message = str(failed.value)
    for line in bad_lines:
        assert f"requests.csv:line {line}: " in message, message
    assert "column LATITUDE" in message and "column OPEN_DT: no OPEN_DT" in message
    out = tmp_path / "out" / "requests"
    assert not list(out.rglob("*.parquet")) and not (out / runner.STATE).exists()  # nothing written

    config = load_extracts(write_yaml(tmp_path, spec + "    bad_rows: reject\n"))
    result = run_extract(config, "requests", progress=False)
    assert result.new_rows == first_half and len(result.bad_rows) == 4
    rejects = Path(result.rejects_file).read_text().splitlines()
    assert [int(line.split(",")[1]) for line in rejects[1:]] == bad_lines
    assert written(out) == month_counts(boston, f"OPEN_DT < '{SPLIT}'")
    assert read_state(out)["watermark"]["value"] == boston.execute(
        f"SELECT max(OPEN_DT) FROM boston WHERE OPEN_DT < '{SPLIT}'").fetchone()[0].isoformat()

    # The next export holds the whole year: only the new half is added. The types inferred on the
    # first run are kept, so November's one precinct "0502A" (all others read as numbers, "306.0")
    # is a bad row, reported with its line, not a silently changed column.
    boston.execute(f"COPY (SELECT * FROM boston) TO '{csv_path}' (HEADER)")
    odd_line = next(i for i, text in enumerate(csv_path.read_text().splitlines(), 1) if ",0502A," in text)
    second = run_extract(config, "requests", progress=False)
    assert [(b.line, b.column) for b in second.bad_rows] == [(odd_line, "precinct")]
    assert second.new_rows == boston.execute(f"SELECT count(*) FROM boston WHERE OPEN_DT >= '{SPLIT}'").fetchone()[0] - 1
    expected = month_counts(boston)
    assert written(out) == {**expected, "2015-11": expected["2015-11"] - 1}
    assert set(second.months) == {f"2015-{m:02d}" for m in range(7, 13)}
    third = run_extract(config, "requests", progress=False)
    assert third.new_rows == 0 and third.files == []

    # The fix: declare the column's type and rebuild.
    config = load_extracts(write_yaml(tmp_path, spec.replace("LATITUDE: double}", "LATITUDE: double, precinct: varchar}")))
    rebuilt = run_extract(config, "requests", full=True, progress=False)
    assert rebuilt.bad_rows == [] and rebuilt.new_rows == 121145
    assert written(out) == expected


def test_csv_output_is_a_registry_source(tmp_path, boston):
    from citystat import CityStat

    boston.execute(f"COPY (SELECT {', '.join(COLUMNS)} FROM boston) TO '{tmp_path / 'requests.csv'}' (HEADER)")
    config = load_extracts(write_yaml(tmp_path, "  - id: requests\n    kind: csv\n    path: requests.csv\n"
                                                "    out: data/requests\n    time_column: OPEN_DT\n"))
    run_extract(config, "requests", progress=False)
    (tmp_path / "metrics.yaml").write_text(
        "city: {name: Boston, timezone: America/New_York}\n"
        "departments: [{id: bos311, name: BOS:311}]\n"
        "sources:\n  - {id: requests, path: data/requests/*/*.parquet, description: 311 requests, time_column: OPEN_DT}\n"
        "metrics:\n  - {id: opened, title: Opened, department: bos311, owner: Director, description: Requests,\n"
        "     unit: count, direction: neutral, grain: month, source: requests, measure: {agg: count}}\n")
    city = CityStat.open(tmp_path / "metrics.yaml", use_disk_cache=False)
    frame = city.kpi("opened", grain="month")
    assert frame["value"].to_list()[:11] == list(month_counts(boston).values())[:11]


def test_killed_run_leaves_no_half_output_and_is_recovered(tmp_path, boston, monkeypatch):
    csv_path = tmp_path / "r.csv"
    boston.execute(f"COPY (SELECT {', '.join(COLUMNS)} FROM boston WHERE OPEN_DT < '2015-03-01') TO '{csv_path}' (HEADER)")
    config = load_extracts(write_yaml(tmp_path, "  - id: r\n    kind: csv\n    path: r.csv\n    out: out\n"
                                                "    time_column: OPEN_DT\n    watermark: OPEN_DT\n"))
    out = tmp_path / "out"
    real_write = runner._write_json

    def killed_at_commit(path, data):
        if path.name == runner.JOURNAL:
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(runner, "_write_json", killed_at_commit)
    with pytest.raises(KeyboardInterrupt):
        run_extract(config, "r", progress=False)
    assert list(out.rglob("*.parquet.tmp")) and not list(out.rglob("*.parquet"))  # invisible to readers
    monkeypatch.setattr(runner, "_write_json", real_write)

    # Killed after the commit point, half-way through the renames: the next run completes it.
    real_replace = runner.os.replace
    calls = {"n": 0}

    def killed_in_renames(src, dst):
        if str(src).endswith(".parquet.tmp") and str(dst).endswith(".parquet"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(runner.os, "replace", killed_in_renames)
    with pytest.raises(KeyboardInterrupt):
        run_extract(config, "r", progress=False)
    monkeypatch.setattr(runner.os, "replace", real_replace)
    assert (out / runner.JOURNAL).exists()
    result = run_extract(config, "r", progress=False)  # recovers, then finds nothing new
    assert result.new_rows == 0
    assert written(out) == month_counts(boston, "OPEN_DT < '2015-03-01'")
    assert not list(out.rglob("*.tmp")) and not (out / runner.JOURNAL).exists()


# ---- Excel --------------------------------------------------------------------------------------

def test_excel_slice_with_inferred_types_and_bad_rows(tmp_path, boston):
    pytest.importorskip("fastexcel")
    import xlsxwriter

    rows = boston.execute(f"SELECT {', '.join(COLUMNS)} FROM boston ORDER BY OPEN_DT LIMIT 5000").fetchall()
    path = tmp_path / "requests.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Requests")
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, COLUMNS)
    bad = {100: ("LATITUDE", "n/a"), 2000: ("OPEN_DT", "yesterday"), 3000: ("OPEN_DT", None)}
    for index, row in enumerate(rows):
        values = dict(zip(COLUMNS, row))
        if index in bad:
            values[bad[index][0]] = bad[index][1]
        for col, name in enumerate(COLUMNS):
            value = values[name]
            if isinstance(value, datetime):
                sheet.write_datetime(index + 1, col, value, stamp)
            elif value is not None:
                sheet.write(index + 1, col, value)
    book.close()
    config = load_extracts(write_yaml(tmp_path, "  - id: xl\n    kind: excel\n    path: requests.xlsx\n"
                                                "    sheet: Requests\n    out: out/xl\n    time_column: OPEN_DT\n"
                                                "    watermark: OPEN_DT\n    bad_rows: reject\n"))
    result = run_extract(config, "xl", progress=False)
    assert result.source_rows == 5000 and result.new_rows == 4997
    assert sorted((b.line, b.column) for b in result.bad_rows) == [
        (102, "LATITUDE"), (2002, "OPEN_DT"), (3002, "OPEN_DT")]  # spreadsheet rows (header is row 1)
    con = duckdb.connect()
    kinds = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             f"read_parquet('{tmp_path}/out/xl/*/*.parquet'))").fetchall())
    assert kinds["OPEN_DT"] == "TIMESTAMP" and kinds["LATITUDE"] == "DOUBLE"
    assert kinds["SUBJECT"] == "VARCHAR"
    expected = dict(con.execute(
        "SELECT strftime(t, '%Y-%m'), count(*) FROM (SELECT unnest($t) AS t) GROUP BY 1",
        {"t": [r[1] for i, r in enumerate(rows) if i not in bad]}).fetchall())
    assert written(tmp_path / "out" / "xl") == expected


# ---- PostgreSQL ---------------------------------------------------------------------------------

@pytest.mark.postgres
def test_postgres_table_incremental(tmp_path, boston, pg_url, monkeypatch):
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE requests (case_id text PRIMARY KEY, opened timestamp NOT NULL, "
                     "closed timestamp, subject text, zipcode text, latitude numeric(9, 6))")

        def load(where: str) -> int:
            rows = boston.execute(f"SELECT CASE_ENQUIRY_ID, OPEN_DT, CLOSED_DT, SUBJECT, LOCATION_ZIPCODE, LATITUDE "
                                  f"FROM boston WHERE {where}").fetchall()
            with conn.cursor() as cursor, cursor.copy("COPY requests FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return len(rows)

        first = load(f"OPEN_DT < '{SPLIT}'")
        monkeypatch.setenv("TEST_311_DSN", dsn)
        config = load_extracts(write_yaml(tmp_path, "  - id: pg\n    kind: postgres\n    dsn_env: TEST_311_DSN\n"
                                                    "    table: requests\n    out: out/pg\n    time_column: opened\n"
                                                    "    watermark: opened\n    batch_rows: 20000\n"))
        result = run_extract(config, "pg", progress=False)
        assert result.new_rows == first and result.bad_rows == []
        out = tmp_path / "out" / "pg"
        assert written(out, "opened") == month_counts(boston, f"OPEN_DT < '{SPLIT}'")

        added = load(f"OPEN_DT >= '{SPLIT}'")
        second = run_extract(config, "pg", progress=False)
        assert second.new_rows == added
        assert written(out, "opened") == month_counts(boston)
    con = duckdb.connect()
    kinds = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             f"read_parquet('{out}/*/*.parquet'))").fetchall())
    assert kinds["opened"] == "TIMESTAMP" and kinds["latitude"] == "DOUBLE" and kinds["zipcode"] == "VARCHAR"
    total = con.execute(f"SELECT sum(latitude) FROM read_parquet('{out}/*/*.parquet')").fetchone()[0]
    assert total == pytest.approx(boston.execute("SELECT sum(LATITUDE) FROM boston").fetchone()[0], rel=1e-9)


@pytest.mark.postgres
def test_postgres_query_with_hostile_names(tmp_path, pg_url, monkeypatch):
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE TABLE "odd ""name""; --" ("when" timestamp, "v" int)')
        conn.execute('INSERT INTO "odd ""name""; --" VALUES (\'2015-01-05\', 1), (\'2015-02-05\', 2), (NULL, 3)')
    monkeypatch.setenv("TEST_DSN", dsn)
    config = load_extracts(write_yaml(tmp_path, "  - id: q\n    kind: postgres\n    dsn_env: TEST_DSN\n"
                                                "    table: 'odd \"name\"; --'\n    out: out\n    time_column: when\n"
                                                "    watermark: when\n"))
    with pytest.raises(BadRowsError, match=r"row 3: column when: no when"):
        run_extract(config, "q", progress=False)


# ---- open-data portal over HTTP (loopback) ------------------------------------------------------

class Portal:
    """A Socrata-like export: `$limit`/`$offset` paging, `$order`, `$where=<col> > '<value>'`; JSON or CSV."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.requests: list[dict] = []
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                portal.requests.append(query)
                rows = portal.records
                if "$where" in query:
                    column, value = re.fullmatch(r"(\w+) > '(.*)'", query["$where"]).groups()
                    rows = [r for r in rows if r.get(column) is not None and r[column] > value]
                if "$order" in query:
                    column = query["$order"].split(",")[0]
                    rows = sorted(rows, key=lambda r: r.get(column) or "")
                offset, limit = int(query.get("$offset", 0)), int(query.get("$limit", 1000))
                page = rows[offset:offset + limit]
                body = json.dumps(page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/resource/wc8w-nujj.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def socrata_records(boston, where: str) -> list[dict]:
    """Rows as Socrata's JSON export gives them: every value a string, floating timestamps, nulls left out."""
    rows = boston.execute(f"SELECT CASE_ENQUIRY_ID, strftime(OPEN_DT, '%Y-%m-%dT%H:%M:%S.000'), "
                          f"strftime(CLOSED_DT, '%Y-%m-%dT%H:%M:%S.000'), SUBJECT, LATITUDE::VARCHAR "
                          f"FROM boston WHERE {where}").fetchall()
    names = ("case_enquiry_id", "open_dt", "closed_dt", "subject", "latitude")
    return [{k: v for k, v in zip(names, row) if v is not None} for row in rows]


def test_portal_paging_bad_record_and_incremental(tmp_path, boston):
    records = socrata_records(boston, "OPEN_DT < '2015-03-01'")
    records[1500]["latitude"] = "unknown"  # record 1501 of the export
    portal = Portal(records)
    try:
        config = load_extracts(write_yaml(tmp_path, f"  - id: portal\n    kind: http\n    url: {portal.url}\n"
                                                    "    page_size: 1000\n    out: out/portal\n"
                                                    "    time_column: open_dt\n    watermark: open_dt\n"
                                                    "    bad_rows: reject\n"))
        result = run_extract(config, "portal", progress=False)
        assert [(b.line, b.column) for b in result.bad_rows] == [(1501, "latitude")]
        assert result.new_rows == len(records) - 1
        pages = len(records) // 1000 + 1
        assert [int(r["$offset"]) for r in portal.requests] == [1000 * i for i in range(pages)]
        assert all("$where" not in r for r in portal.requests)
        out = tmp_path / "out" / "portal"
        expected = month_counts(boston, "OPEN_DT < '2015-03-01'")
        assert written(out, "open_dt") == {**expected, "2015-01": expected["2015-01"] - 1}  # the bad record
        assert read_state(out)["types"]["open_dt"] == "TIMESTAMP"

        portal.records = records + socrata_records(boston, "OPEN_DT >= '2015-03-01' AND OPEN_DT < '2015-04-01'")
        portal.requests.clear()
        second = run_extract(config, "portal", progress=False)
        last = max(r["open_dt"] for r in records)
        assert portal.requests[0]["$where"] == f"open_dt > '{last}'"  # only new rows asked for
        assert second.new_rows == month_counts(boston, "OPEN_DT < '2015-04-01'")["2015-03"]
        expected = month_counts(boston, "OPEN_DT < '2015-04-01'")
        assert written(out, "open_dt") == {**expected, "2015-01": expected["2015-01"] - 1}
    finally:
        portal.close()


def test_cli_exit_codes_for_cron(tmp_path, capsys):
    from citystat.cli import main

    (tmp_path / "a.csv").write_text("id,at,v\n1,2015-01-01 10:00:00,1.5\n2,2015-02-01 10:00:00,oops\n")
    path = write_yaml(tmp_path, "  - id: a\n    kind: csv\n    path: a.csv\n    out: out\n    time_column: at\n"
                                "    types: {v: double}\n")
    assert main(["extract", str(path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2 [extract a]" in err and "a.csv:line 3: column v" in err
    (tmp_path / "a.csv").write_text("id,at,v,zip\n1,2015-01-01 10:00:00,1.5,02118\n2,2015-02-01 10:00:00,2,2124\n")
    assert main(["extract", str(path)]) == 0
    assert "a: 2 new row(s) of 2 read (2015-01: 1, 2015-02: 1)" in capsys.readouterr().out
    zips = duckdb.connect().execute(f"SELECT zip FROM read_parquet('{tmp_path}/out/*/*.parquet') ORDER BY id")
    assert [z for (z,) in zips.fetchall()] == ["02118", "2124"]  # codes keep their leading zeros
    assert main(["extract", str(path), "--only", "b"]) == 1

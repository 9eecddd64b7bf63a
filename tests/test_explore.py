"""Explore: the cells model, read-only runs with row and time limits, and the page via AppTest."""

from __future__ import annotations

import time

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from citystat.analyst.explore import (
    add_cell, cell_chart, export_sql, move_cell, new_cell, normalise_cells, period_expression, remove_cell,
    run_cell, update_cell,
)

from .conftest import PROJECT_ROOT

REQUESTS = PROJECT_ROOT / "data" / "service_requests.parquet"


# ---- cells model ------------------------------------------------------------------------------

def test_cells_can_be_added_edited_moved_and_removed():
    cells = [new_cell("SELECT 1"), new_cell("SELECT 2"), new_cell("SELECT 3")]
    a, b, c = (cell["id"] for cell in cells)
    assert [x["id"] for x in move_cell(cells, c, -1)] == [a, c, b]
    assert [x["id"] for x in move_cell(cells, a, 1)] == [b, a, c]
    assert [x["id"] for x in move_cell(cells, a, -5)] == [a, b, c]  # clamped at the top
    assert [x["id"] for x in move_cell(cells, a, 9)] == [b, c, a]
    assert [x["id"] for x in remove_cell(cells, b)] == [a, c]
    edited = update_cell(cells, b, sql="SELECT 22", mark="bar", x="k")
    assert edited[1]["sql"] == "SELECT 22" and edited[1]["chart"]["mark"] == "bar"
    assert cells[1]["sql"] == "SELECT 2"  # the original list is untouched
    inserted = add_cell(cells, "SELECT 9", after=a)
    assert [x["sql"] for x in inserted] == ["SELECT 1", "SELECT 9", "SELECT 2", "SELECT 3"]
    with pytest.raises(ValueError, match="no setting 'colour_scale'"):
        update_cell(cells, a, colour_scale="x")
    with pytest.raises(KeyError, match="no cell"):
        remove_cell(cells, "nope")


def test_loaded_cells_are_checked_and_name_the_bad_cell():
    cells = normalise_cells([{"id": "x", "sql": "SELECT 1"}, {"sql": "SELECT 2", "chart": {"mark": "bar"}}])
    assert cells[0]["chart"]["mark"] == "none" and cells[1]["chart"]["mark"] == "bar"
    with pytest.raises(ValueError, match="cell 2: unknown chart mark 'pie'"):
        normalise_cells([{"sql": "SELECT 1"}, {"sql": "SELECT 2", "chart": {"mark": "pie"}}])
    with pytest.raises(ValueError, match="cell 1"):
        normalise_cells([{"sql": 3}])


def test_export_keeps_cells_in_order_as_one_sql_file():
    cells = [new_cell("SELECT 1;", title="first"), new_cell("SELECT 2", title="second", mark="line", x="a", y="b")]
    text = export_sql(cells, "demo")
    assert text.index("-- [1] first") < text.index("SELECT 1;") < text.index("-- [2] second") < text.index("SELECT 2;")
    assert "-- chart: line x=a y=b" in text
    assert "SELECT 1;;" not in text


# ---- running cells against the sample city --------------------------------------------------

def test_a_cell_counts_like_an_independent_read_of_the_parquet(sample_city):
    result = run_cell(sample_city.engine,
                      "SELECT district, count(*) AS requests FROM service_requests GROUP BY district ORDER BY district")
    assert result.ok, result.error
    expected = (pl.read_parquet(REQUESTS).group_by("district").len(name="requests")
                .sort("district").with_columns(pl.col("requests").cast(pl.Int64)))
    assert result.frame.with_columns(pl.col("requests").cast(pl.Int64)).equals(expected)
    assert not result.truncated


def test_row_limit_cuts_and_says_so(sample_city):
    result = run_cell(sample_city.engine, "SELECT request_id FROM service_requests", row_limit=25)
    assert result.frame.height == 25 and result.truncated
    exact = run_cell(sample_city.engine, "SELECT DISTINCT district FROM service_requests", row_limit=8)
    assert exact.frame.height == 8 and not exact.truncated


@pytest.mark.parametrize("sql, words", [
    ("COPY (SELECT 1) TO '{tmp}/out.csv'", "COPY statements are refused"),
    ("ATTACH '{tmp}/other.db' AS other", "ATTACH statements are refused"),
    ("INSTALL httpfs", "statements are refused"),
    ("CREATE TABLE scratch AS SELECT 1 AS x", "CREATE statements are refused"),
    ("SELECT * FROM read_csv('/etc/passwd')", "Explore reads only the registered extracts"),
    ("SELECT * FROM read_parquet('{tmp}/*.parquet')", "Explore reads only the registered extracts"),
    ("SET enable_external_access = true", "SET statements are refused"),
    ("SELECT 1; SELECT 2", "One statement per cell"),
])
def test_writes_and_reads_outside_the_data_folder_are_refused(sample_city, tmp_path, sql, words):
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "outside.parquet")
    result = run_cell(sample_city.engine, sql.format(tmp=tmp_path))
    assert not result.ok
    assert words in result.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.parquet"]  # nothing was written


def test_duckdb_errors_come_back_as_the_cells_message(sample_city):
    result = run_cell(sample_city.engine, "SELECT no_such_column FROM service_requests")
    assert not result.ok and "no_such_column" in result.error and "Binder Error" in result.error


def test_a_slow_query_is_stopped_at_the_time_limit(sample_city):
    started = time.perf_counter()
    result = run_cell(sample_city.engine,
                      "SELECT sum(a.range * b.range) FROM range(200000) AS a, range(200000) AS b", time_limit=0.5)
    elapsed = time.perf_counter() - started
    assert not result.ok and "Stopped after 0.5 s" in result.error
    assert elapsed < 5
    # the engine still works afterwards
    assert run_cell(sample_city.engine, "SELECT 1 AS one").frame["one"][0] == 1


def test_period_expression_gives_each_grain_its_periods(sample_city):
    sql = f"SELECT {period_expression('created_at', 7)} AS period_start, count(*) AS n FROM service_requests GROUP BY 1"
    months = run_cell(sample_city.engine, sql, grain="month").frame
    years = run_cell(sample_city.engine, sql, grain="fiscal_year").frame
    raw = pl.read_parquet(REQUESTS, columns=["created_at"])
    assert months.height == raw["created_at"].dt.truncate("1mo").n_unique()
    # fiscal years start on 1 July (FY named by its end year): shift six months back, truncate to the year
    fy_starts = raw.select(pl.col("created_at").dt.offset_by("-6mo").dt.year()).to_series().n_unique()
    assert years.height == fy_starts
    assert all(d.month == 7 and d.day == 1 for d in years["period_start"])


def test_chart_follows_the_analysts_choices():
    frame = pl.DataFrame({"day": pl.date_range(pl.date(2025, 1, 1), pl.date(2025, 1, 3), eager=True),
                          "n": [1, 2, 3], "kind": ["a", "b", "a"]})
    spec = cell_chart(frame, "bar", "day", "n", "kind").to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"] == {"field": "day", "type": "temporal"}
    assert spec["encoding"]["color"]["field"] == "kind"
    assert cell_chart(frame, "none", "day", "n") is None
    assert cell_chart(frame, "line", "day", "missing") is None


# ---- the page -----------------------------------------------------------------------------------

def _explore_page() -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    app.run()
    app.switch_page("pages/explore.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _result_frames(app: AppTest) -> list:
    return [f.value for f in app.dataframe if "column" not in f.value.columns]


def test_explore_page_adds_runs_fails_refuses_saves_and_reopens():
    app = _explore_page()
    assert app.title[0].value == "Explore"
    first = app.session_state["explore_cells"][0]["id"]

    app.button(key="add_cell_bottom").click().run()
    cells = app.session_state["explore_cells"]
    assert len(cells) == 2
    second = cells[1]["id"]
    app.text_area(key=f"sql_{second}").input(
        "SELECT channel, count(*) AS n FROM service_requests GROUP BY channel ORDER BY channel").run()
    app.button(key=f"run_{second}").click().run()
    assert not app.exception and not app.error
    frames = _result_frames(app)
    expected = pl.read_parquet(REQUESTS).group_by("channel").len().sort("channel")
    assert frames and frames[0]["channel"].tolist() == expected["channel"].to_list()
    assert frames[0]["n"].tolist() == expected["len"].to_list()

    app.text_area(key=f"sql_{first}").input("SELECT nonsense FROM service_requests").run()
    app.button(key=f"run_{first}").click().run()
    assert any("nonsense" in e.value for e in app.error)

    app.text_area(key=f"sql_{first}").input("CREATE TABLE x AS SELECT 1").run()
    app.button(key=f"run_{first}").click().run()
    assert any("Explore is read-only" in e.value for e in app.error)

    app.button(key=f"up_{second}").click().run()
    assert [c["id"] for c in app.session_state["explore_cells"]] == [second, first]

    app.text_input(key="notebook_name").input("channels").run()
    app.button(key="save_notebook").click().run()
    assert any("Saved 'channels'" in s.value for s in app.success)

    app.button(key=f"remove_{first}").click().run()
    assert [c["id"] for c in app.session_state["explore_cells"]] == [second]
    app.selectbox(key="open_name").select("channels").run()
    app.button(key="open_notebook").click().run()
    reopened = app.session_state["explore_cells"]
    assert [c["sql"] for c in reopened] == [
        "SELECT channel, count(*) AS n FROM service_requests GROUP BY channel ORDER BY channel",
        "CREATE TABLE x AS SELECT 1"]
    assert not app.exception

"""Golden SQL: the exact text each builder of `citystat/kpis/sql.py` produces, pinned in fixtures.

In the style of sqlglot's fixture-driven optimizer tests: `tests/fixtures/sql/metrics.yaml`
is a small hand-written registry; `tests/fixtures/sql/<builder>.sql` holds, per case, the
parameters and the SQL the builder must produce for it:

    -- case: <name>
    -- params: {"not_recorded": "(not recorded)"}
    SELECT ...
        FROM ...

The SQL is stored laid out one clause per line (`sql.format_sql`); joining its lines with single
spaces (indentation dropped) gives back the builder's exact output, which is what is compared.
Text that has line breaks of its own (a SQL-file metric) is stored verbatim after a
`-- verbatim` line.

When a builder is changed ON PURPOSE, regenerate the fixtures and review the diff:

    /work/main/.venv/bin/python -m tests.test_sql_golden --update
    git diff tests/fixtures/sql/

The second half runs the golden SQL on real DuckDB over a tiny Parquet file made from `ROWS`
below and checks the numbers against values worked out by hand in the comments.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from citystat.kpis import sql as builders
from citystat.registry.loader import load_registry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sql"
REGISTRY = load_registry(FIXTURES / "metrics.yaml")
FY = REGISTRY.city.fiscal_year_start_month
M = REGISTRY.metrics
SHARED = [M["requests"], M["on_time"], M["amount_avg"], M["amount_sum"]]  # one daily scan, two dimensions


def _pair(sql: str, params: dict | None = None) -> tuple[str, dict]:
    return sql, params or {}


# builder -> case -> () -> (sql, params)
CASES = {
    "aggregate_sql": {
        "count_all": lambda: _pair(builders.aggregate_sql(M["requests"].measure, None)),
        "count_with_two_filters": lambda: _pair(builders.aggregate_sql(M["on_time"].numerator, M["on_time"].filter)),
        "percentile": lambda: _pair(builders.aggregate_sql(M["hours_p90"].measure, M["hours_p90"].filter)),
        "count_distinct": lambda: _pair(builders.aggregate_sql(M["districts_seen"].measure, None)),
        "avg": lambda: _pair(builders.aggregate_sql(M["amount_avg"].measure, None)),
    },
    "daily_partials_sql": {
        "one_metric_one_dimension": lambda: builders.daily_partials_sql("requests", "created_at", [M["requests"]]),
        "shared_scan_two_dimensions": lambda: builders.daily_partials_sql("requests", "created_at", SHARED),
        "since_a_day": lambda: builders.daily_partials_sql("requests", "created_at", [M["amount_avg"]],
                                                           since=date(2024, 1, 8)),
    },
    "rollup_days_sql": {
        "shared_scan_all_grains": lambda: _pair(builders.rollup_days_sql(FY, "created_at", SHARED, "days")),
        "no_dimension_one_grain": lambda: _pair(builders.rollup_days_sql(FY, "created_at", [M["amount_avg"]],
                                                                         "days", ("month",))),
    },
    "daily_scan_sql": {
        "requests_week_and_fiscal_year": lambda: builders.daily_scan_sql(FY, "requests", "created_at",
                                                                         [M["requests"]], ("week", "fiscal_year")),
    },
    "holistic_scan_sql": {
        "median_week_month": lambda: builders.holistic_scan_sql(FY, "requests", "created_at", M["hours_median"],
                                                                ("week", "month")),
        "daily_percentile_gets_daily_breakdowns": lambda: builders.holistic_scan_sql(
            FY, "requests", "created_at", M["hours_p90"], ("day", "week")),
        "count_distinct_since": lambda: builders.holistic_scan_sql(FY, "requests", "created_at", M["districts_seen"],
                                                                   ("month",), since=date(2024, 1, 1)),
    },
    "sql_metric_query": {
        "open_requests_month": lambda: builders.sql_metric_query(
            REGISTRY.sql_text(M["open_requests"].sql), "month", date(1900, 1, 1), date(2999, 12, 31), FY),
    },
    "metric_total_sql": {
        "rate_by_week": lambda: builders.metric_total_sql(FY, "requests", "created_at", M["on_time"], "week"),
        "median_by_month": lambda: builders.metric_total_sql(FY, "requests", "created_at", M["hours_median"], "month"),
    },
    "source_extents_sql": {
        "requests": lambda: _pair(builders.source_extents_sql("requests", "created_at")),
    },
    "new_files_sql": {
        "two_time_columns": lambda: _pair(builders.new_files_sql(["closed_at", "created_at"], "created_at")),
    },
}


def _json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


VERBATIM = "-- verbatim (the text keeps its own line breaks)"


def render(builder: str) -> str:
    """The fixture text the builders produce now for every case of `builder`."""
    blocks = []
    for name, make in CASES[builder].items():
        sql, params = make()
        body = f"{VERBATIM}\n{sql}" if "\n" in sql else builders.format_sql(sql)
        blocks.append(f"-- case: {name}\n-- params: {_json(params)}\n{body}\n")
    return "\n".join(blocks)


def parse(text: str) -> dict[str, tuple[str, str]]:
    """case name -> (params JSON, exact SQL) from a fixture file."""
    cases = {}
    for block in text.split("-- case: ")[1:]:
        lines = block.rstrip("\n").split("\n")
        name, params_line, body = lines[0].strip(), lines[1], lines[2:]
        assert params_line.startswith("-- params: "), f"case {name}: second line must be '-- params: {{...}}'"
        if body and body[0] == VERBATIM:  # text with its own lines (a SQL file) is stored as it is
            sql = "\n".join(body[1:])
        else:
            sql = " ".join(line.strip() for line in body if line.strip())
        cases[name] = (params_line.removeprefix("-- params: "), sql)
    return cases


@pytest.mark.parametrize("builder", sorted(CASES))
def test_builders_produce_the_golden_sql(builder):
    path = FIXTURES / f"{builder}.sql"
    assert path.exists(), f"{path} is missing: run `python -m tests.test_sql_golden --update` and review it"
    expected = parse(path.read_text(encoding="utf-8"))
    assert sorted(expected) == sorted(CASES[builder]), f"{path}: cases differ from CASES; regenerate with --update"
    for name, make in CASES[builder].items():
        sql, params = make()
        want_params, want_sql = expected[name]
        if sql != want_sql or _json(params) != want_params:
            diff = "\n".join(difflib.unified_diff(
                [f"-- params: {want_params}"] + builders.format_sql(want_sql).splitlines(),
                [f"-- params: {_json(params)}"] + builders.format_sql(sql).splitlines(),
                f"{path.name} (expected)", f"{builder}/{name} (now)", lineterm=""))
            pytest.fail(f"{builder}/{name} changed:\n{diff}\n\nIf intended: python -m tests.test_sql_golden --update")


def test_the_fixture_layout_round_trips_exactly():
    """Formatting then joining lines gives back the builder's text, so the fixtures pin it exactly."""
    for builder in CASES:
        for name, make in CASES[builder].items():
            sql, _ = make()
            if "\n" in sql:
                continue
            joined = " ".join(line.strip() for line in builders.format_sql(sql).splitlines())
            assert joined == sql, f"{builder}/{name}"


# ---- the golden SQL on real DuckDB ---------------------------------------------------------------

# created_at, district, channel, closed_at, sla_hours, amount. Week 1 = Mon 1 Jan 2024 .. Sun 7 Jan,
# week 2 = 8 .. 14 Jan. District is NULL in row 4 and blank ('' or spaces) in rows 6 and 9.
ROWS = [
    (datetime(2024, 1, 1, 9), "D1", "phone", datetime(2024, 1, 1, 21), 24, 10.0),   # 12 h, on time
    (datetime(2024, 1, 2, 10), "D1", "web", datetime(2024, 1, 4, 10), 24, 20.0),    # 48 h, late
    (datetime(2024, 1, 3, 8), "D2", "phone", datetime(2024, 1, 3, 14), 24, 30.0),   # 6 h, on time
    (datetime(2024, 1, 5, 12), None, "web", datetime(2024, 1, 6, 12), 24, 40.0),    # 24 h, on time (<=)
    (datetime(2024, 1, 6, 15), "  ", "phone", datetime(2024, 1, 6, 16), 24, 5.0),   # 1 h, on time
    (datetime(2024, 1, 8, 9), "D2", "phone", None, 24, 50.0),                       # still open
    (datetime(2024, 1, 9, 9), "", "phone", datetime(2024, 1, 9, 10), 24, 60.0),     # 1 h, on time
    (datetime(2024, 1, 10, 9), "D1", "web", datetime(2024, 1, 12, 9), 24, 70.0),    # 48 h, late
    (datetime(2024, 1, 14, 23), "D2", "web", datetime(2024, 1, 15, 1), 24, 80.0),   # 2 h, on time
]
WEEK1, WEEK2 = date(2024, 1, 1), date(2024, 1, 8)
NOT_RECORDED = "(not recorded)"


def write_city(folder: Path) -> Path:
    """The fixture registry and its queries copied to `folder`, with data/requests.parquet from ROWS."""
    shutil.copy(FIXTURES / "metrics.yaml", folder / "metrics.yaml")
    shutil.copytree(FIXTURES / "queries", folder / "queries")
    (folder / "data").mkdir()
    pl.DataFrame(ROWS, schema={"created_at": pl.Datetime("us"), "district": pl.Utf8, "channel": pl.Utf8,
                               "closed_at": pl.Datetime("us"), "sla_hours": pl.Int64, "amount": pl.Float64},
                 orient="row").write_parquet(folder / "data" / "requests.parquet")
    return folder / "metrics.yaml"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from citystat.kpis.engine import Engine

    return Engine(load_registry(write_city(tmp_path_factory.mktemp("golden"))))


def golden(builder: str, name: str) -> tuple[str, dict]:
    """The SQL and parameters as stored in the fixture (not as built now)."""
    params, sql = parse((FIXTURES / f"{builder}.sql").read_text(encoding="utf-8"))[name]
    values = json.loads(params)
    if "since" in values:
        values["since"] = date.fromisoformat(values["since"])
    return sql, values


def cell(frame: pl.DataFrame, column: str, **where) -> float:
    for key, value in where.items():
        frame = frame.filter(pl.col(key).is_null() if value is None else pl.col(key) == value)
    assert frame.height == 1, (where, frame)
    return frame[column][0]


def test_golden_shared_daily_scan_gives_hand_worked_weeks(engine):
    from citystat.kpis.scan import query_over_frame

    sql, params = golden("daily_partials_sql", "shared_scan_two_dimensions")
    days = engine.query(sql, params)
    rolled = query_over_frame(engine, golden("rollup_days_sql", "shared_scan_all_grains")[0], "days", days, "test")
    totals = rolled.filter((pl.col("g__district") == 1) & (pl.col("g__channel") == 1))
    week1 = dict(grain="week", period_start=WEEK1)
    week2 = dict(grain="week", period_start=WEEK2)
    assert cell(totals, "m0_v", **week1) == 5 and cell(totals, "m0_v", **week2) == 4          # requests
    assert cell(totals, "m1_v", **week1) == 4 and cell(totals, "m1_d", **week1) == 5          # on time 4 of 5 closed
    assert cell(totals, "m1_v", **week2) == 2 and cell(totals, "m1_d", **week2) == 3          # 2 of 3 closed
    assert cell(totals, "m2_v", **week1) == pytest.approx((10 + 20 + 30 + 40 + 5) / 5)      # avg 21
    assert cell(totals, "m2_v", **week2) == pytest.approx((50 + 60 + 70 + 80) / 4)          # avg 65
    assert cell(totals, "m0_v", grain="month", period_start=date(2024, 1, 1)) == 9
    assert cell(totals, "m0_v", grain="fiscal_year", period_start=date(2023, 7, 1)) == 9     # FY2024 starts 1 Jul 2023
    by_district = rolled.filter(pl.col("g__district") == 0)
    assert cell(by_district, "m0_v", d__district="D1", **week1) == 2
    assert cell(by_district, "m0_v", d__district="D2", **week1) == 1
    assert cell(by_district, "m0_v", d__district=NOT_RECORDED, **week1) == 2   # the NULL and the blank, one group
    assert cell(by_district, "m0_v", d__district=NOT_RECORDED, **week2) == 1   # the '' row
    assert by_district.filter(pl.col("d__district").is_null()).is_empty()
    by_channel = rolled.filter(pl.col("g__channel") == 0)
    assert cell(by_channel, "m3_v", d__channel="phone", **week1) == 45       # 10 + 30 + 5
    assert cell(by_channel, "m3_v", d__channel="web", **week2) == 150        # 70 + 80


def test_golden_one_statement_daily_scan_equals_the_two_stages(engine):
    sql, params = golden("daily_scan_sql", "requests_week_and_fiscal_year")
    result = engine.query(sql, params)
    totals = result.filter(pl.col("g__district") == 1)
    assert cell(totals, "m0_v", grain="week", period_start=WEEK1) == 5
    assert cell(totals, "m0_v", grain="fiscal_year", period_start=date(2023, 7, 1)) == 9
    assert set(result["grain"].unique()) == {"week", "fiscal_year"}


def test_golden_holistic_scans_give_hand_worked_medians_and_percentiles(engine):
    sql, params = golden("holistic_scan_sql", "median_week_month")
    median = engine.query(sql, params)
    totals = median.filter(pl.col("g__district") == 1)
    assert cell(totals, "m0_v", grain="week", period_start=WEEK1) == 12      # hours 1, 6, 12, 24, 48
    assert cell(totals, "m0_v", grain="week", period_start=WEEK2) == 2       # hours 1, 2, 48 (row 6 is open)
    assert cell(totals, "m0_n", grain="week", period_start=WEEK1) == 5
    districts = median.filter(pl.col("g__district") == 0)
    assert cell(districts, "m0_v", grain="week", period_start=WEEK1, d__district="D1") == 30            # 12, 48
    assert cell(districts, "m0_v", grain="week", period_start=WEEK1, d__district=NOT_RECORDED) == 12.5  # 24, 1

    sql, params = golden("holistic_scan_sql", "daily_percentile_gets_daily_breakdowns")
    p90 = engine.query(sql, params)
    # week 1: 1, 6, 12, 24, 48 -> position 4 x 0.9 = 3.6 -> 24 + 0.6 x (48 - 24) = 38.4
    assert cell(p90.filter(pl.col("g__district") == 1), "m0_v", grain="week", period_start=WEEK1) == pytest.approx(38.4)
    daily = p90.filter((pl.col("grain") == "day") & (pl.col("g__district") == 0))
    assert cell(daily, "m0_v", period_start=date(2024, 1, 5), d__district=NOT_RECORDED) == 24
    assert cell(daily, "m0_v", period_start=date(2024, 1, 2), d__district="D1") == 48

    sql, params = golden("holistic_scan_sql", "count_distinct_since")
    distinct = engine.query(sql, params)
    # January: 'D1', 'D2', '  ', '' are four distinct values; NULL is not counted
    assert cell(distinct, "m0_v", grain="month", period_start=date(2024, 1, 1)) == 4


def test_golden_sql_metric_and_display_queries_run(engine):
    sql, params = golden("sql_metric_query", "open_requests_month")
    assert params == {"grain": "month", "start": "1900-01-01", "end": "2999-12-31"}
    params = {**params, "start": date(1900, 1, 1), "end": date(2999, 12, 31)}
    assert engine.query(sql, params).row(0) == (date(2024, 1, 1), 1)      # row 6 only

    sql, params = golden("metric_total_sql", "rate_by_week")
    rate = engine.query(sql, params)
    assert rate.rows() == [(WEEK1, 0.8, 4.0, 5.0, 5.0), (WEEK2, pytest.approx(2 / 3), 2.0, 3.0, 3.0)]
    sql, params = golden("metric_total_sql", "median_by_month")
    assert engine.query(sql, params).rows() == [(date(2024, 1, 1), 9.0, None, None, 8.0)]  # 1 1 2 6 | 12 24 48 48

    sql, _ = golden("source_extents_sql", "requests")
    assert engine.query(sql).row(0) == (datetime(2024, 1, 1, 9), datetime(2024, 1, 14, 23), 9)


def update() -> None:
    for builder in CASES:
        (FIXTURES / f"{builder}.sql").write_text(render(builder), encoding="utf-8")
        print(f"wrote {FIXTURES / (builder + '.sql')}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python -m tests.test_sql_golden --update   (rewrites tests/fixtures/sql/*.sql)")
    update()


@pytest.mark.parametrize("metric_id", ["hours_median", "hours_p90", "districts_seen"])
def test_a_holistic_metric_aggregated_from_its_kept_rows_equals_the_one_statement_scan(engine, metric_id):
    """The two ways the refresh computes a holistic metric (one statement for a single-file
    source; its rows collected, kept and aggregated for a partitioned one) give the same rows."""
    from citystat.kpis.scan import query_over_frame

    metric = M[metric_id]
    one, params = builders.holistic_scan_sql(FY, "requests", "created_at", metric)
    rows_sql, rows_params = builders.holistic_rows_sql("requests", "created_at", metric)
    rows = engine.query(rows_sql, rows_params)
    assert rows.height > 0
    kept = query_over_frame(engine, builders.holistic_rollup_sql(FY, metric, "metric_rows"), "metric_rows", rows, "t")
    order = [c for c in kept.columns if not c.startswith("m0_")]
    assert kept.sort(order, nulls_last=True).equals(engine.query(one, params).sort(order, nulls_last=True))

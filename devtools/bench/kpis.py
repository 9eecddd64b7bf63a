"""The registry's KPIs written out by hand three times, independent of citystat's SQL builder,
and the scan floor:

- `floor_queries`: plain DuckDB SQL, one `GROUP BY GROUPING SETS` query per KPI over the
  Parquet files (every grain, and week/month/quarter/fiscal year by each dimension), as an
  analyst fluent in SQL would write it. Run straight on a DuckDB connection.
- `polars_kpis`: the same KPIs with Polars' lazy API, as an analyst fluent in Polars would
  write them: scan the Parquet files, filter, add period columns, one `group_by` per grain and
  dimension, everything collected in one go (Polars shares the common scans).
- `pandas_kpis`: the same KPIs with pandas, as an analyst would in a notebook: read the
  columns needed, add period columns, `groupby` per grain and dimension.
- `scan_floor_queries`: no KPI at all: read and decode, once, every column the registry's
  refresh needs (`SCAN_COLUMNS`), one `bit_xor(hash(column))` query per extract. Nothing that
  computes the KPIs can read less, so this is the physical limit on this machine.

Derived KPIs (a subtraction of two rows) are left out of all three; the SQL-file KPI
(`lead_followup_30d`) is run from its file in the floor, written with Polars joins in
`polars_kpis`, and left out of pandas.

Each version's answer can be put in one long shape (`normalize_*`: kpi, grain, period_start,
dimension, dimension_value, value, numerator, denominator) and compared (`disagreements`):
the bench checks they agree with each other, tests/test_bench_kpis.py also with the rollup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import polars as pl

SLA = "closed_at <= created_at + to_hours(sla_hours)"
GRAINS = ("day", "week", "month", "quarter", "fiscal_year")
DIMENSION_GRAINS = GRAINS[1:]
LEAD_KPI = "lead_followup_30d"


@dataclass(frozen=True)
class Kpi:
    id: str
    table: str
    time: str
    where: str                      # SQL filter ('' = all rows)
    sql: tuple[str, ...]            # SQL aggregates (value[, denominator])
    dims: tuple[str, ...]
    mask: Callable | None           # pandas row filter
    agg: tuple                      # pandas: (kind, *args)
    pl_where: pl.Expr | None        # Polars row filter
    pl_agg: tuple                   # Polars: (kind, *expressions)


def _sla(df):
    return df.closed_at <= df.created_at + pd.to_timedelta(df.sla_hours, unit="h")


def _minutes(a, b, unit="s"):
    return lambda df: (df[b].dt.floor(unit) - df[a].dt.floor(unit)).dt.total_seconds() / 60.0


c = pl.col
PL_SLA = c("closed_at") <= c("created_at") + pl.duration(hours=c("sla_hours"))


def _pl_diff(a: str, b: str, unit: str, per: float) -> pl.Expr:
    """DuckDB's `date_diff(unit, a, b) / per`: whole unit boundaries crossed, in `per` units."""
    every = {"minute": "1m", "second": "1s", "hour": "1h"}[unit]
    seconds = (c(b).dt.truncate(every) - c(a).dt.truncate(every)).dt.total_seconds()
    return seconds / {"minute": 60, "second": 1, "hour": 3600}[unit] / per


KPIS: tuple[Kpi, ...] = (
    Kpi("pothole_on_time", "service_requests", "closed_at", "request_type = 'Pothole' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district", "channel"),
        lambda d: (d.request_type == "Pothole") & d.closed_at.notna(), ("rate", _sla),
        (c("request_type") == "Pothole") & c("closed_at").is_not_null(), ("rate", PL_SLA)),
    Kpi("graffiti_days_to_close", "service_requests", "closed_at",
        "request_type = 'Graffiti Removal' AND closed_at IS NOT NULL",
        ("median(date_diff('minute', created_at, closed_at) / 1440.0)",), ("district",),
        lambda d: (d.request_type == "Graffiti Removal") & d.closed_at.notna(),
        ("median", lambda d: _minutes("created_at", "closed_at", "min")(d) / 1440.0),
        (c("request_type") == "Graffiti Removal") & c("closed_at").is_not_null(),
        ("median", _pl_diff("created_at", "closed_at", "minute", 1440.0))),
    Kpi("streetlight_on_time", "service_requests", "closed_at",
        "request_type = 'Streetlight Outage' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district",),
        lambda d: (d.request_type == "Streetlight Outage") & d.closed_at.notna(), ("rate", _sla),
        (c("request_type") == "Streetlight Outage") & c("closed_at").is_not_null(), ("rate", PL_SLA)),
    Kpi("missed_trash_requests", "service_requests", "created_at", "request_type = 'Missed Trash Pickup'",
        ("count(*)",), ("district",), lambda d: d.request_type == "Missed Trash Pickup", ("count",),
        c("request_type") == "Missed Trash Pickup", ("count",)),
    Kpi("illegal_dumping_on_time", "service_requests", "closed_at",
        "request_type = 'Illegal Dumping' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district",),
        lambda d: (d.request_type == "Illegal Dumping") & d.closed_at.notna(), ("rate", _sla),
        (c("request_type") == "Illegal Dumping") & c("closed_at").is_not_null(), ("rate", PL_SLA)),
    Kpi("requests_311", "service_requests", "created_at", "", ("count(*)",), ("district", "channel", "department"),
        None, ("count",), None, ("count",)),
    Kpi("requests_311_on_time", "service_requests", "closed_at", "closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district", "department", "channel"),
        lambda d: d.closed_at.notna(), ("rate", _sla), c("closed_at").is_not_null(), ("rate", PL_SLA)),
    Kpi("digital_channel_share", "service_requests", "created_at", "",
        ("count(*) FILTER (WHERE channel IN ('app', 'web'))", "count(*)"), ("district",),
        None, ("rate", lambda d: d.channel.isin(["app", "web"])), None, ("rate", c("channel").is_in(["app", "web"]))),
    Kpi("ems_response_p90", "fire_ems_responses", "call_received_at",
        "incident_type = 'ems' AND priority = 1 AND on_scene_at IS NOT NULL",
        ("quantile_cont(date_diff('second', call_received_at, on_scene_at) / 60.0, 0.9)",), ("district",),
        lambda d: (d.incident_type == "ems") & (d.priority == 1) & d.on_scene_at.notna(),
        ("quantile", _minutes("call_received_at", "on_scene_at"), 0.9),
        (c("incident_type") == "ems") & (c("priority") == 1) & c("on_scene_at").is_not_null(),
        ("quantile", _pl_diff("call_received_at", "on_scene_at", "second", 60.0), 0.9)),
    Kpi("fire_response_median", "fire_ems_responses", "call_received_at",
        "incident_type = 'fire' AND on_scene_at IS NOT NULL",
        ("median(date_diff('second', call_received_at, on_scene_at) / 60.0)",), ("district",),
        lambda d: (d.incident_type == "fire") & d.on_scene_at.notna(),
        ("median", _minutes("call_received_at", "on_scene_at")),
        (c("incident_type") == "fire") & c("on_scene_at").is_not_null(),
        ("median", _pl_diff("call_received_at", "on_scene_at", "second", 60.0))),
    Kpi("dispatch_within_60s", "fire_ems_responses", "call_received_at", "priority = 1",
        ("count(*) FILTER (WHERE dispatched_at <= call_received_at + INTERVAL 60 SECOND)", "count(*)"), ("district",),
        lambda d: d.priority == 1,
        ("rate", lambda d: d.dispatched_at <= d.call_received_at + pd.Timedelta(seconds=60)),
        c("priority") == 1, ("rate", c("dispatched_at") <= c("call_received_at") + pl.duration(seconds=60))),
    Kpi("fire_ems_incidents", "fire_ems_responses", "call_received_at", "", ("count(*)",),
        ("district", "incident_type"), None, ("count",), None, ("count",)),
    Kpi("permit_review_days", "permits_issued", "issued_at", "", ("median(review_days)",), ("district",),
        None, ("median", lambda d: d.review_days), None, ("median", c("review_days"))),
    Kpi("permits_on_time", "permits_issued", "issued_at", "",
        ("count(*) FILTER (WHERE review_days <= review_target_days)", "count(*)"), ("district",),
        None, ("rate", lambda d: d.review_days <= d.review_target_days),
        None, ("rate", c("review_days") <= c("review_target_days"))),
    Kpi("permits_applied", "permits", "applied_at", "", ("count(*)",), ("district",), None, ("count",),
        None, ("count",)),
    Kpi("permits_issued", "permits_issued", "issued_at", "", ("count(*)",), ("district",), None, ("count",),
        None, ("count",)),
    Kpi("housing_inspections_done", "housing_inspections", "inspected_at", "inspected_at IS NOT NULL",
        ("count(*)",), ("district", "reason"), lambda d: d.inspected_at.notna(), ("count",),
        c("inspected_at").is_not_null(), ("count",)),
    Kpi("housing_complaint_days", "housing_inspections", "inspected_at",
        "reason = 'complaint' AND inspected_at IS NOT NULL",
        ("median(date_diff('hour', requested_at, inspected_at) / 24.0)",), ("district",),
        lambda d: (d.reason == "complaint") & d.inspected_at.notna(),
        ("median", lambda d: (d.inspected_at.dt.floor("h") - d.requested_at.dt.floor("h")).dt.total_seconds() / 86400),
        (c("reason") == "complaint") & c("inspected_at").is_not_null(),
        ("median", _pl_diff("requested_at", "inspected_at", "hour", 24.0))),
    Kpi("restaurant_pass_rate", "restaurant_inspections", "inspected_at", "",
        ("count(*) FILTER (WHERE result = 'pass')", "count(*)"), ("district",), None,
        ("rate", lambda d: d.result == "pass"), None, ("rate", c("result") == "pass")),
    Kpi("restaurant_critical_violations", "restaurant_inspections", "inspected_at", "",
        ("avg(critical_violations)",), ("district",), None, ("mean", lambda d: d.critical_violations),
        None, ("mean", c("critical_violations"))),
    Kpi("children_lead_tested", "blood_lead_tests", "tested_at", "", ("count(*)",), ("district",), None, ("count",),
        None, ("count",)),
    Kpi("lead_elevated_share", "blood_lead_tests", "tested_at", "",
        ("count(*) FILTER (WHERE result_ug_dl >= 3.5)", "count(*)"), ("district",), None,
        ("rate", lambda d: d.result_ug_dl >= 3.5), None, ("rate", c("result_ug_dl") >= 3.5)),
    Kpi("exits_to_permanent_housing", "homeless_exits", "exited_at", "",
        ("count(*) FILTER (WHERE exit_destination = 'permanent')", "count(*)"), ("provider",), None,
        ("rate", lambda d: d.exit_destination == "permanent"), None, ("rate", c("exit_destination") == "permanent")),
    Kpi("returns_to_homelessness", "homeless_exits", "exited_at",
        "exit_destination = 'permanent' AND returned_within_12m IS NOT NULL",
        ("count(*) FILTER (WHERE returned_within_12m)", "count(*)"), ("provider",),
        lambda d: (d.exit_destination == "permanent") & d.returned_within_12m.notna(),
        ("rate", lambda d: d.returned_within_12m.fillna(False).astype(bool)),
        (c("exit_destination") == "permanent") & c("returned_within_12m").is_not_null(),
        ("rate", c("returned_within_12m"))),
    Kpi("homeless_length_of_stay", "homeless_exits", "exited_at", "", ("median(stay_days)",), ("provider",),
        None, ("median", lambda d: d.stay_days), None, ("median", c("stay_days"))),
    Kpi("pm25_daily_mean", "sensor_readings", "read_at", "", ("avg(pm25_ug_m3)",), ("district",), None,
        ("mean", lambda d: d.pm25_ug_m3), None, ("mean", c("pm25_ug_m3"))),
    Kpi("pm25_unhealthy_hours", "sensor_readings", "read_at", "", ("count(*) FILTER (WHERE pm25_ug_m3 > 35)",),
        ("district",), None, ("rate_num", lambda d: d.pm25_ug_m3 > 35), None, ("rate_num", c("pm25_ug_m3") > 35)),
    Kpi("unscheduled_overtime_share", "staff_hours", "work_date", "",
        ("sum(unscheduled_overtime_hours)", "sum(regular_hours)"), ("department",), None,
        ("sumratio", "unscheduled_overtime_hours", "regular_hours"),
        None, ("sumratio", c("unscheduled_overtime_hours"), c("regular_hours"))),
    Kpi("sick_hours_share", "staff_hours", "work_date", "", ("sum(sick_hours)", "sum(regular_hours)"),
        ("department",), None, ("sumratio", "sick_hours", "regular_hours"),
        None, ("sumratio", c("sick_hours"), c("regular_hours"))),
    Kpi("work_injuries", "staff_hours", "work_date", "", ("sum(injuries)",), ("department",), None,
        ("sum", "injuries"), None, ("sum", c("injuries"))),
)

# The columns a refresh of the registry must read, per extract: every column a metric's
# filter, expression, time column or dimension names (through the SQL-defined sources
# permits_issued_log and homeless_exits for permits and enrolments), the SQL-file KPI's
# columns, and each source's own time column (the data's extents). tests/test_bench_kpis.py
# checks this list against the registry.
SCAN_COLUMNS: dict[str, tuple[str, ...]] = {
    "service_requests": ("created_at", "closed_at", "request_type", "sla_hours", "district", "channel",
                         "department"),
    "fire_ems_responses": ("call_received_at", "dispatched_at", "on_scene_at", "incident_type", "priority",
                           "district"),
    "permits": ("applied_at", "issued_at", "review_target_days", "district"),
    "housing_inspections": ("requested_at", "inspected_at", "reason", "district", "address_id"),
    "restaurant_inspections": ("inspected_at", "result", "critical_violations", "district"),
    "blood_lead_tests": ("tested_at", "result_ug_dl", "district", "child_id", "address_id"),
    "homeless_enrollments": ("entered_at", "exited_at", "provider", "exit_destination", "returned_within_12m"),
    "reminder_letters": ("due_date",),
    "pfs_participants": ("enrolled_at",),
    "staff_hours": ("work_date", "department", "unscheduled_overtime_hours", "regular_hours", "sick_hours",
                    "injuries"),
    "sensor_readings": ("read_at", "pm25_ug_m3", "district"),
}

GRAIN_SQL = {
    "day": "CAST({t} AS DATE)",
    "week": "CAST(date_trunc('week', {t}) AS DATE)",
    "month": "CAST(date_trunc('month', {t}) AS DATE)",
    "quarter": "CAST(date_trunc('quarter', {t}) AS DATE)",
    "fiscal_year": "CAST(date_trunc('year', {t} - INTERVAL 6 MONTH) + INTERVAL 6 MONTH AS DATE)",
}


def extract_files(data: Path, table: str) -> str:
    """The Parquet file (or, for 311 requests, the partition glob) of an extract."""
    return f"{data}/service_requests/*.parquet" if table == "service_requests" else f"{data}/{table}.parquet"


def table_sql(data: Path) -> dict[str, str]:
    """FROM clauses for each table, straight on the files (311 requests: the partition glob)."""
    files = {name: f"read_parquet('{extract_files(data, name)}')" for name in (
        "service_requests", "fire_ems_responses", "permits", "housing_inspections", "restaurant_inspections",
        "blood_lead_tests", "homeless_enrollments", "reminder_letters", "staff_hours", "sensor_readings")}
    files["permits_issued"] = (f"(SELECT *, date_diff('hour', applied_at, issued_at) / 24.0 AS review_days "
                               f"FROM {files['permits']} WHERE issued_at IS NOT NULL)")
    files["homeless_exits"] = (f"(SELECT *, date_diff('day', entered_at, exited_at) AS stay_days "
                               f"FROM {files['homeless_enrollments']} WHERE exited_at IS NOT NULL)")
    return files


def floor_queries(data: Path, queries: Path) -> list[tuple[str, str, dict]]:
    """(kpi id, SQL, params) for every KPI: one plain GROUPING SETS query each."""
    tables = table_sql(data)
    out = []
    for kpi in KPIS:
        periods = ", ".join(f"{GRAIN_SQL[g].format(t=kpi.time)} AS {g}" for g in GRAIN_SQL)
        sets = [f"({g})" for g in GRAIN_SQL] + [f"({g}, {d})" for g in GRAIN_SQL if g != "day" for d in kpi.dims]
        where = f"WHERE {kpi.time} IS NOT NULL" + (f" AND {kpi.where}" if kpi.where else "")
        aggs = ", ".join(f"{a} AS a{i}" for i, a in enumerate(kpi.sql))
        flags = ", ".join(f"GROUPING({x}) AS g_{x}" for x in (*GRAIN_SQL, *kpi.dims))
        out.append((kpi.id, f"SELECT {', '.join(GRAIN_SQL)}, {', '.join(kpi.dims)}, {flags}, {aggs} "
                    f"FROM (SELECT *, {periods} FROM {tables[kpi.table]} {where}) "
                    f"GROUP BY GROUPING SETS ({', '.join(sets)})", {}))
    lead = (queries / "lead_followup_30d.sql").read_text().replace("FROM blood_lead_tests", f"FROM {tables['blood_lead_tests']}") \
        .replace("JOIN housing_inspections", f"JOIN {tables['housing_inspections']}")
    for grain in GRAIN_SQL:
        out.append((LEAD_KPI, lead, {"grain": grain, "start": "1900-01-01", "end": "2999-12-31",
                                     "fy_start_month": 7}))
    return out


def run_floor(data: Path, queries: Path, threads: int | None = None) -> list[tuple[str, dict, pl.DataFrame]]:
    """Run every floor query on a fresh DuckDB connection; returns (kpi id, params, result) of each."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return [(kpi, params, con.sql(sql, params=params or None).pl()) for kpi, sql, params in floor_queries(data, queries)]


# ---- scan floor -----------------------------------------------------------------------------

def scan_floor_queries(data: Path) -> list[tuple[str, str]]:
    """(extract, SQL): read and decode every column the refresh needs, once, one query per extract."""
    out = []
    for table, columns in SCAN_COLUMNS.items():
        hashes = ", ".join(f"bit_xor(hash({column})) AS h_{column}" for column in columns)
        out.append((table, f"SELECT count(*) AS n, {hashes} FROM read_parquet('{extract_files(data, table)}')"))
    return out


def run_scan_floor(data: Path, threads: int | None = None) -> int:
    """Run the scan-floor queries on a fresh DuckDB connection; returns the rows read."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return sum(con.execute(sql).fetchone()[0] for _table, sql in scan_floor_queries(data))


# ---- Polars ---------------------------------------------------------------------------------

def _pl_periods(time: str) -> dict[str, pl.Expr]:
    t = c(time)
    return {"day": t.cast(pl.Date), "week": t.dt.truncate("1w").cast(pl.Date),
            "month": t.dt.truncate("1mo").cast(pl.Date), "quarter": t.dt.truncate("1q").cast(pl.Date),
            "fiscal_year": pl.date(t.dt.year() - (t.dt.month() < 7).cast(pl.Int32), 7, 1)}


def _pl_aggs(agg: tuple) -> list[pl.Expr]:
    """value, numerator, denominator of one group."""
    kind, none = agg[0], pl.lit(None, dtype=pl.Float64)
    if kind in ("rate", "rate_num"):
        num, den = agg[1].sum().cast(pl.Float64), pl.len().cast(pl.Float64)
        if kind == "rate_num":
            return [num.alias("value"), none.alias("numerator"), none.alias("denominator")]
        return [(num / den).alias("value"), num.alias("numerator"), den.alias("denominator")]
    if kind == "sumratio":
        num, den = agg[1].sum().cast(pl.Float64), agg[2].sum().cast(pl.Float64)
        return [(num / den).alias("value"), num.alias("numerator"), den.alias("denominator")]
    value = {"count": lambda: pl.len(), "median": lambda: agg[1].median(), "mean": lambda: agg[1].mean(),
             "quantile": lambda: agg[1].quantile(agg[2], interpolation="linear"),
             "sum": lambda: agg[1].sum()}[kind]()
    return [value.cast(pl.Float64).alias("value"), none.alias("numerator"), none.alias("denominator")]


def _pl_tables(data: Path) -> dict[str, pl.LazyFrame]:
    tables = {name: pl.scan_parquet(extract_files(data, name)) for name in (
        "service_requests", "fire_ems_responses", "permits", "housing_inspections", "restaurant_inspections",
        "blood_lead_tests", "homeless_enrollments", "reminder_letters", "staff_hours", "sensor_readings")}
    tables["permits_issued"] = tables["permits"].filter(c("issued_at").is_not_null()).with_columns(
        review_days=_pl_diff("applied_at", "issued_at", "hour", 24.0))
    tables["homeless_exits"] = tables["homeless_enrollments"].filter(c("exited_at").is_not_null()).with_columns(
        stay_days=(c("exited_at") - c("entered_at")).dt.total_days())
    return tables


def _pl_lead(tables: dict[str, pl.LazyFrame]) -> list[pl.LazyFrame]:
    """lead_followup_30d (queries/lead_followup_30d.sql) per grain: a child's first elevated test
    in the period, and whether its address had an inspection within the 30 days after it."""
    tests = tables["blood_lead_tests"]
    elevated = (tests.filter(c("result_ug_dl") >= 3.5)
                .join(tests.select(c("tested_at").max().alias("last_test")), how="cross")
                .filter(c("tested_at") <= c("last_test") - pl.duration(days=30)))
    inspections = tables["housing_inspections"].filter(c("inspected_at").is_not_null()).select(
        "address_id", "inspected_at")
    plans = []
    for grain, period in _pl_periods("tested_at").items():
        first = (elevated.with_columns(period_start=period).group_by("child_id", "period_start")
                 .agg(c("address_id").sort_by("tested_at").first(), c("tested_at").min()))
        followed = (first.join(inspections, on="address_id", how="left")
                    .with_columns(hit=c("inspected_at").is_between(c("tested_at"),
                                                                   c("tested_at") + pl.duration(days=30)))
                    .group_by("period_start", "child_id").agg(c("hit").any()))
        num, den = c("hit").sum().cast(pl.Float64), pl.len().cast(pl.Float64)
        plans.append(followed.group_by("period_start").agg(
            (num / den).alias("value"), num.alias("numerator"), den.alias("denominator")).select(
            pl.lit(LEAD_KPI).alias("kpi"), pl.lit(grain).alias("grain"), "period_start",
            pl.lit("").alias("dimension"), pl.lit(None, dtype=pl.Utf8).alias("dimension_value"),
            "value", "numerator", "denominator"))
    return plans


def polars_kpis(data: Path) -> pl.DataFrame:
    """Every KPI at every grain and dimension with Polars' lazy API, as one long frame."""
    tables = _pl_tables(data)
    plans = []
    for kpi in KPIS:
        rows = tables[kpi.table].filter(c(kpi.time).is_not_null())
        if kpi.pl_where is not None:
            rows = rows.filter(kpi.pl_where)
        rows = rows.with_columns(**_pl_periods(kpi.time))
        aggs = _pl_aggs(kpi.pl_agg)
        for grain in GRAINS:
            for dim in (None, *(kpi.dims if grain != "day" else ())):
                keys = [grain] + ([dim] if dim else [])
                plans.append(rows.group_by(keys).agg(aggs).select(
                    pl.lit(kpi.id).alias("kpi"), pl.lit(grain).alias("grain"), c(grain).alias("period_start"),
                    pl.lit(dim or "").alias("dimension"),
                    (c(dim).cast(pl.Utf8) if dim else pl.lit(None, dtype=pl.Utf8)).alias("dimension_value"),
                    "value", "numerator", "denominator"))
    plans += _pl_lead(tables)
    return pl.concat(plans).collect()


# ---- pandas ---------------------------------------------------------------------------------

def _periods(t: pd.Series) -> dict[str, pd.Series]:
    day = t.dt.normalize()
    fy_year = t.dt.year - (t.dt.month < 7)
    return {"day": day,
            "week": day - pd.to_timedelta(day.dt.day_of_week, unit="D"),
            "month": t.dt.to_period("M").dt.start_time,
            "quarter": t.dt.to_period("Q").dt.start_time,
            "fiscal_year": pd.to_datetime(fy_year.astype("Int64").astype(str) + "-07-01", errors="coerce")}


def _load_tables(data: Path) -> dict[str, pd.DataFrame]:
    read = lambda name: pd.read_parquet(data / f"{name}.parquet")  # noqa: E731
    tables = {name: read(name) for name in ("fire_ems_responses", "permits", "housing_inspections",
                                             "restaurant_inspections", "blood_lead_tests", "homeless_enrollments",
                                             "reminder_letters", "staff_hours", "sensor_readings")}
    tables["service_requests"] = pd.read_parquet(data / "service_requests")
    issued = tables["permits"][tables["permits"].issued_at.notna()].copy()
    issued["review_days"] = (issued.issued_at.dt.floor("h") - issued.applied_at.dt.floor("h")).dt.total_seconds() / 86400
    tables["permits_issued"] = issued
    exits = tables["homeless_enrollments"][tables["homeless_enrollments"].exited_at.notna()].copy()
    exits["stay_days"] = (pd.to_datetime(exits.exited_at) - pd.to_datetime(exits.entered_at)).dt.days
    tables["homeless_exits"] = exits
    return tables


def _aggregate(frame: pd.DataFrame, keys: list[str], agg: tuple) -> pd.DataFrame:
    kind = agg[0]
    grouped = frame.groupby(keys, dropna=False, observed=True)
    if kind == "count":
        return grouped.size().to_frame("value")
    if kind in ("rate", "rate_num"):
        out = grouped.agg(num=("__x", "sum"), den=("__x", "size"))
        out["value"] = out.num / out.den if kind == "rate" else out.num
        return out
    if kind == "median":
        return grouped["__x"].median().to_frame("value")
    if kind == "quantile":
        return grouped["__x"].quantile(agg[2]).to_frame("value")
    if kind == "mean":
        return grouped["__x"].mean().to_frame("value")
    if kind == "sum":
        return grouped[agg[1]].sum().to_frame("value")
    if kind == "sumratio":
        out = grouped[[agg[1], agg[2]]].sum()
        out["value"] = out[agg[1]] / out[agg[2]]
        return out
    raise ValueError(kind)


def pandas_kpis(data: Path) -> list[tuple[str, str, str | None, pd.DataFrame]]:
    """Every declared KPI at every grain and dimension with pandas: (kpi id, grain, dimension, result)."""
    tables = _load_tables(data)
    out = []
    for kpi in KPIS:
        frame = tables[kpi.table]
        frame = frame[frame[kpi.time].notna()]
        if kpi.mask is not None:
            frame = frame[kpi.mask(frame)]
        columns = {"__t": pd.to_datetime(frame[kpi.time])}
        if kpi.agg[0] in ("rate", "rate_num", "median", "quantile", "mean"):
            columns["__x"] = kpi.agg[1](frame)
        frame = frame.assign(**columns)
        frame = frame.assign(**{f"__p_{g}": s for g, s in _periods(frame["__t"]).items()})
        for grain in GRAINS:
            out.append((kpi.id, grain, None, _aggregate(frame, [f"__p_{grain}"], kpi.agg)))
            if grain != "day":
                for dim in kpi.dims:
                    out.append((kpi.id, grain, dim, _aggregate(frame, [f"__p_{grain}", dim], kpi.agg)))
    return out


# ---- one long shape, and comparing ----------------------------------------------------------

LONG_SCHEMA = {"kpi": pl.Utf8, "grain": pl.Utf8, "period_start": pl.Date, "dimension": pl.Utf8,
               "dimension_value": pl.Utf8, "value": pl.Float64, "numerator": pl.Float64, "denominator": pl.Float64}
KEYS = ["kpi", "grain", "period_start", "dimension", "dimension_value"]
RATE_KINDS = ("rate", "sumratio")


def _is_rate(kpi_id: str) -> bool:
    return kpi_id == LEAD_KPI or next(k for k in KPIS if k.id == kpi_id).pl_agg[0] in RATE_KINDS


def normalize_floor(results: list[tuple[str, dict, pl.DataFrame]]) -> pl.DataFrame:
    parts = []
    for kpi_id, params, frame in results:
        if kpi_id == LEAD_KPI:
            parts.append(frame.select(
                pl.lit(kpi_id).alias("kpi"), pl.lit(params["grain"]).alias("grain"), "period_start",
                pl.lit("").alias("dimension"), pl.lit(None, dtype=pl.Utf8).alias("dimension_value"),
                "value", "numerator", "denominator"))
            continue
        kpi = next(k for k in KPIS if k.id == kpi_id)
        grain = pl.coalesce([pl.when(c(f"g_{g}") == 0).then(pl.lit(g)) for g in GRAINS])
        period = pl.coalesce([c(g) for g in GRAINS])
        dimension = pl.coalesce([pl.when(c(f"g_{d}") == 0).then(pl.lit(d)) for d in kpi.dims] + [pl.lit("")])
        value = pl.coalesce([pl.when(c(f"g_{d}") == 0).then(c(d).cast(pl.Utf8)) for d in kpi.dims]
                            + [pl.lit(None, dtype=pl.Utf8)])
        if _is_rate(kpi_id):
            num, den = c("a0").cast(pl.Float64), c("a1").cast(pl.Float64)
            measures = [(num / den).alias("value"), num.alias("numerator"), den.alias("denominator")]
        else:
            measures = [c("a0").cast(pl.Float64).alias("value"), pl.lit(None, dtype=pl.Float64).alias("numerator"),
                        pl.lit(None, dtype=pl.Float64).alias("denominator")]
        parts.append(frame.select(pl.lit(kpi_id).alias("kpi"), grain.alias("grain"), period.alias("period_start"),
                                  dimension.alias("dimension"), value.alias("dimension_value"), *measures))
    return pl.concat([p.cast(LONG_SCHEMA) for p in parts]).sort(KEYS, nulls_last=True)


def normalize_polars(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.cast(LONG_SCHEMA).sort(KEYS, nulls_last=True)


def normalize_pandas(results: list[tuple[str, str, str | None, pd.DataFrame]]) -> pl.DataFrame:
    parts = []
    for kpi_id, grain, dim, frame in results:
        flat = frame.reset_index()
        period = flat[f"__p_{grain}"].dt.date
        rate = _is_rate(kpi_id)
        num = flat["num"] if "num" in flat else (flat.iloc[:, -3] if rate else None)
        den = flat["den"] if "den" in flat else (flat.iloc[:, -2] if rate else None)
        parts.append(pl.DataFrame({
            "kpi": [kpi_id] * len(flat), "grain": [grain] * len(flat), "period_start": list(period),
            "dimension": [dim or ""] * len(flat),
            "dimension_value": [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                                for v in (flat[dim] if dim else [None] * len(flat))],
            "value": flat["value"].astype(float).tolist(),
            "numerator": num.astype(float).tolist() if rate else [None] * len(flat),
            "denominator": den.astype(float).tolist() if rate else [None] * len(flat),
        }, schema=LONG_SCHEMA))
    return pl.concat(parts).sort(KEYS, nulls_last=True)


def normalize_rollup(frame: pl.DataFrame) -> pl.DataFrame:
    """CityStat's rollup rows of the KPIs written out here, in the long shape. Periods where a
    metric had no rows of its own (a filtered count of 0 or a rate over 0 rows, which the rollup
    keeps because the scan shares rows with other metrics) are left out, as a filtered query has none."""
    ids = [k.id for k in KPIS] + [LEAD_KPI]
    kept = frame.filter(c("metric_id").is_in(ids) & ~(c("n").is_not_null() & (c("n") == 0)))
    return kept.rename({"metric_id": "kpi"}).select(list(LONG_SCHEMA)).cast(LONG_SCHEMA).sort(KEYS, nulls_last=True)


def disagreements(expected: pl.DataFrame, got: pl.DataFrame, *, kpis: list[str] | None = None,
                  rel: float = 1e-9) -> list[str]:
    """Human-readable differences between two long frames (over `kpis`, or the KPIs of both)."""
    both = sorted(set(expected["kpi"]) & set(got["kpi"])) if kpis is None else kpis
    a, b = expected.filter(c("kpi").is_in(both)), got.filter(c("kpi").is_in(both))
    out = []
    for name, only in (("missing", a.join(b, on=KEYS, how="anti", nulls_equal=True)),
                       ("extra", b.join(a, on=KEYS, how="anti", nulls_equal=True))):
        for row in only.head(5).iter_rows(named=True):
            out.append(f"{name}: {row}")
        if only.height > 5:
            out.append(f"... {only.height - 5} more {name} rows")
    joined = a.join(b, on=KEYS, how="inner", nulls_equal=True, suffix="_got")
    for column in ("value", "numerator", "denominator"):
        x, y = c(column), c(f"{column}_got")
        if column != "value":  # numerator / denominator: only where both sides give them
            differs = x.is_not_null() & y.is_not_null() & ((x - y).abs() > rel * pl.max_horizontal(x.abs(), 1.0))
        else:
            differs = (x.is_null() != y.is_null()) | ((x - y).abs() > rel * pl.max_horizontal(x.abs(), 1.0))
        bad = joined.filter(differs)
        for row in bad.head(5).iter_rows(named=True):
            out.append(f"{column} differs: {row}")
        if bad.height > 5:
            out.append(f"... {bad.height - 5} more rows where {column} differs")
    return out

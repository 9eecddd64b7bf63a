"""The registry's KPIs written out by hand twice, independent of citystat's SQL builder:

- `floor_queries`: plain DuckDB SQL, one `GROUP BY GROUPING SETS` query per KPI over the
  Parquet files (every grain, and week/month/quarter/fiscal year by each dimension), as an
  analyst fluent in SQL would write it. Run straight on a DuckDB connection, this is the
  floor for the machine.
- `pandas_kpis`: the same KPIs with pandas, as an analyst would in a notebook: read the
  columns needed, add period columns, `groupby` per grain and dimension.

Derived KPIs (a subtraction of two rows) are left out of both; the SQL-file KPI is run from
its file in the floor (it is plain SQL already) and left out of pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

SLA = "closed_at <= created_at + to_hours(sla_hours)"


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


def _sla(df):
    return df.closed_at <= df.created_at + pd.to_timedelta(df.sla_hours, unit="h")


def _minutes(a, b, unit="s"):
    return lambda df: (df[b].dt.floor(unit) - df[a].dt.floor(unit)).dt.total_seconds() / 60.0


KPIS: tuple[Kpi, ...] = (
    Kpi("pothole_on_time", "service_requests", "closed_at", "request_type = 'Pothole' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district", "channel"),
        lambda d: (d.request_type == "Pothole") & d.closed_at.notna(), ("rate", _sla)),
    Kpi("graffiti_days_to_close", "service_requests", "closed_at",
        "request_type = 'Graffiti Removal' AND closed_at IS NOT NULL",
        ("median(date_diff('minute', created_at, closed_at) / 1440.0)",), ("district",),
        lambda d: (d.request_type == "Graffiti Removal") & d.closed_at.notna(),
        ("median", lambda d: _minutes("created_at", "closed_at", "min")(d) / 1440.0)),
    Kpi("streetlight_on_time", "service_requests", "closed_at",
        "request_type = 'Streetlight Outage' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district",),
        lambda d: (d.request_type == "Streetlight Outage") & d.closed_at.notna(), ("rate", _sla)),
    Kpi("missed_trash_requests", "service_requests", "created_at", "request_type = 'Missed Trash Pickup'",
        ("count(*)",), ("district",), lambda d: d.request_type == "Missed Trash Pickup", ("count",)),
    Kpi("illegal_dumping_on_time", "service_requests", "closed_at",
        "request_type = 'Illegal Dumping' AND closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district",),
        lambda d: (d.request_type == "Illegal Dumping") & d.closed_at.notna(), ("rate", _sla)),
    Kpi("requests_311", "service_requests", "created_at", "", ("count(*)",), ("district", "channel", "department"),
        None, ("count",)),
    Kpi("requests_311_on_time", "service_requests", "closed_at", "closed_at IS NOT NULL",
        (f"count(*) FILTER (WHERE {SLA})", "count(*)"), ("district", "department", "channel"),
        lambda d: d.closed_at.notna(), ("rate", _sla)),
    Kpi("digital_channel_share", "service_requests", "created_at", "",
        ("count(*) FILTER (WHERE channel IN ('app', 'web'))", "count(*)"), ("district",),
        None, ("rate", lambda d: d.channel.isin(["app", "web"]))),
    Kpi("ems_response_p90", "fire_ems_responses", "call_received_at",
        "incident_type = 'ems' AND priority = 1 AND on_scene_at IS NOT NULL",
        ("quantile_cont(date_diff('second', call_received_at, on_scene_at) / 60.0, 0.9)",), ("district",),
        lambda d: (d.incident_type == "ems") & (d.priority == 1) & d.on_scene_at.notna(),
        ("quantile", _minutes("call_received_at", "on_scene_at"), 0.9)),
    Kpi("fire_response_median", "fire_ems_responses", "call_received_at",
        "incident_type = 'fire' AND on_scene_at IS NOT NULL",
        ("median(date_diff('second', call_received_at, on_scene_at) / 60.0)",), ("district",),
        lambda d: (d.incident_type == "fire") & d.on_scene_at.notna(),
        ("median", _minutes("call_received_at", "on_scene_at"))),
    Kpi("dispatch_within_60s", "fire_ems_responses", "call_received_at", "priority = 1",
        ("count(*) FILTER (WHERE dispatched_at <= call_received_at + INTERVAL 60 SECOND)", "count(*)"), ("district",),
        lambda d: d.priority == 1,
        ("rate", lambda d: d.dispatched_at <= d.call_received_at + pd.Timedelta(seconds=60))),
    Kpi("fire_ems_incidents", "fire_ems_responses", "call_received_at", "", ("count(*)",),
        ("district", "incident_type"), None, ("count",)),
    Kpi("permit_review_days", "permits_issued", "issued_at", "", ("median(review_days)",), ("district",),
        None, ("median", lambda d: d.review_days)),
    Kpi("permits_on_time", "permits_issued", "issued_at", "",
        ("count(*) FILTER (WHERE review_days <= review_target_days)", "count(*)"), ("district",),
        None, ("rate", lambda d: d.review_days <= d.review_target_days)),
    Kpi("permits_applied", "permits", "applied_at", "", ("count(*)",), ("district",), None, ("count",)),
    Kpi("permits_issued", "permits_issued", "issued_at", "", ("count(*)",), ("district",), None, ("count",)),
    Kpi("housing_inspections_done", "housing_inspections", "inspected_at", "inspected_at IS NOT NULL",
        ("count(*)",), ("district", "reason"), lambda d: d.inspected_at.notna(), ("count",)),
    Kpi("housing_complaint_days", "housing_inspections", "inspected_at",
        "reason = 'complaint' AND inspected_at IS NOT NULL",
        ("median(date_diff('hour', requested_at, inspected_at) / 24.0)",), ("district",),
        lambda d: (d.reason == "complaint") & d.inspected_at.notna(),
        ("median", lambda d: (d.inspected_at.dt.floor("h") - d.requested_at.dt.floor("h")).dt.total_seconds() / 86400)),
    Kpi("restaurant_pass_rate", "restaurant_inspections", "inspected_at", "",
        ("count(*) FILTER (WHERE result = 'pass')", "count(*)"), ("district",), None,
        ("rate", lambda d: d.result == "pass")),
    Kpi("restaurant_critical_violations", "restaurant_inspections", "inspected_at", "",
        ("avg(critical_violations)",), ("district",), None, ("mean", lambda d: d.critical_violations)),
    Kpi("children_lead_tested", "blood_lead_tests", "tested_at", "", ("count(*)",), ("district",), None, ("count",)),
    Kpi("lead_elevated_share", "blood_lead_tests", "tested_at", "",
        ("count(*) FILTER (WHERE result_ug_dl >= 3.5)", "count(*)"), ("district",), None,
        ("rate", lambda d: d.result_ug_dl >= 3.5)),
    Kpi("exits_to_permanent_housing", "homeless_exits", "exited_at", "",
        ("count(*) FILTER (WHERE exit_destination = 'permanent')", "count(*)"), ("provider",), None,
        ("rate", lambda d: d.exit_destination == "permanent")),
    Kpi("returns_to_homelessness", "homeless_exits", "exited_at", "",
        ("count(*) FILTER (WHERE returned_within_12m)", "count(*)"), ("provider",), None,
        ("rate", lambda d: d.returned_within_12m.fillna(False).astype(bool))),
    Kpi("homeless_length_of_stay", "homeless_exits", "exited_at", "", ("median(stay_days)",), ("provider",),
        None, ("median", lambda d: d.stay_days)),
    Kpi("bills_paid_on_time", "reminder_letters", "due_date", "",
        ("count(*) FILTER (WHERE paid_on_time)", "count(*)"), ("arm", "district"), None,
        ("rate", lambda d: d.paid_on_time.fillna(False).astype(bool))),
    Kpi("pm25_daily_mean", "sensor_readings", "read_at", "", ("avg(pm25_ug_m3)",), ("district",), None,
        ("mean", lambda d: d.pm25_ug_m3)),
    Kpi("pm25_unhealthy_hours", "sensor_readings", "read_at", "", ("count(*) FILTER (WHERE pm25_ug_m3 > 35)",),
        ("district",), None, ("rate_num", lambda d: d.pm25_ug_m3 > 35)),
    Kpi("unscheduled_overtime_share", "staff_hours", "work_date", "",
        ("sum(unscheduled_overtime_hours)", "sum(regular_hours)"), ("department",), None,
        ("sumratio", "unscheduled_overtime_hours", "regular_hours")),
    Kpi("sick_hours_share", "staff_hours", "work_date", "", ("sum(sick_hours)", "sum(regular_hours)"),
        ("department",), None, ("sumratio", "sick_hours", "regular_hours")),
    Kpi("work_injuries", "staff_hours", "work_date", "", ("sum(injuries)",), ("department",), None,
        ("sum", "injuries")),
)

GRAIN_SQL = {
    "day": "CAST({t} AS DATE)",
    "week": "CAST(date_trunc('week', {t}) AS DATE)",
    "month": "CAST(date_trunc('month', {t}) AS DATE)",
    "quarter": "CAST(date_trunc('quarter', {t}) AS DATE)",
    "fiscal_year": "CAST(date_trunc('year', {t} - INTERVAL 6 MONTH) + INTERVAL 6 MONTH AS DATE)",
}


def table_sql(data: Path) -> dict[str, str]:
    """FROM clauses for each table, straight on the files (311 requests: the partition glob)."""
    files = {name: f"read_parquet('{data}/{name}.parquet')" for name in (
        "fire_ems_responses", "permits", "housing_inspections", "restaurant_inspections", "blood_lead_tests",
        "homeless_enrollments", "reminder_letters", "staff_hours", "sensor_readings")}
    files["service_requests"] = f"read_parquet('{data}/service_requests/*.parquet')"
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
        out.append((kpi.id, f"SELECT {', '.join(GRAIN_SQL)}, {', '.join(kpi.dims)}, {aggs} "
                    f"FROM (SELECT *, {periods} FROM {tables[kpi.table]} {where}) "
                    f"GROUP BY GROUPING SETS ({', '.join(sets)})", {}))
    lead = (queries / "lead_followup_30d.sql").read_text().replace("FROM blood_lead_tests", f"FROM {tables['blood_lead_tests']}") \
        .replace("JOIN housing_inspections", f"JOIN {tables['housing_inspections']}")
    for grain in GRAIN_SQL:
        out.append(("lead_followup_30d", lead, {"grain": grain, "start": "1900-01-01", "end": "2999-12-31",
                                                "fy_start_month": 7}))
    return out


def run_floor(data: Path, queries: Path, threads: int | None = None) -> int:
    """Run every floor query on a fresh DuckDB connection; returns the rows produced."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    rows = 0
    for _kpi, sql, params in floor_queries(data, queries):
        rows += len(con.execute(sql, params or None).fetchall())
    return rows


# ---- pandas ---------------------------------------------------------------------------------

def _periods(t: pd.Series) -> dict[str, pd.Series]:
    day = t.dt.normalize()
    fy_year = t.dt.year - (t.dt.month < 7)
    return {"day": day,
            "week": day - pd.to_timedelta(day.dt.weekday, unit="D"),
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


def pandas_kpis(data: Path) -> int:
    """Every declared KPI at every grain and dimension with pandas; returns the rows produced."""
    tables = _load_tables(data)
    rows = 0
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
        for grain in ("day", "week", "month", "quarter", "fiscal_year"):
            rows += len(_aggregate(frame, [f"__p_{grain}"], kpi.agg))
            if grain != "day":
                for dim in kpi.dims:
                    rows += len(_aggregate(frame, [f"__p_{grain}", dim], kpi.agg))
    return rows

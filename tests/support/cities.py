"""Testville: a tiny hand-made city (three sources, three KPIs) shared by the tests.

Its numbers are chosen by hand (`CASES` lists each district-month's tests and elevated
results), so tests can check figures against them without asking the code under test.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

REGISTRY = """\
city:
  name: Testville
  timezone: America/Chicago
  fiscal_year_start_month: 7
  contact_email: open@testville.example.gov
  website: https://testville.example.gov
  license: https://creativecommons.org/publicdomain/zero/1.0/
  suppression_threshold: 10
departments:
  - {id: ops, name: Operations, head: Chief Marker-Head-Zeta, email: ops@testville.example.gov}
  - {id: health, name: Public Health, head: Health Chief, email: health@testville.example.gov}
sources:
  - id: requests
    title: Service requests
    path: data/requests.parquet
    description: One row per service request.
    time_column: created_at
    refresh: P1D
    department: ops
    publishable: true
    columns:
      request_id: Request number
      created_at: When it was made
      district: Council district
      sla_hours: Service-level target in hours
    checks:
      key_columns: {request_id: 0, district: 0}
      ranges: {sla_hours: [1, 100]}
      unique: [request_id]
      allowed_values: {district: [D1, D2, D3]}
  - id: cases
    title: Lead test cases
    path: data/cases.parquet
    description: One row per blood-lead test of a child.
    time_column: tested_at
    refresh: P1W
    department: health
    sensitive: true
    publishable: true
    columns:
      test_id: Test number
      child_id: Child (pseudonymous)
      tested_at: When tested
      district: Council district
      result: Blood-lead level
  - id: old_feed
    title: Old feed
    path: data/old_feed.parquet
    description: A feed that stopped.
    time_column: read_at
    refresh: P1D
    department: ops
    columns:
      read_at: When read
      reading: The reading
metrics:
  - id: requests_count
    title: Requests received
    department: ops
    owner: Secret Owner Title Omega
    description: Number of service requests residents made.
    unit: count
    direction: higher
    grain: week
    tags: [public]
    targets:
      - {from: 2025-07-01, value: 150}
    source: requests
    measure: {agg: count}
  - id: elevated_share
    title: Children with elevated lead
    department: health
    owner: Lead Manager Title
    description: Share of tested children at or above 3.5.
    unit: percent
    direction: lower
    grain: month
    tags: [public]
    targets:
      - {from: 2025-07-01, value: 0.2}
    source: cases
    numerator: {agg: count, filter: result >= 3.5}
    denominator: {agg: count}
  - id: old_readings
    title: Old feed readings
    department: ops
    owner: Feed Owner
    description: Readings from the old feed.
    unit: count
    direction: higher
    grain: week
    tags: [public]
    targets:
      - {from: 2025-07-01, value: 1000}
    source: old_feed
    measure: {agg: count}
"""

FIRST_DAY = date(2026, 1, 5)    # a Monday
LAST_DAY = date(2026, 3, 1)     # a Sunday: 8 complete weeks
REQUESTS_PER_DAY = 20


def requests_frame(extra_days: int = 0) -> pl.DataFrame:
    """20 requests a day, 08:00.. hourly; two without district, one with sla_hours 500, and one
    request id used twice."""
    rows = []
    n = 0
    day = FIRST_DAY
    while day <= LAST_DAY + timedelta(days=extra_days):
        for k in range(REQUESTS_PER_DAY):
            n += 1
            rows.append({"request_id": n, "created_at": datetime(day.year, day.month, day.day, 3 + k),
                         "district": ["D1", "D2", "D3"][n % 3], "sla_hours": 48})
        day += timedelta(days=1)
    rows[0]["district"] = None
    rows[1]["district"] = None
    rows[2]["sla_hours"] = 500
    rows[4]["request_id"] = rows[3]["request_id"]
    return pl.DataFrame(rows, schema={"request_id": pl.Int64, "created_at": pl.Datetime("us"),
                                      "district": pl.String, "sla_hours": pl.Int64})


# cases per (month, district): (tests, of which elevated)
CASES = {("2026-01", "D1"): (3, 1), ("2026-01", "D2"): (30, 5), ("2026-01", "D3"): (25, 4),
         ("2026-02", "D1"): (40, 1), ("2026-02", "D2"): (30, 2), ("2026-02", "D3"): (26, 1)}


def cases_frame() -> pl.DataFrame:
    rows = []
    n = 0
    for (month, district), (tests, elevated) in CASES.items():
        year, mon = map(int, month.split("-"))
        for k in range(tests):
            n += 1
            rows.append({"test_id": n, "child_id": 5000 + n,
                         "tested_at": datetime(year, mon, 5 + k % 20, 10),
                         "district": district, "result": 5.0 if k < elevated else 1.0})
    return pl.DataFrame(rows, schema={"test_id": pl.Int64, "child_id": pl.Int64, "tested_at": pl.Datetime("us"),
                                      "district": pl.String, "result": pl.Float64})


def old_feed_frame() -> pl.DataFrame:
    start = datetime(2026, 1, 5, 12)
    times = [start + timedelta(days=i) for i in range(47)]   # last reading: Fri 2026-02-20 12:00
    return pl.DataFrame({"read_at": times, "reading": [1.0] * len(times)})


def make_city(folder: Path, registry_text: str = REGISTRY) -> Path:
    """Write the tiny city under `folder`; returns the path of its metrics.yaml."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    requests_frame().write_parquet(folder / "data" / "requests.parquet")
    cases_frame().write_parquet(folder / "data" / "cases.parquet")
    old_feed_frame().write_parquet(folder / "data" / "old_feed.parquet")
    path = folder / "metrics.yaml"
    path.write_text(registry_text, encoding="utf-8")
    return path


# --- the jobs city: one source of jobs (done_at, on_time, minutes) for the KPI-maths tests ---------

JOBS_SOURCE = """\
city: {{name: Testville, fiscal_year_start_month: 7}}
departments:
  - {{id: pw, name: Public Works}}
sources:
  - id: jobs
    path: {path}
    description: one row per job
    time_column: done_at
    refresh: P1D
metrics:
"""


def jobs_metric(metric_id: str, title: str, *, unit: str = "count", direction: str = "higher",
                grain: str = "week", targets: str = "", tags: str = "", form: str = "measure: {agg: count}") -> str:
    """One metric of the jobs city as registry YAML (``form``: the measure or numerator/denominator lines)."""
    lines = [f"  - id: {metric_id}", f"    title: {title}", "    department: pw", "    owner: x",
             f"    description: {title.lower()}", f"    unit: {unit}", f"    direction: {direction}",
             f"    grain: {grain}"]
    lines += [f"    tags: {tags}"] if tags else []
    lines += [f"    targets: {targets}"] if targets else []
    lines += ["    source: jobs"] + [f"    {line}" for line in form.splitlines()]
    return "\n".join(lines) + "\n"


def jobs_registry(*metrics: str, path: str = "data/jobs.parquet") -> str:
    """The jobs city's registry with the given metrics (from ``jobs_metric``)."""
    return JOBS_SOURCE.format(path=path) + "".join(metrics)

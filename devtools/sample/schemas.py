"""Column names and types of every sample extract: the contract in docs/SAMPLE_CITY.md.

Generators hand over plain numpy arrays; `to_table` turns them into Arrow with exactly these
types. Conventions for the arrays, chosen so generators stay vectorised:
- TIMESTAMP columns: int64 seconds since 1970-01-01 (naive local time), NULL_INT = null.
- DATE columns: int64 days since 1970-01-01, NULL_INT = null.
- VARCHAR columns: integer codes into the column's `categories`, -1 = null.
- BOOLEAN columns: int8 0/1, -1 = null.
- INTEGER / BIGINT columns: int64, NULL_INT = null.
- DOUBLE columns: float64, NaN = null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

NULL_INT = np.iinfo(np.int64).min

DISTRICTS = ("D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8")
DEPARTMENTS = ("pw", "csc", "fire", "dbs", "housing", "health", "hs", "fin", "env", "hr")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    categories: tuple[str, ...] | None = None


def _c(name: str, type_: pa.DataType, categories: tuple[str, ...] | None = None) -> Column:
    return Column(name, type_, categories)


TS = pa.timestamp("us")
REQUEST_TYPE_NAMES = (
    "Pothole", "Streetlight Outage", "Graffiti Removal", "Missed Trash Pickup", "Illegal Dumping",
    "Abandoned Vehicle", "Noise Complaint", "Housing Complaint", "Restaurant Complaint",
    "Tree Maintenance", "Sidewalk Repair", "Rodent Activity",
)
CHANNELS = ("phone", "app", "web", "walk_in")
STATIONS = tuple(f"Station {i}" for i in range(1, 9))
PERMIT_TYPES = ("building", "electrical", "plumbing", "mechanical", "demolition", "sign")
PROVIDERS = (
    "Harbor House", "Northside Shelter Partners", "Second Street Mission",
    "Riverton Family Promise", "Bridgeway Housing", "New Leaf Rapid Rehousing",
)
PROGRAM_TYPES = ("emergency_shelter", "rapid_rehousing", "transitional")
EXIT_DESTINATIONS = ("permanent", "temporary", "institution", "unknown")
SENSORS = tuple(f"AQ-{i:02d}" for i in range(1, 11))

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "service_requests": (
        _c("request_id", pa.int64()),
        _c("created_at", TS),
        _c("closed_at", TS),
        _c("request_type", pa.string(), REQUEST_TYPE_NAMES),
        _c("department", pa.string(), DEPARTMENTS),
        _c("district", pa.string(), DISTRICTS),
        _c("channel", pa.string(), CHANNELS),
        _c("sla_hours", pa.int32()),
        _c("status", pa.string(), ("open", "closed")),
    ),
    "fire_ems_responses": (
        _c("incident_id", pa.int64()),
        _c("call_received_at", TS),
        _c("dispatched_at", TS),
        _c("on_scene_at", TS),
        _c("incident_type", pa.string(), ("fire", "ems", "other")),
        _c("priority", pa.int32()),
        _c("district", pa.string(), DISTRICTS),
        _c("station", pa.string(), STATIONS),
    ),
    "permits": (
        _c("permit_id", pa.int64()),
        _c("permit_type", pa.string(), PERMIT_TYPES),
        _c("applied_at", TS),
        _c("issued_at", TS),
        _c("review_target_days", pa.int32()),
        _c("district", pa.string(), DISTRICTS),
        _c("valuation", pa.float64()),
    ),
    "addresses": (
        _c("address_id", pa.int64()),
        _c("district", pa.string(), DISTRICTS),
        _c("year_built", pa.int32()),
        _c("units", pa.int32()),
    ),
    "housing_inspections": (
        _c("inspection_id", pa.int64()),
        _c("address_id", pa.int64()),
        _c("requested_at", TS),
        _c("inspected_at", TS),
        _c("reason", pa.string(), ("complaint", "lead_referral", "routine")),
        _c("result", pa.string(), ("pass", "violation")),
        _c("violations", pa.int32()),
        _c("district", pa.string(), DISTRICTS),
    ),
    "restaurant_inspections": (
        _c("inspection_id", pa.int64()),
        _c("establishment_id", pa.int64()),
        _c("inspected_at", TS),
        _c("score", pa.int32()),
        _c("result", pa.string(), ("pass", "conditional", "fail")),
        _c("critical_violations", pa.int32()),
        _c("district", pa.string(), DISTRICTS),
    ),
    "blood_lead_tests": (
        _c("test_id", pa.int64()),
        _c("child_id", pa.int64()),
        _c("address_id", pa.int64()),
        _c("tested_at", TS),
        _c("age_months", pa.int32()),
        _c("result_ug_dl", pa.float64()),
        _c("district", pa.string(), DISTRICTS),
    ),
    "homeless_enrollments": (
        _c("enrollment_id", pa.int64()),
        _c("client_id", pa.int64()),
        _c("provider", pa.string(), PROVIDERS),
        _c("program_type", pa.string(), PROGRAM_TYPES),
        _c("entered_at", pa.date32()),
        _c("exited_at", pa.date32()),
        _c("exit_destination", pa.string(), EXIT_DESTINATIONS),
        _c("returned_within_12m", pa.bool_()),
        _c("age", pa.int32()),
        _c("household_type", pa.string(), ("single", "family")),
        _c("chronic_homeless", pa.bool_()),
        _c("disability", pa.bool_()),
        _c("prior_episodes", pa.int32()),
        _c("income_at_entry", pa.bool_()),
        _c("veteran", pa.bool_()),
    ),
    "pfs_participants": (
        _c("participant_id", pa.int64()),
        _c("arm", pa.string(), ("treatment", "control")),
        _c("enrolled_at", pa.date32()),
        _c("age", pa.int32()),
        _c("incarcerated_within_24m", pa.bool_()),
        _c("jail_bed_days", pa.int32()),
        _c("employed_q4", pa.bool_()),
        _c("follow_up_complete", pa.bool_()),
    ),
    "reminder_letters": (
        _c("account_id", pa.int64()),
        _c("arm", pa.string(), ("control", "reminder")),
        _c("mailed_at", pa.date32()),
        _c("due_date", pa.date32()),
        _c("paid_on_time", pa.bool_()),
        _c("amount_due", pa.float64()),
        _c("district", pa.string(), DISTRICTS),
    ),
    "staff_hours": (
        _c("work_date", pa.date32()),
        _c("department", pa.string(), DEPARTMENTS),
        _c("headcount", pa.int32()),
        _c("regular_hours", pa.float64()),
        _c("overtime_hours", pa.float64()),
        _c("unscheduled_overtime_hours", pa.float64()),
        _c("sick_hours", pa.float64()),
        _c("injuries", pa.int32()),
    ),
    "sensor_readings": (
        _c("sensor_id", pa.string(), SENSORS),
        _c("district", pa.string(), DISTRICTS),
        _c("read_at", TS),
        _c("pm25_ug_m3", pa.float64()),
        _c("no2_ppb", pa.float64()),
        _c("temperature_c", pa.float64()),
        _c("noise_db", pa.float64()),
    ),
}

EXTRACTS: tuple[str, ...] = tuple(SCHEMAS)


def arrow_schema(extract: str) -> pa.Schema:
    """The Arrow schema of `extract` (DuckDB reads int32 as INTEGER, int64 as BIGINT)."""
    return pa.schema([pa.field(c.name, c.type) for c in SCHEMAS[extract]])


def _arrow_column(column: Column, values: np.ndarray) -> pa.Array:
    if column.categories is not None:
        codes = np.asarray(values, dtype=np.int32)
        indices = pa.array(codes, mask=codes < 0)
        dictionary = pa.array(column.categories, type=pa.string())
        return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())
    if column.type == TS:
        raw = np.asarray(values, dtype=np.int64)
        mask = raw == NULL_INT
        micros = np.where(mask, 0, raw) * 1_000_000
        return pa.array(micros, type=pa.int64(), mask=mask).cast(TS)
    if column.type == pa.date32():
        raw = np.asarray(values, dtype=np.int64)
        mask = raw == NULL_INT
        return pa.array(np.where(mask, 0, raw).astype(np.int32), mask=mask).cast(pa.date32())
    if column.type == pa.bool_():
        raw = np.asarray(values, dtype=np.int8)
        return pa.array(raw == 1, mask=raw < 0)
    if column.type == pa.float64():
        raw = np.asarray(values, dtype=np.float64)
        return pa.array(raw, mask=np.isnan(raw))
    raw = np.asarray(values, dtype=np.int64)
    mask = raw == NULL_INT
    return pa.array(np.where(mask, 0, raw), mask=mask).cast(column.type)


def to_table(extract: str, columns: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table of `extract` from generator arrays, in the documented column order."""
    spec = SCHEMAS[extract]
    missing = [c.name for c in spec if c.name not in columns]
    extra = sorted(set(columns) - {c.name for c in spec})
    if missing or extra:
        raise ValueError(f"{extract}: generator columns wrong (missing {missing}, extra {extra})")
    arrays = [_arrow_column(c, columns[c.name]) for c in spec]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(extract))

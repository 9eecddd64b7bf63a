"""Write the sample city: month by month, in bounded memory, as zstd Parquet.

Each month's per-day rows are drawn, turned into Arrow and handed to one streaming Parquet
writer per extract (or, with `partitioned=True`, the 311 requests go to one file per month
under `service_requests/`). Files are written under a temporary name and renamed at the end,
so a reader never sees half an extract.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from devtools.sample import cohorts, daily
from devtools.sample.daily import City, epoch_day
from devtools.sample.schemas import EXTRACTS, arrow_schema, to_table

DEFAULT_SEED = 20261115
DEFAULT_REQUESTS = daily.REFERENCE_REQUESTS
DEFAULT_START = date(2023, 11, 13)
DEFAULT_END = date(2026, 11, 15)
ROW_GROUP_ROWS = 512 * 1024
COMPRESSION_LEVEL = 9

DAILY_GENERATORS: dict[str, Callable[[City, int], dict[str, np.ndarray]]] = {
    "service_requests": daily.service_requests_day,
    "fire_ems_responses": daily.fire_ems_responses_day,
    "permits": daily.permits_day,
    "housing_inspections": daily.housing_inspections_day,
    "restaurant_inspections": daily.restaurant_inspections_day,
    "homeless_enrollments": daily.homeless_enrollments_day,
    "staff_hours": daily.staff_hours_day,
    "sensor_readings": daily.sensor_readings_day,
}


def address_count(requests: int) -> int:
    return max(1_000, round(60_000 * requests / daily.REFERENCE_REQUESTS))


def establishment_count(requests: int) -> int:
    return max(100, round(2_200 * requests / daily.REFERENCE_REQUESTS))


def months(start: date, end: date) -> Iterator[tuple[str, date, date]]:
    """(YYYY-MM, first day, last day) of each calendar month overlapping start..end."""
    first = start
    while first <= end:
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = min(end, following - timedelta(days=1))
        yield f"{first:%Y-%m}", first, last
        first = following


@dataclass
class _ParquetOutput:
    """One extract's streaming writer; buffers small monthly tables into big row groups."""

    path: Path
    schema: pa.Schema
    rows: int = 0
    _pending: list[pa.Table] = field(default_factory=list)
    _pending_rows: int = 0
    _writer: pq.ParquetWriter | None = None

    @property
    def tmp_path(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.tmp_path, self.schema, compression="zstd",
                compression_level=COMPRESSION_LEVEL,
            )
        if self._pending:
            table = pa.concat_tables(self._pending).combine_chunks()
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        assert self._writer is not None
        self._writer.close()
        os.replace(self.tmp_path, self.path)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(
    out_dir: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    requests: int = DEFAULT_REQUESTS,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    partitioned: bool = False,
    extracts: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write the sample city's extracts into `out_dir`; return the row count of each.

    `requests` sizes the city: it is the number of 311 requests over the standard three years
    (1,099 days, 2023-11-13..2026-11-15), so a shorter range holds proportionally fewer, and
    every other day-by-day extract scales with it. The same arguments always give identical
    files, and a day's rows do not depend on `start` or `end` (except for outcomes after `end`,
    which are null or not yet there).
    """
    chosen = tuple(EXTRACTS if extracts is None else extracts)
    unknown = sorted(set(chosen) - set(EXTRACTS))
    if unknown:
        raise ValueError(f"unknown extract(s) {unknown}; known: {', '.join(EXTRACTS)}")
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if requests <= 0:
        raise ValueError(f"--requests must be positive, got {requests}")
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    end_day = epoch_day(end)
    address_columns = cohorts.addresses(seed, address_count(requests))
    city = City(
        seed=seed, requests=requests, end_exclusive=(end_day + 1) * daily.DAY, end_day=end_day,
        address_district=address_columns["district"],
        address_year_built=address_columns["year_built"],
        establishment_district=cohorts.establishment_districts(seed, establishment_count(requests)),
    )
    counts: dict[str, int] = {}

    def write_whole(extract: str, columns: dict[str, np.ndarray]) -> None:
        output = _ParquetOutput(out / f"{extract}.parquet", arrow_schema(extract))
        output.write(to_table(extract, columns))
        output.close()
        counts[extract] = output.rows

    if "addresses" in chosen:
        write_whole("addresses", address_columns)
    if "pfs_participants" in chosen:
        write_whole("pfs_participants", cohorts.pfs_participants(seed, end_day))
    if "reminder_letters" in chosen:
        write_whole("reminder_letters", cohorts.reminder_letters(seed, end_day))

    day_by_day = [e for e in chosen if e in DAILY_GENERATORS or e == "blood_lead_tests"]
    partition_311 = partitioned and "service_requests" in day_by_day
    outputs = {
        e: _ParquetOutput(out / f"{e}.parquet", arrow_schema(e))
        for e in day_by_day if not (partition_311 and e == "service_requests")
    }
    want_lead = "blood_lead_tests" in chosen or "housing_inspections" in chosen
    started = time.perf_counter()
    total_311 = 0
    for label, first, last in months(start, end):
        parts: dict[str, list[dict[str, np.ndarray]]] = {e: [] for e in day_by_day}
        for day in range(epoch_day(first), epoch_day(last) + 1):
            for extract in day_by_day:
                if extract in DAILY_GENERATORS:
                    parts[extract].append(DAILY_GENERATORS[extract](city, day))
            if want_lead:
                tests, referrals = daily.blood_lead_tests_day(city, day)
                if "blood_lead_tests" in parts:
                    parts["blood_lead_tests"].append(tests)
                if "housing_inspections" in parts:
                    parts["housing_inspections"].append(referrals)
        for extract, day_parts in parts.items():
            table = to_table(extract, _concat(day_parts))
            if extract == "housing_inspections":
                table = table.sort_by([("requested_at", "ascending"), ("inspection_id", "ascending")])
            if extract == "service_requests":
                total_311 += table.num_rows
            if partition_311 and extract == "service_requests":
                month_output = _ParquetOutput(out / "service_requests" / f"{label}.parquet", table.schema)
                month_output.write(table)
                month_output.close()
                counts[extract] = counts.get(extract, 0) + table.num_rows
            else:
                outputs[extract].write(table)
        say(f"{label}: {total_311:,} 311 requests so far, {time.perf_counter() - started:.1f} s, "
            f"peak memory {_peak_rss_mb():,.0f} MB")
    for extract, output in outputs.items():
        output.close()
        counts[extract] = output.rows
    return {e: counts[e] for e in chosen}

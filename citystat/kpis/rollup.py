"""The KPI rollup: every metric at every grain (and its dimension breakdowns) as one long frame.

The stages live apart: `sql.py` builds the SQL text, `scan.py` runs it through the engine,
`incremental.py` plans a refresh from the previous rollup; this module holds the `Rollup`
and puts the stages together:

- `compute_rollup(engine)`: everything, in one scan per (source, time column) for the
  decomposable metrics and one per holistic metric; SQL-file metrics once per grain;
  derived metrics last, from the totals of the metrics they use.
- `refresh_rollup(engine, previous)`: the same result, reusing `previous` when the only
  change in the data is new files in path sources (appended partitions).

Both label the rollup with the fingerprint of the extracts taken BEFORE reading them and
check it again after: if an extract changed meanwhile, they raise `SourcesChanged` rather
than store data read before the change under the new fingerprint. `stable_rollup` retries
with a fresh engine a few times.

Output columns (see docs/ARCHITECTURE.md): metric_id, grain, period_start, dimension,
dimension_value, value, numerator, denominator, n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

import polars as pl

from citystat.core.periods import GRAINS
from citystat.kpis import sql as builders
from citystat.kpis.engine import Engine, QueryError
from citystat.kpis.incremental import (dependent_sources, earliest_period_start, file_manifest, merged_extents,
                                       new_file_stats, plan_refresh)
from citystat.kpis.scan import (ROLLUP_SCHEMA, after_scan, compute_declared, compute_derived, compute_group,
                                compute_sql_metric, daily_key, empty_rollup, group_key, groups, keep_rows, problem, rows_key,
                                source_extents)
from citystat.registry.loader import Problem, Registry, derived_order
from citystat.registry.models import Metric

__all__ = ["ROLLUP_SCHEMA", "Rollup", "SourcesChanged", "compute_rollup", "empty_rollup", "metric_sql",
           "refresh_rollup", "stable_rollup"]


@dataclass
class Rollup:
    """All KPI aggregates for one registry + data fingerprint."""

    frame: pl.DataFrame
    extents: pl.DataFrame  # source_id, first_time, last_time, rows
    problems: list[Problem] = field(default_factory=list)
    fingerprint: str = ""
    # source_id -> [[file, size, mtime_ns], ...] of the files this rollup was computed from;
    # lets the next refresh tell "new partitions only" (incremental) from "rewritten" (full).
    manifest: dict[str, list[list]] = field(default_factory=dict)
    registry_fingerprint: str = ""
    # how this rollup was made (for benchmarks, logs): full | incremental | unchanged | cached, or
    # previous: an older rollup kept because the extracts kept changing while being read
    how: str = "full"
    # daily_key(source, time column) -> the daily partials (day x dimension rows of the
    # decomposable metrics) of that scan, and rows_key(metric) -> a holistic metric's rows (for
    # partitioned sources), or the Parquet file holding them (read when needed): lets an
    # append be folded in by scanning only the new days.
    daily: dict[str, pl.DataFrame | Path] = field(default_factory=dict, repr=False, compare=False)
    _index: dict | None = field(default=None, repr=False, compare=False)

    def daily_partials(self, key: str) -> pl.DataFrame | None:
        """The kept daily partials of one scan, or None (not kept, or the file is gone)."""
        found = self.daily.get(key)
        if isinstance(found, Path):
            try:
                found = self.daily[key] = pl.read_parquet(found)
            except (OSError, pl.exceptions.PolarsError):
                return None
        return found

    def series(self, metric_id: str, grain: str, dimension: str = "") -> pl.DataFrame:
        """One metric's rows at one grain and dimension, sorted; O(1) after the first call.

        Pages ask for dozens of series per render; filtering the whole long frame each time
        would cost a scan of every row per KPI, so the frame is split once into a dict.
        """
        if self._index is None:
            sorted_frame = self.frame.sort("metric_id", "grain", "dimension", "period_start", "dimension_value")
            self._index = sorted_frame.partition_by(["metric_id", "grain", "dimension"], as_dict=True,
                                                    maintain_order=True)
        found = self._index.get((metric_id, grain, dimension))
        return found if found is not None else self.frame.clear()

    def last_data_day(self, source_ids: list[str] | None = None) -> date | None:
        extents = self.extents
        if source_ids is not None:
            extents = extents.filter(pl.col("source_id").is_in(source_ids))
        values = extents["last_time"].drop_nulls()
        if values.is_empty():
            return None
        last = values.max()
        return last.date() if hasattr(last, "date") else last

    def failed_metrics(self) -> set[str]:
        return {p.entry.removeprefix("metric ") for p in self.problems if p.entry and p.entry.startswith("metric ")}


class SourcesChanged(Exception):
    """Extracts changed while the rollup was being computed: its numbers mix old and new data."""

    def __init__(self, sources: list[str]):
        self.sources = sources
        super().__init__(f"the extracts of {', '.join(sources) or 'a source'} changed while the KPIs were being "
                         f"computed; nothing was stored under the new data")


@dataclass(frozen=True)
class Snapshot:
    """What the extracts were when a computation started: per-source fingerprints and file manifest."""

    sources: dict[str, str]
    manifest: dict[str, list[list]]
    fingerprint: str


def take_snapshot(engine: Engine) -> Snapshot:
    """The extracts' state now; raises `SourcesChanged` when the engine's copies of s3:// sources
    are already older than what the bucket holds (a new engine must copy them again)."""
    sources = engine.source_fingerprints()
    stale = engine.stale_sources(sources)
    if stale:
        raise SourcesChanged(stale)
    return Snapshot(sources, file_manifest(engine), engine.fingerprint(sources))


def _check_unchanged(engine: Engine, before: Snapshot) -> None:
    after = engine.source_fingerprints()
    changed = sorted(s for s in set(after) | set(before.sources) if after.get(s) != before.sources.get(s))
    if changed:
        raise SourcesChanged(changed)


def compute_rollup(engine: Engine, grains: tuple[str, ...] = GRAINS, *, snapshot: Snapshot | None = None) -> Rollup:
    """Full computation of every healthy metric. Broken metrics become problems, not crashes."""
    before = snapshot or take_snapshot(engine)
    registry = engine.registry
    declared = [m for m in registry.metrics.values() if m.kind in ("measure", "rate")]
    sql_metrics = [m for m in registry.metrics.values() if m.kind == "sql"]
    daily: dict[str, pl.DataFrame] = {}
    frames, problems = compute_declared(engine, declared, grains, daily)
    for metric in sql_metrics:
        try:
            frames.append(compute_sql_metric(engine, metric, grains))
            after_scan(f"metric {metric.id}")
        except (QueryError, OSError) as exc:
            problems.append(problem(registry, metric.id, getattr(exc, "message", str(exc))))
    extents = source_extents(engine)
    totals = pl.concat(frames) if frames else empty_rollup()
    totals, derived_problems = _with_derived(registry, totals)
    rollup = Rollup(frame=totals.sort("metric_id", "grain", "dimension", "period_start"),
                    extents=extents, problems=problems + derived_problems + list(engine.problems),
                    fingerprint=before.fingerprint, manifest=before.manifest,
                    registry_fingerprint=registry.fingerprint(), how="full", daily=daily)
    _check_unchanged(engine, before)
    return rollup


def _with_derived(registry: Registry, totals: pl.DataFrame) -> tuple[pl.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    for metric_id in derived_order(registry):
        try:
            totals = pl.concat([totals, compute_derived(registry, totals, registry.metrics[metric_id])])
        except QueryError as exc:
            problems.append(problem(registry, metric_id, exc.message))
    return totals, problems


def refresh_rollup(engine: Engine, previous: Rollup | None = None, grains: tuple[str, ...] = GRAINS) -> Rollup:
    """The rollup for the engine's current data, reusing `previous` when only files were added.

    For a (source, time column) that gained files, every metric reads only the rows from the
    first day in the new files on: decomposable metrics put those days in place of their kept
    daily partials, holistic metrics add the rows to the rows they kept; both re-aggregate the
    periods from the earliest period start holding a new row (the fiscal year's, at most a
    year) on, and keep the older periods as they were (none of their rows changed).

    Gives exactly what `compute_rollup` gives (tests/test_incremental.py checks it); falls back
    to `compute_rollup` whenever an incremental update could not be proven equal. Raises
    `SourcesChanged` when an extract changed during the computation.
    """
    before = take_snapshot(engine)
    if grains != GRAINS:
        return compute_rollup(engine, grains, snapshot=before)
    appended, _reason = plan_refresh(previous, engine, before.manifest)
    if appended is None:
        return compute_rollup(engine, grains, snapshot=before)
    registry = engine.registry
    if not appended:
        return Rollup(frame=previous.frame, extents=previous.extents, problems=list(engine.problems),
                      fingerprint=before.fingerprint, manifest=before.manifest,
                      registry_fingerprint=registry.fingerprint(), how="unchanged", daily=dict(previous.daily))
    affected = dependent_sources(registry, set(appended))
    fy = registry.city.fiscal_year_start_month
    declared = [m for m in registry.metrics.values() if m.kind in ("measure", "rate")]
    kept = previous.frame
    fresh: list[pl.DataFrame] = []
    daily = dict(previous.daily)
    try:
        stats = {}
        for source_id, files in appended.items():
            columns = {group_key(registry, m)[1] for m in declared if m.source == source_id}
            stats[source_id] = new_file_stats(engine, source_id, files, columns)
        for (source_id, time_column), group in groups(registry, declared):
            if source_id not in affected:
                continue
            key = daily_key(source_id, time_column)
            if source_id in appended:  # a file source: only rows from the first new day on
                new_from = stats[source_id]["first"][time_column]
                if new_from is None:
                    continue  # the new files hold no dated rows for this time column
                holistic_since = earliest_period_start(new_from, fy, grains)
                kept_rows = {m.id: previous.daily_partials(rows_key(m.id)) for m in group
                             if not builders.is_decomposable(m)}
                result = compute_group(engine, source_id, time_column, group, grains, holistic_since=holistic_since,
                                       stored=previous.daily_partials(key), new_from=new_from, stored_rows=kept_rows)
            else:  # a SQL source reading a changed source: recomputed in full
                holistic_since = None
                result = compute_group(engine, source_id, time_column, group, grains)
            if source_id in engine.available:
                after_scan(source_id)
            if result.problems:
                return compute_rollup(engine, grains, snapshot=before)
            replaced = pl.col("metric_id").is_in([m.id for m in group])
            if holistic_since is not None:  # periods starting before it hold no new row: kept as they are
                replaced = replaced & (pl.col("period_start") >= holistic_since)
                result.frames = [f.filter(pl.col("period_start") >= holistic_since) for f in result.frames]
            kept = kept.filter(~replaced)
            fresh += result.frames
            if result.days is not None:
                daily[key] = result.days
            else:
                daily.pop(key, None)
            for metric in group:
                daily.pop(rows_key(metric.id), None)
            keep_rows(daily, result.rows)
        for metric in registry.metrics.values():
            if metric.kind == "sql" and set(registry.sources_of(metric)) & affected:
                kept = kept.filter(pl.col("metric_id") != metric.id)
                fresh.append(compute_sql_metric(engine, metric, grains))
                after_scan(f"metric {metric.id}")
        extents = merged_extents(engine, previous, affected, stats)
    except (QueryError, OSError):
        return compute_rollup(engine, grains, snapshot=before)
    derived_ids = [m.id for m in registry.metrics.values() if m.kind == "derived"]
    totals = pl.concat([kept.filter(~pl.col("metric_id").is_in(derived_ids)), *fresh]).cast(ROLLUP_SCHEMA)
    totals, problems = _with_derived(registry, totals)
    rollup = Rollup(frame=totals.sort("metric_id", "grain", "dimension", "period_start"), extents=extents,
                    problems=problems + list(engine.problems), fingerprint=before.fingerprint,
                    manifest=before.manifest, registry_fingerprint=registry.fingerprint(), how="incremental",
                    daily=daily)
    _check_unchanged(engine, before)
    return rollup


RETRIES = 3


def stable_rollup(engine: Engine, previous: Rollup | None, new_engine: Callable[[], Engine],
                  attempts: int = RETRIES) -> tuple[Engine, Rollup]:
    """(engine, rollup) computed from extracts that did not change while being read.

    When they changed (`SourcesChanged`), starts again on a fresh engine (which copies s3://
    sources again), up to `attempts` times in all; then raises the last `SourcesChanged`.
    """
    for attempt in range(attempts):
        try:
            return engine, refresh_rollup(engine, previous)
        except SourcesChanged:
            if attempt == attempts - 1:
                raise
            engine = new_engine()
    raise AssertionError("unreachable")


def metric_sql(registry: Registry, metric: Metric, grain: str) -> str:
    """The SQL that computes one metric at one grain, as shown to users ('how is this made?')."""
    time_column = None
    if metric.source:
        time_column = metric.time_column or registry.sources[metric.source].time_column
    try:
        text = registry.sql_text(metric.sql) if metric.kind == "sql" else None
    except OSError as exc:
        text = f"-- cannot read {metric.sql}: {exc.strerror or exc}"
    return builders.metric_sql(registry.city.fiscal_year_start_month, metric, grain, time_column, text)

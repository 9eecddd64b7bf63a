"""The incremental planner: can a new rollup be made from the previous one plus the new files?

A rollup keeps the manifest of the files it was computed from (`file_manifest`). When the
registry is unchanged and every one of those files is still there unchanged, the data only
gained NEW files (appended partitions), and `plan_refresh` names them; `rollup.refresh_rollup`
then rescans only the periods their rows fall in (see docs/PERFORMANCE.md, "Incremental
refresh"). Anything else (a rewritten, touched or removed file, a changed query) means a full
refresh.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from citystat.core.periods import GRAINS, period_start
from citystat.files.local import expand, file_stats
from citystat.kpis import sql as builders
from citystat.kpis.engine import Engine
from citystat.kpis.scan import source_extents
from citystat.registry.loader import Registry

if TYPE_CHECKING:
    from citystat.kpis.rollup import Rollup


def file_manifest(engine: Engine) -> dict[str, list[list]]:
    """source_id -> [[file, size, mtime_ns], ...] for every path source (size -1: cannot stat)."""
    return {source_id: file_stats(expand(files.pattern)) for source_id, files in sorted(engine.source_files.items())}


def plan_refresh(previous: "Rollup | None", engine: Engine, manifest: dict[str, list[list]] | None = None
                 ) -> tuple[dict[str, list[str]] | None, str]:
    """Which new files to fold into `previous`, or (None, why) when only a full refresh is safe.

    Incremental is safe only when the registry and its query files are unchanged and every
    file the previous rollup read is still there with the same size and modification time:
    the data changed only by NEW files (appended partitions). A rewritten, touched or removed
    file (a re-extract that updates old rows, e.g. closing old requests) means a full refresh.
    `manifest` is the current one if already taken (default: taken now).
    """
    if previous is None:
        return None, "no previous rollup"
    if previous.registry_fingerprint != engine.registry.fingerprint():
        return None, "the registry or a query file changed"
    if previous.failed_metrics():
        return None, "the previous rollup had failed metrics"
    manifest = file_manifest(engine) if manifest is None else manifest
    if set(manifest) != set(previous.manifest):
        return None, "the set of file sources changed"
    appended: dict[str, list[str]] = {}
    for source_id, rows in manifest.items():
        now = {row[0]: (row[1], row[2]) for row in rows}
        for file, size, mtime in previous.manifest[source_id]:
            if size < 0 or now.get(file) != (size, mtime):
                return None, f"{file} was changed or removed"
        old = {row[0] for row in previous.manifest[source_id]}
        new_files = [f for f in now if f not in old]
        if any(now[f][0] < 0 for f in new_files):
            return None, f"cannot read the size of a new file of {source_id}"
        if new_files:
            appended[source_id] = new_files
    return appended, "only new files were added"


def dependent_sources(registry: Registry, changed: set[str]) -> set[str]:
    """`changed` plus every SQL-defined source that reads one of them (transitively)."""
    affected = set(changed)
    progressed = True
    while progressed:
        progressed = False
        for source in registry.sources.values():
            if source.id in affected or not source.sql:
                continue
            try:
                text = registry.sql_text(source.sql)
            except OSError:
                affected.add(source.id)
                progressed = True
                continue
            if any(re.search(rf"\b{re.escape(s)}\b", text) for s in affected):
                affected.add(source.id)
                progressed = True
    return affected


def new_file_stats(engine: Engine, source_id: str, files: list[str], time_columns: set[str]) -> dict:
    """Over the newly added files only: {"first": {column: earliest day}} for every time column
    in `time_columns`, and the extents row of the source's own time column (min, max, rows)."""
    own = engine.registry.sources[source_id].time_column
    columns = sorted(time_columns | ({own} if own else set()))
    result = engine.query(builders.new_files_sql(columns, own), {"files": files},
                          context=f"new files {', '.join(files)}")
    row = result.row(0, named=True)
    return {"first": {c: row[f"first|{c}"] for c in columns}, "extents": result.select(
        [c for c in ("first_time", "last_time", "rows") if c in result.columns])}


def earliest_period_start(day: date, fy_start_month: int, grains: tuple[str, ...] = GRAINS) -> date:
    """The earliest start, over all grains, of a period holding `day` (usually the fiscal year's).

    Every period of every grain that starts on or after this day is recomputed; every period
    that starts before it holds none of the new rows and is kept.
    """
    return min(period_start(day, g, fy_start_month) for g in grains)


def merged_extents(engine: Engine, previous: "Rollup", affected: set[str], stats: dict[str, dict]) -> pl.DataFrame:
    """Source extents after an append: a file source that only gained files combines its old
    extents with the new files' (min of mins, max of maxes, sum of rows); others are rescanned."""
    rescan = set(affected)
    merged = []
    for source_id, stat in stats.items():
        old = previous.extents.filter(pl.col("source_id") == source_id)
        new = stat["extents"]
        if old.height != 1 or "first_time" not in new.columns:
            continue
        both = pl.concat([old.select("first_time", "last_time", "rows"),
                          new.cast({"first_time": pl.Datetime("us"), "last_time": pl.Datetime("us"),
                                    "rows": pl.Int64})])
        merged.append(both.select(pl.lit(source_id).alias("source_id"), pl.col("first_time").min(),
                                  pl.col("last_time").max(), pl.col("rows").sum()))
        rescan.discard(source_id)
    parts = [previous.extents.filter(~pl.col("source_id").is_in(list(affected))), source_extents(engine, rescan)]
    parts += [m.select(previous.extents.columns).cast(previous.extents.schema) for m in merged]
    return pl.concat(parts).sort("source_id")


__all__ = ["dependent_sources", "earliest_period_start", "file_manifest", "merged_extents",
           "new_file_stats", "plan_refresh"]

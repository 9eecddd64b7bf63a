"""`python -m citystat refresh`: compute the KPI rollup once and publish it for the app replicas.

Run it from cron or a scheduler after the extracts land (see docs/DEPLOYMENT.md). The
rollup is computed by the usual `CityStat` code (incremental when it can be) and published
to a local folder or an `s3://` prefix: the rollup files under their fingerprint first, the
pointer `latest.json` last, so replicas switch to the new rollup whole, within their check
interval, without a restart.

A refresh that cannot be trusted publishes nothing and exits non-zero, naming the reason,
so replicas keep serving the last good publication:
- exit 3: a source the last publication read cannot be read now (extracts folder or file
  missing, unreadable file), or the extracts kept changing while being read;
- exit 2: the publication target cannot be read or written.
Leftovers of killed refreshes (temporary files, files no pointer names) are removed by a
later run once they are an hour old.

Target, first found: `--to`, `$CITYSTAT_ROLLUPS`, a `rollups/` folder next to the registry.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from citystat import config
from citystat.files.s3 import Folder, ObjectStoreError, folder_at, publish, read_pointer
from citystat.kpis.replica import rollups_location


def default_target(registry_path: Path) -> str:
    return rollups_location() or str(registry_path.parent / "rollups")


class RefreshError(Exception):
    """The refresh must not publish: says which source or what changed."""


def sources_read(folder: Folder, pointer: dict | None) -> set[str]:
    """The sources the publication `pointer` was computed from (older pointers: its extents' sources)."""
    if not pointer:
        return set()
    if isinstance(pointer.get("sources"), list):
        return {str(s) for s in pointer["sources"]}
    import polars as pl

    data = folder.read_bytes(f"extents-{pointer['fingerprint']}.parquet")
    if data is None:
        return set()
    try:
        extents = pl.read_parquet(data)
    except pl.exceptions.PolarsError:
        return set()
    return set(extents.filter(pl.col("rows") > 0)["source_id"].to_list())


def refresh(registry_path: str | Path | None = None, target: str | None = None, keep: int = 5) -> dict:
    """Compute the rollup for a registry and publish it; returns the pointer written.

    Raises `RefreshError` (publishing nothing) when a source the current publication was
    computed from cannot be read now, or when the extracts kept changing during the compute.
    """
    from citystat.api import CityStat
    from citystat.kpis.rollup import RETRIES, SourcesChanged
    from citystat.kpis.rollup_files import rollup_files

    path = config.registry_path(registry_path)
    target = target or default_target(path)
    folder = folder_at(target)
    previous = read_pointer(folder)
    started = time.perf_counter()
    city = CityStat.open(path, replica=False)
    try:
        rollup = city.rollup
    except SourcesChanged as exc:
        raise RefreshError(f"{exc}; tried {RETRIES} times. Nothing was published: {target} keeps its last "
                           f"publication. Run the refresh again once the extracts have landed.") from None
    if rollup.how == "previous":  # the extracts kept changing; the API fell back on an older rollup
        raise RefreshError(next(p.message for p in rollup.problems if p.entry == "rollup")
                           + f". Nothing was published: {target} keeps its last publication.")
    seconds = time.perf_counter() - started
    engine = city.engine
    # a source retired from metrics.yaml on purpose is not "lost"
    lost = sorted((sources_read(folder, previous) & set(city.registry.sources)) - engine.available)
    if lost:
        reasons = {p.entry.removeprefix("source "): p.message for p in engine.problems
                   if p.entry and p.entry.startswith("source ")}
        lines = [f"source {s}: {reasons.get(s, 'cannot be read')}" for s in lost]
        raise RefreshError("cannot read " + ", ".join(lost) + ", which the last publication was computed from:\n  "
                           + "\n  ".join(lines) + f"\nNothing was published: {target} keeps its last publication "
                           f"({previous['fingerprint']}, published {previous.get('published_at', '?')}).")
    files = rollup_files(rollup)  # partials-* (per-day partial aggregates) serve this job's cache, not replicas
    pointer = {
        "fingerprint": rollup.fingerprint,
        "registry_fingerprint": city.registry.fingerprint(),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "city": city.registry.city.name,
        "rows": rollup.frame.height,
        "compute_seconds": round(seconds, 3),
        "problems": len(rollup.problems),
        "sources": sorted(engine.available),
    }
    return publish(folder, files, pointer, keep=keep)


def run(args: argparse.Namespace) -> int:
    try:
        pointer = refresh(args.registry, args.to, keep=args.keep)
    except ObjectStoreError as exc:
        print(f"refresh: {exc}", file=sys.stderr)
        return 2
    except RefreshError as exc:
        print(f"refresh failed: {exc}", file=sys.stderr)
        return 3
    target = args.to or default_target(config.registry_path(args.registry))
    print(f"published rollup {pointer['fingerprint']} ({pointer['rows']:,} rows, computed in "
          f"{pointer['compute_seconds']:.1f} s) to {target}")
    if pointer.get("removed"):
        print(f"removed {len(pointer['removed'])} old or left-over file(s): {', '.join(pointer['removed'])}")
    if pointer["problems"]:
        print(f"{pointer['problems']} problem(s): see `python -m citystat validate` or the Data health page",
              file=sys.stderr)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "refresh", help="compute the KPI rollups and publish them for the app replicas",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", help="metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--to", help="folder or s3://bucket/prefix to publish to "
                                     "(default: $CITYSTAT_ROLLUPS, else rollups/ next to the registry)")
    parser.add_argument("--keep", type=int, default=5, help="published rollups to keep (default 5)")
    parser.set_defaults(run=run)

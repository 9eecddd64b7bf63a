"""`python -m citystat refresh`: compute the KPI rollup once and publish it for the app replicas.

Run it from cron or a scheduler after the extracts land (see docs/DEPLOYMENT.md). The
rollup is computed by the usual `CityStat` code (incremental when it can be) and published
to a local folder or an `s3://` prefix: the rollup files under their fingerprint first, the
pointer `latest.json` last, so replicas switch to the new rollup whole, within their check
interval, without a restart.

Target, first found: `--to`, `$CITYSTAT_ROLLUPS`, a `rollups/` folder next to the registry.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from citystat import config
from citystat.files.s3 import ObjectStoreError, folder_at, publish
from citystat.kpis.replica import rollups_location


def default_target(registry_path: Path) -> str:
    return rollups_location() or str(registry_path.parent / "rollups")


def refresh(registry_path: str | Path | None = None, target: str | None = None, keep: int = 5) -> dict:
    """Compute the rollup for a registry and publish it; returns the pointer written."""
    from citystat.api import CityStat
    from citystat.kpis.rollup_files import save_rollup

    path = config.registry_path(registry_path)
    target = target or default_target(path)
    started = time.perf_counter()
    city = CityStat.open(path, replica=False)
    rollup = city.rollup
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="citystat-publish-") as folder:
        save_rollup(Path(folder), rollup)
        files = {f.name: f.read_bytes() for f in sorted(Path(folder).iterdir())
                 if rollup.fingerprint in f.name and not f.name.startswith((".", "partials-"))}
        # partials-* (per-day partial aggregates) serve incremental refreshes here, not replicas
    pointer = {
        "fingerprint": rollup.fingerprint,
        "registry_fingerprint": city.registry.fingerprint(),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "city": city.registry.city.name,
        "rows": rollup.frame.height,
        "compute_seconds": round(seconds, 3),
        "problems": len(rollup.problems),
    }
    return publish(folder_at(target), files, pointer, keep=keep)


def run(args: argparse.Namespace) -> int:
    try:
        pointer = refresh(args.registry, args.to, keep=args.keep)
    except ObjectStoreError as exc:
        print(f"refresh: {exc}", file=sys.stderr)
        return 2
    target = args.to or default_target(config.registry_path(args.registry))
    print(f"published rollup {pointer['fingerprint']} ({pointer['rows']:,} rows, computed in "
          f"{pointer['compute_seconds']:.1f} s) to {target}")
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

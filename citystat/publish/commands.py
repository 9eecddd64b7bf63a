"""`catalog`: write the open-data catalog (data.json, dictionaries, downloads) to a folder.
`publish-site`: write the static public performance site (citystat.publish.site) with that catalog.

Run it after each refresh (cron) and serve the folder at the city's website root, so the
links in data.json (``{city.website}/data.json``, ``{city.website}/opendata/<id>.csv`` ...)
resolve.
"""

from __future__ import annotations

import argparse
import sys

from citystat import config


def _formats(text: str) -> tuple[str, ...] | None:
    """The --formats list, or None after saying which are unknown."""
    from citystat.publish.catalog import FORMATS

    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        print(f"error: --formats: unknown format(s) {unknown}; choose from {', '.join(FORMATS)}", file=sys.stderr)
        return None
    return formats


def _publish(args: argparse.Namespace, write) -> int:
    """Open the city, run `write(stat, formats)` and report its files; errors name what failed."""
    from citystat.api import CityStat
    from citystat.files.s3 import ObjectStoreError
    from citystat.publish.catalog import CatalogError
    from citystat.registry.loader import RegistryError

    formats = _formats(args.formats)
    if formats is None:
        return 2
    try:
        stat = CityStat.open(config.registry_path(args.registry)).sync()
        message = write(stat, formats)
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except (CatalogError, ObjectStoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


def run_catalog(args: argparse.Namespace) -> int:
    from citystat.publish.catalog import write_catalog

    def write(stat, formats) -> str:
        written = write_catalog(stat, args.out, formats)
        datasets = sum(1 for p in written if p.name.endswith(".dictionary.json"))
        return f"wrote data.json with {datasets} dataset(s) and {len(written)} file(s) under {args.out}"

    return _publish(args, write)


def run_publish_site(args: argparse.Namespace) -> int:
    from citystat.publish.site import publish_site

    def write(stat, formats) -> str:
        written = publish_site(stat, args.to, formats=formats)
        return f"wrote the public site ({len(written)} files) to {args.to}"

    return _publish(args, write)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("catalog", help="write the open-data catalog: data.json, dictionaries, downloads")
    parser.add_argument("--out", required=True, help="folder to write into (served at the city website's root)")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--formats", default="csv,parquet,xlsx",
                        help="download formats, comma-separated (default: csv,parquet,xlsx)")
    parser.set_defaults(run=run_catalog)

    site = commands.add_parser("publish-site", help="write the static public performance site (HTML, CSS, SVG "
                                                    "charts, open data) to a folder or s3:// prefix")
    site.add_argument("--to", required=True, metavar="DIR|s3://bucket/prefix",
                      help="where to write the site; serve it with any static web server or object store")
    site.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    site.add_argument("--formats", default="csv,parquet",
                      help="download formats, comma-separated (default: csv,parquet)")
    site.set_defaults(run=run_publish_site)

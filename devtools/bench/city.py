"""Benchmark cities: a sample city of a chosen size, with its own copy of the registry.

The 311 requests are written as monthly partitions (`data/service_requests/YYYY-MM.parquet`)
and the registry copy reads them with a glob, so "one more week of data" is one more file:
`append_week` generates the following week alone (the generator draws each day from its own
seeded RNG, so the rows are those a longer run would give for that week) and drops it in as
an extra partition.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from devtools.sample.build import DEFAULT_END, DEFAULT_START, generate

REPO = Path(__file__).resolve().parents[2]
PARTITION_GLOB = "data/service_requests/*.parquet"
EXTRA_WEEK_NAME = "zz-appended-week.parquet"


def write_registry(city_dir: Path, registry: Path = REPO / "metrics.yaml") -> Path:
    """Copy metrics.yaml and queries/ next to the city, pointing 311 requests at the partitions."""
    text = registry.read_text(encoding="utf-8")
    text, count = re.subn(r"path: data/service_requests\.parquet", f"path: {PARTITION_GLOB}", text)
    if count != 1:
        raise ValueError(f"{registry}: expected one 'path: data/service_requests.parquet' line, found {count}")
    city_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(registry.parent / "queries", city_dir / "queries", dirs_exist_ok=True)
    target = city_dir / "metrics.yaml"
    target.write_text(text, encoding="utf-8")
    return target


def write_multiplied_registry(city_dir: Path, copies: int) -> Path:
    """`metrics-xN.yaml` next to the city's registry: every declared and SQL-file KPI N times.

    Copy k of a declared KPI adds a filter of its own on its time column (`dayofyear(t) % (k + 1)
    <> 0`), so each copy is a distinct aggregate that reads the same columns, as an analyst's
    variants of a KPI do; copies of a SQL-file KPI run its query again. Derived KPIs are not copied.
    """
    from ruamel.yaml import YAML

    yaml = YAML()
    base = city_dir / "metrics.yaml"
    registry = yaml.load(base.read_text(encoding="utf-8"))
    sources = {s["id"]: s for s in registry["sources"]}
    added = []
    for metric in registry["metrics"]:
        if "derived" in metric:
            continue
        for k in range(1, copies):
            copy = dict(metric)
            copy["id"] = f"{metric['id']}_copy{k}"
            copy["title"] = f"{metric['title']} (copy {k})"
            if "sql" not in metric:
                time = metric.get("time_column") or sources[metric["source"]]["time_column"]
                extra = f"dayofyear({time}) % {k + 1} <> 0"
                copy["filter"] = f"({metric['filter']}) AND {extra}" if metric.get("filter") else extra
            added.append(copy)
    registry["metrics"].extend(added)
    target = city_dir / f"metrics-x{copies}.yaml"
    with target.open("w", encoding="utf-8") as out:
        yaml.dump(registry, out)
    return target


def make_city(city_dir: Path, requests: int, *, start: date = DEFAULT_START, end: date = DEFAULT_END,
              seed: int | None = None, progress=None) -> Path:
    """Generate the city (unless already there) and its registry; return the registry path."""
    data = city_dir / "data"
    done = city_dir / ".complete"
    if not done.exists():
        if data.exists():
            shutil.rmtree(data)
        options = {"seed": seed} if seed is not None else {}
        generate(data, requests=requests, start=start, end=end, partitioned=True, progress=progress, **options)
        done.write_text(f"{requests} {start} {end}\n")
    return write_registry(city_dir)


def extra_week_file(city_dir: Path) -> Path:
    return city_dir / "data" / "service_requests" / EXTRA_WEEK_NAME


def append_week(city_dir: Path, requests: int, last_day: date = DEFAULT_END, *, seed: int | None = None) -> Path:
    """Write the 311 requests of the 7 days after `last_day` as an extra partition file."""
    first = last_day + timedelta(days=1)
    cache = city_dir / f"extra-week-{first}.parquet"
    if not cache.exists():
        with tempfile.TemporaryDirectory(dir=city_dir) as temp:
            options = {"seed": seed} if seed is not None else {}
            generate(temp, requests=requests, start=first, end=first + timedelta(days=6), partitioned=True,
                     extracts=["service_requests"], **options)
            written = sorted(Path(temp, "service_requests").glob("*.parquet"))
            if len(written) != 1:  # a week spanning two months comes out as two files: merge them
                import pyarrow.parquet as pq
                import pyarrow as pa
                pq.write_table(pa.concat_tables([pq.read_table(f) for f in written]), cache)
            else:
                shutil.move(str(written[0]), cache)
    target = extra_week_file(city_dir)
    shutil.copyfile(cache, target)
    return target


def remove_week(city_dir: Path) -> None:
    extra_week_file(city_dir).unlink(missing_ok=True)

"""Rollups on disk: a Parquet file of KPI aggregates plus one of source extents per fingerprint.

Writes go to a temporary name and are renamed into place, so a reader (another process or
app replica) never sees half a file. A small `latest-<registry fingerprint>.json` names the
newest rollup of each registry, so a new process can refresh incrementally from it when only
new extract files have arrived since; `partials-<fingerprint>-<n>.parquet` keep the daily
partial aggregates that refresh folds the new days into (read only when a refresh needs them).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl

from citystat.files.local import atomic_write, clean_temporaries
from citystat.registry.loader import Problem
from citystat.kpis.rollup import ROLLUP_SCHEMA, Rollup


def _paths(folder: Path, fingerprint: str) -> tuple[Path, Path, Path, Path]:
    return (folder / f"rollup-{fingerprint}.parquet", folder / f"extents-{fingerprint}.parquet",
            folder / f"problems-{fingerprint}.json", folder / f"meta-{fingerprint}.json")


def _latest_path(folder: Path, registry_fingerprint: str) -> Path:
    return folder / f"latest-{registry_fingerprint}.json"


def _partials_name(fingerprint: str, index: int) -> str:
    return f"partials-{fingerprint}-{index}.parquet"


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def rollup_files(rollup: Rollup, daily_files: dict[str, str] | None = None) -> dict[str, bytes]:
    """The rollup's own files by name, in the order to write them (the rollup frame last):
    problems, meta, extents, rollup. What `save_rollup` writes and `refresh` publishes."""
    rollup_path, extents_path, problems_path, meta_path = _paths(Path("."), rollup.fingerprint)
    problems = [p.__dict__ for p in rollup.problems if p.entry and p.entry.startswith("metric ")]
    meta = {"manifest": rollup.manifest, "registry_fingerprint": rollup.registry_fingerprint, "how": rollup.how,
            "daily": daily_files or {}}
    return {problems_path.name: json.dumps(problems).encode(), meta_path.name: json.dumps(meta).encode(),
            extents_path.name: _parquet_bytes(rollup.extents), rollup_path.name: _parquet_bytes(rollup.frame)}


def save_rollup(folder: Path, rollup: Rollup) -> None:
    """Write the rollup's files, then the `latest` pointer (readers never see a half rollup).

    The daily partials (a few thousand rows per scan) are written beside it so that the next
    process can fold an append in by scanning only the new days; the meta file names them.
    Temporary files a killed writer left in the folder (older than an hour) are removed first.
    """
    clean_temporaries(folder)
    daily_files = {}
    for index, key in enumerate(sorted(rollup.daily)):
        days = rollup.daily_partials(key)
        if days is None:
            continue
        name = _partials_name(rollup.fingerprint, index)
        atomic_write(folder / name, lambda t, days=days: days.write_parquet(t))
        daily_files[key] = name
    for name, data in rollup_files(rollup, daily_files).items():
        atomic_write(folder / name, data)
    if rollup.registry_fingerprint:
        atomic_write(_latest_path(folder, rollup.registry_fingerprint),
                     json.dumps({"fingerprint": rollup.fingerprint}))


def load_rollup(folder: Path, fingerprint: str) -> Rollup | None:
    rollup_path, extents_path, problems_path, meta_path = _paths(folder, fingerprint)
    try:
        frame = pl.read_parquet(rollup_path).cast(ROLLUP_SCHEMA)
        extents = pl.read_parquet(extents_path)
        problems = [Problem(**p) for p in json.loads(problems_path.read_text())]
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError, TypeError, pl.exceptions.PolarsError):
        return None
    daily = {key: folder / name for key, name in meta.get("daily", {}).items()
             if isinstance(name, str) and "/" not in name and not name.startswith(".")}
    return Rollup(frame=frame, extents=extents, problems=problems, fingerprint=fingerprint,
                  manifest=meta.get("manifest", {}), registry_fingerprint=meta.get("registry_fingerprint", ""),
                  how="cached", daily=daily)


def load_latest(folder: Path, registry_fingerprint: str) -> Rollup | None:
    """The newest saved rollup of this registry (any data fingerprint): the base for an incremental refresh."""
    try:
        fingerprint = json.loads(_latest_path(folder, registry_fingerprint).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return load_rollup(folder, fingerprint)

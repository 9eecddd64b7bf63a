"""The one DuckDB layer: every query CityStat runs goes through `Engine`.

- Each source becomes a view named by its id (Parquet file, glob or SQL-defined source).
- Parameters are always bound (`$name`), never pasted into SQL.
- Results come back as Polars frames.
- After set-up the connection is sandboxed: external access is off except for the folders
  that hold the extracts, and the configuration is locked, so no query (the analyst's
  included) can read other files, reach the network or switch the sandbox off.
- One connection per engine; each query takes its own cursor, because DuckDB connections
  are not safe to share between threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import duckdb
import polars as pl

from citystat import config
from citystat.files.local import expand, files_fingerprint
from citystat.files.s3 import ObjectStoreError, is_s3, list_objects, local_pattern, mirror, objects_fingerprint
from citystat.kpis.sql import fy_trunc_sql, period_sql, quote_identifier, quote_literal  # noqa: F401  (re-exported)
from citystat.registry.loader import Problem, Registry

READ_STATEMENTS = {duckdb.StatementType.SELECT}
# Analyst SQL (Explore page, `CityStat.sql`) is stopped after this many seconds; $CITYSTAT_QUERY_TIMEOUT
# overrides it. The engine's memory ceiling comes from $CITYSTAT_DUCKDB_MEMORY_LIMIT (e.g. "2GB").
ANALYST_TIMEOUT_SECONDS = 30.0


class QueryError(Exception):
    """A query failed; `context` says which metric/source/file it was for."""

    def __init__(self, context: str, message: str):
        self.context = context
        self.message = message
        super().__init__(f"{context}: {message}")


@dataclass(frozen=True)
class SourceFiles:
    source_id: str
    pattern: str
    files: tuple[str, ...]


class Engine:
    def __init__(self, registry: Registry, *, memory_limit: str | None = None, threads: int | None = None):
        self.registry = registry
        self.problems: list[Problem] = []
        self._lock = threading.Lock()
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET parquet_metadata_cache = true")
        memory_limit = memory_limit or os.environ.get("CITYSTAT_DUCKDB_MEMORY_LIMIT") or _default_memory_limit()
        if memory_limit:
            self.con.execute("SET memory_limit = $limit", {"limit": memory_limit})
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.source_files: dict[str, SourceFiles] = {}
        self.remote_sources: dict[str, str] = {}  # source id -> s3:// URL (read via a local copy)
        self.mirrored: dict[str, str] = {}  # source id -> fingerprint of the s3 listing its local copy holds
        self.available: set[str] = set()
        self._create_views()
        self._sandbox()

    # ---- set-up -------------------------------------------------------------------------
    def _create_views(self) -> None:
        registry = self.registry
        pending = dict(registry.sources)
        for source in list(pending.values()):
            if source.path is None:
                continue
            pending.pop(source.id)
            location = registry.resolve_source(source.path)
            if is_s3(location):
                location = self._mirror(source.id, location)
                if location is None:
                    continue
            files = expand(location)
            self.source_files[source.id] = SourceFiles(source.id, location, files)
            if not files:
                self._problem(source.id, f"no file matches {source.path!r} (resolved to {location})")
                continue
            try:
                self.con.execute(
                    f"CREATE VIEW {quote_identifier(source.id)} AS SELECT * FROM "
                    f"read_parquet({quote_literal(location)}, union_by_name = true)")
                self.con.execute(f"SELECT * FROM {quote_identifier(source.id)} LIMIT 0")
                self.available.add(source.id)
            except duckdb.Error as exc:
                self.con.execute(f"DROP VIEW IF EXISTS {quote_identifier(source.id)}")
                self._problem(source.id, f"cannot read {source.path!r}: {_first_line(exc)}")
        # SQL-defined sources may build on each other: retry until no progress.
        while pending:
            progressed = False
            for source in list(pending.values()):
                try:
                    text = registry.sql_text(source.sql or "")
                    self.con.execute(f"CREATE OR REPLACE VIEW {quote_identifier(source.id)} AS {text.rstrip().rstrip(';')}")
                    self.con.execute(f"SELECT * FROM {quote_identifier(source.id)} LIMIT 0")
                    self.available.add(source.id)
                    pending.pop(source.id)
                    progressed = True
                except (duckdb.Error, OSError):
                    continue
            if not progressed:
                for source in pending.values():
                    try:
                        text = registry.sql_text(source.sql or "")
                        self.con.execute(f"SELECT * FROM ({text.rstrip().rstrip(';')}) LIMIT 0")
                        message = "depends on a source that is unavailable"
                    except (duckdb.Error, OSError) as exc:
                        message = _first_line(exc)
                    self._problem(source.id, f"query {source.sql}: {message}")
                break

    def _mirror(self, source_id: str, url: str) -> str | None:
        """An s3:// source is copied into the local cache and read from there.

        DuckDB 2.0's wheel has no httpfs and `INSTALL httpfs` needs the network, so boto3
        copies the objects (only changed ones) and the sandbox below stays local-only.
        """
        self.remote_sources[source_id] = url
        try:
            objects, _ = mirror(url, config.cache_dir())
            self.mirrored[source_id] = objects_fingerprint(objects)
        except ObjectStoreError as exc:
            self.source_files[source_id] = SourceFiles(source_id, url, ())
            self._problem(source_id, str(exc))
            return None
        if not objects:
            self.source_files[source_id] = SourceFiles(source_id, url, ())
            self._problem(source_id, f"no object matches {url}")
            return None
        return local_pattern(config.cache_dir(), url)

    def _sandbox(self) -> None:
        folders = {str(Path(f).parent) + os.sep for sf in self.source_files.values() for f in sf.files}
        # A glob over folders (data/requests/*/*.parquet, as `citystat extract` writes) is listed at
        # query time: allow its fixed leading folder too.
        folders |= {_glob_root(sf.pattern) + os.sep for sf in self.source_files.values()
                    if sf.files and "://" not in sf.pattern and any(ch in sf.pattern for ch in "*?[")}
        folders = sorted(folders)
        if folders:
            self.con.execute("SET allowed_directories = $dirs", {"dirs": folders})
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def _problem(self, source_id: str, message: str) -> None:
        self.problems.append(Problem(str(self.registry.path), self.registry.line_of("source", source_id),
                                     f"source {source_id}", message))

    # ---- queries ------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, context: str = "query",
              timeout: float | None = None) -> pl.DataFrame:
        """Run one statement with bound parameters and return a Polars frame.

        With `timeout` (seconds) the statement is interrupted when it runs longer.
        """
        cursor = self.con.cursor()
        timer = threading.Timer(timeout, cursor.interrupt) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            relation = cursor.sql(sql, params=dict(params) if params else None)
            if relation is None:
                return pl.DataFrame()
            return relation.pl()
        except duckdb.InterruptException:
            raise QueryError(context, f"stopped after {timeout:g} s (the time limit for ad-hoc queries)") from None
        except duckdb.Error as exc:
            raise QueryError(context, _first_line(exc)) from None
        finally:
            if timer:
                timer.cancel()
            cursor.close()

    def read_only_query(self, sql: str, params: Mapping[str, Any] | None = None, *, context: str = "query",
                        row_limit: int | None = None, timeout: float | None = None) -> pl.DataFrame:
        """Run analyst SQL: exactly one SELECT statement, optionally capped at `row_limit` rows,
        stopped after `timeout` seconds (default $CITYSTAT_QUERY_TIMEOUT or ANALYST_TIMEOUT_SECONDS)."""
        try:
            statements = self.con.cursor().extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(context, _first_line(exc)) from None
        if len(statements) != 1:
            raise QueryError(context, f"expected one SQL statement, got {len(statements)}")
        if statements[0].type not in READ_STATEMENTS:
            raise QueryError(context, f"only SELECT queries may run here, not {statements[0].type.name}")
        text = sql.strip().rstrip(";")
        if row_limit is not None:
            text = f"SELECT * FROM ({text}) AS analyst_query LIMIT {int(row_limit) + 1}"
        if timeout is None:
            timeout = float(os.environ.get("CITYSTAT_QUERY_TIMEOUT") or ANALYST_TIMEOUT_SECONDS)
        return self.query(text, params, context=context, timeout=timeout)

    def interrupt(self) -> None:
        self.con.interrupt()

    def columns(self, source_id: str) -> pl.DataFrame:
        """column_name, column_type of a source's view."""
        return self.query(
            "SELECT column_name, data_type AS column_type FROM information_schema.columns "
            "WHERE table_name = $name ORDER BY ordinal_position", {"name": source_id})

    # ---- fingerprints -------------------------------------------------------------------
    def source_fingerprints(self) -> dict[str, str]:
        """source id -> a fingerprint that changes when the source's extract files change.

        Local files: their names, sizes and modification times (`files.local`). s3:// sources:
        the bucket's listing (ETag, size, LastModified of each object) now, plus the local
        copies this engine reads.
        """
        prints = {}
        for source_id in sorted(self.source_files):
            local = files_fingerprint(expand(self.source_files[source_id].pattern))
            if source_id in self.remote_sources:
                try:
                    listing = objects_fingerprint(list_objects(self.remote_sources[source_id]))
                except ObjectStoreError:
                    listing = "unreachable"
                prints[source_id] = f"{listing}/{local}"
            else:
                prints[source_id] = local
        return prints

    def stale_sources(self, prints: dict[str, str] | None = None) -> list[str]:
        """The s3:// sources whose bucket now holds something else than this engine copied."""
        prints = self.source_fingerprints() if prints is None else prints
        return sorted(s for s, url in self.remote_sources.items()
                      if s in self.mirrored and prints.get(s, "").split("/")[0] != self.mirrored[s])

    def source_fingerprint(self, source_id: str) -> str:
        """One source's fingerprint (a SQL-defined source: that of all the extracts)."""
        if source_id not in self.source_files:
            return self.data_fingerprint()
        return self.source_fingerprints()[source_id] if source_id in self.remote_sources else \
            files_fingerprint(expand(self.source_files[source_id].pattern))

    def data_fingerprint(self, prints: dict[str, str] | None = None) -> str:
        """Changes when any extract file is added, removed, replaced or touched."""
        prints = self.source_fingerprints() if prints is None else prints
        digest = hashlib.sha256()
        for source_id, value in sorted(prints.items()):
            digest.update(f"{source_id}|{value}".encode())
        return digest.hexdigest()[:16]

    def fingerprint(self, prints: dict[str, str] | None = None) -> str:
        return f"{self.registry.fingerprint()}-{self.data_fingerprint(prints)}"


def _default_memory_limit() -> str | None:
    """Half the machine's memory (DuckDB's own default is 80 %): one runaway ad-hoc query must
    leave room for the pages and the other sessions of the same process."""
    try:
        import psutil

        return f"{psutil.virtual_memory().total // 2 // 2**20}MB"
    except Exception:
        return None


def _glob_root(location: str) -> str:
    """The folder part of a glob before its first wildcard (data/requests/*/*.parquet -> data/requests)."""
    parts = Path(location).parts
    fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    return str(Path(*parts[:fixed]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

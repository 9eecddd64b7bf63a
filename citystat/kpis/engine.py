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
import re
import tempfile
import threading
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import duckdb
import polars as pl

from citystat import config
from citystat.files.local import expand, files_fingerprint, is_glob
from citystat.files.s3 import ObjectStoreError, is_s3, list_objects, local_pattern, mirror, objects_fingerprint
from citystat.kpis.sql import fy_trunc_sql, period_sql, quote_identifier, quote_literal  # noqa: F401  (re-exported)
from citystat.registry.loader import Problem, Registry

READ_STATEMENTS = {duckdb.StatementType.SELECT}
# Analyst SQL reads the sources by name; it may not read files itself, look into DuckDB's
# catalogue and settings (which show the extracts' absolute paths) or run SQL held in a string.
REFUSED_FUNCTION_PREFIXES = ("duckdb_", "pragma_", "read_", "parquet_", "sqlite_", "postgres_", "mysql_")
REFUSED_FUNCTIONS = {"current_setting", "getenv", "which_secret", "query", "query_table", "glob", "sniff_csv",
                     "parquet_scan", "delta_scan", "iceberg_scan", "iceberg_metadata", "iceberg_snapshots",
                     "json_execute_serialized_sql", "json_deserialize_sql", "sql_auto_complete", "load_extension",
                     "test_all_types", "summary", "checkpoint", "force_checkpoint", "enable_logging", "truncate_duckdb_logs"}
REFUSED_SCHEMAS = {"information_schema", "pg_catalog"}
# Words in DuckDB's errors when a Parquet file is damaged (it does not name the file).
PARQUET_DAMAGE = ("variable-length int", "thrift", "don't know what type", "corrupt", "decompress", "page header",
                  "magic bytes", "snappy", "zstd", "gzip", "lz4", "parquet")
# Analyst SQL (Explore page, `CityStat.sql`) is stopped after this many seconds; $CITYSTAT_QUERY_TIMEOUT
# overrides it. The engine's memory ceiling comes from $CITYSTAT_DUCKDB_MEMORY_LIMIT (e.g. "2GB").
ANALYST_TIMEOUT_SECONDS = 30.0
# ... in a worker process with this much address space ($CITYSTAT_QUERY_MEMORY, e.g. "2GB"),
# returning at most this many bytes ($CITYSTAT_QUERY_RESULT_BYTES); see citystat.kpis.worker.
ANALYST_MEMORY_BYTES = 1_000_000_000
ANALYST_RESULT_BYTES = 200_000_000


class QueryError(Exception):
    """A query failed; `context` says which metric/source/file it was for."""

    def __init__(self, context: str, message: str):
        self.context = context
        self.message = message
        super().__init__(f"{context}: {message}")


_PARSER = duckdb.connect(":memory:")  # parses analyst SQL for the guard below; holds nothing
_PARSER_LOCK = threading.Lock()


def read_only_sql(sql: str, context: str = "query", *, analyst: bool = True) -> str:
    """The ONE guard for SQL that CityStat did not write: exactly one SELECT (WITH ... SELECT,
    FROM-first and leading `;` are fine), returned without its semicolons. With `analyst` (the
    default) the SELECT may not read files, DuckDB's catalogue or settings, or run SQL from a
    string. Raises QueryError naming `context` and saying why not.
    """
    with _PARSER_LOCK:
        try:
            statements = _PARSER.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(context, _first_line(exc)) from None
    if not statements:
        raise QueryError(context, "there is no SQL statement to run")
    if len(statements) != 1:
        raise QueryError(context, f"expected one SQL statement, got {len(statements)}")
    statement = statements[0]
    if statement.type not in READ_STATEMENTS:
        raise QueryError(context, f"only SELECT queries may run here, not {statement.type.name}")
    text = _without_trailing_semicolons(statement.query)
    if analyst:
        refused = _refused_references(text)
        if refused:
            raise QueryError(context, f"{refused} is not available to analyst SQL: read the sources by their "
                                      "table names")
    return text


def _without_trailing_semicolons(text: str) -> str:
    """The statement without the `;` and comments after its last word, so it can be wrapped."""
    cut = len(text)
    for position, kind in reversed(duckdb.tokenize(text)):
        if kind == duckdb.token_type.comment or text[position] == ";":
            cut = position
            continue
        break
    return text[:cut].strip()


def _refused_references(text: str) -> str | None:
    """The first function or table the analyst guard refuses in a SELECT (None when clean)."""
    import json

    with _PARSER_LOCK:
        tree = json.loads(_PARSER.execute("SELECT json_serialize_sql($q)", {"q": text}).fetchall()[0][0])
    if tree.get("error"):
        return "this kind of SELECT"
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        name = node.get("function_name")
        if isinstance(name, str):
            lowered = name.lower()
            if lowered in REFUSED_FUNCTIONS or lowered.startswith(REFUSED_FUNCTION_PREFIXES) or node.get("catalog") \
                    or node.get("schema") not in ("", None, "main"):
                return f"the function {name}()"
        if node.get("type") == "BASE_TABLE":
            table = str(node.get("table_name", "")).lower()
            schema = str(node.get("schema_name", "")).lower()
            if schema in REFUSED_SCHEMAS or node.get("catalog_name") or table.startswith(("duckdb_", "pragma_", "sqlite_")):
                return f"the table {'.'.join(p for p in (schema, table) if p)}"
        stack.extend(node.values())
    return None


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
        # DuckDB may always read its spill folder; by default that is .tmp/ under the working
        # directory (the project's folder), so spill into a private folder of our own instead.
        self.con.execute("SET temp_directory = $dir",
                         {"dir": os.path.join(tempfile.gettempdir(), f"citystat-duckdb-{uuid.uuid4().hex}")})
        self.source_files: dict[str, SourceFiles] = {}
        self.remote_sources: dict[str, str] = {}  # source id -> s3:// URL (read via a local copy)
        self.mirrored: dict[str, str] = {}  # source id -> fingerprint of the s3 listing its local copy holds
        self.available: set[str] = set()
        self.views: list[tuple[str, str]] = []  # (source id, CREATE VIEW ...) in creation order
        self._workers = None  # analyst SQL runs in worker processes (citystat.kpis.worker)
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
                ddl = (f"CREATE VIEW {quote_identifier(source.id)} AS SELECT * FROM "
                       f"read_parquet({quote_literal(location)}, union_by_name = true)")
                self.con.execute(ddl)
                self.con.execute(f"SELECT * FROM {quote_identifier(source.id)} LIMIT 0")
                self.available.add(source.id)
                self.views.append((source.id, ddl))
            except duckdb.Error as exc:
                self.con.execute(f"DROP VIEW IF EXISTS {quote_identifier(source.id)}")
                message = _first_line(exc)
                damaged = any(sign in message.lower() for sign in PARQUET_DAMAGE)
                self._problem(source.id, f"cannot read {source.path!r}: "
                                         + (f"the file is corrupt ({message})" if damaged else message))
        # SQL-defined sources may build on each other: retry until no progress.
        while pending:
            progressed = False
            for source in list(pending.values()):
                try:
                    text = read_only_sql(registry.sql_text(source.sql or ""), f"source {source.id}")
                    ddl = f"CREATE OR REPLACE VIEW {quote_identifier(source.id)} AS {text}\n"
                    self.con.execute(ddl)
                    self.con.execute(f"SELECT * FROM {quote_identifier(source.id)} LIMIT 0")
                    self.available.add(source.id)
                    self.views.append((source.id, ddl))
                    pending.pop(source.id)
                    progressed = True
                except (duckdb.Error, OSError, QueryError):
                    continue
            if not progressed:
                for source in pending.values():
                    try:
                        text = read_only_sql(registry.sql_text(source.sql or ""), f"source {source.id}")
                        self.con.execute(f"SELECT * FROM ({text}\n) LIMIT 0")
                        message = "depends on a source that is unavailable"
                    except QueryError as exc:
                        message = exc.message
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

    def appendable(self, source_id: str) -> bool:
        """Can the source gain files (its path is a glob: partitions)? Only such a source is
        refreshed incrementally; a single file that changes means a full refresh."""
        files = self.source_files.get(source_id)
        return files is not None and is_glob(files.pattern)

    def sandbox_folders(self) -> list[str]:
        """The only folders queries may read: those holding the files of sources that loaded,
        inside the data root (or the local copies of s3:// sources). A source that failed, or
        lies elsewhere, opens nothing."""
        roots = [self.registry.data_root, Path(os.path.abspath(config.cache_dir()))]
        folders = set()
        for source_id, files in self.source_files.items():
            if source_id not in self.available:
                continue
            candidates = [Path(os.path.abspath(file)).parent for file in files.files]
            if "://" not in files.pattern and is_glob(files.pattern):
                # a glob over folders (data/requests/*/*.parquet, as `citystat extract` writes) is
                # listed at query time: allow its fixed leading folder too
                candidates.append(Path(os.path.abspath(_glob_root(files.pattern))))
            for folder in candidates:
                if any(folder.is_relative_to(root) for root in roots):
                    folders.add(str(folder) + os.sep)
        return sorted(folders)

    def _sandbox(self) -> None:
        folders = self.sandbox_folders()
        if folders:
            self.con.execute("SET allowed_directories = $dirs", {"dirs": folders})
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def _problem(self, source_id: str, message: str) -> None:
        self.problems.append(Problem(str(self.registry.path), self.registry.line_of("source", source_id),
                                     f"source {source_id}", message))

    # ---- queries ------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, context: str = "query",
              timeout: float | None = None, analyst: bool = False) -> pl.DataFrame:
        """Run one SELECT with bound parameters and return a Polars frame.

        Anything but a single SELECT is refused (`read_only_sql`); `analyst=True` (SQL files of
        metrics) adds the analyst rules. With `timeout` (seconds) the query is interrupted when
        it runs longer.
        """
        sql = read_only_sql(sql, context, analyst=analyst)  # one SELECT: nothing else ever runs
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
            raise QueryError(context, self.explain(_first_line(exc))) from None
        finally:
            if timer:
                timer.cancel()
            cursor.close()

    def read_only_query(self, sql: str, params: Mapping[str, Any] | None = None, *, context: str = "query",
                        row_limit: int | None = None, timeout: float | None = None) -> pl.DataFrame:
        """Run analyst SQL: exactly one SELECT statement, optionally capped at `row_limit` rows,
        stopped after `timeout` seconds (default $CITYSTAT_QUERY_TIMEOUT or ANALYST_TIMEOUT_SECONDS)."""
        text = read_only_sql(sql, context)
        if row_limit is not None:  # new lines: a trailing -- comment cannot swallow the wrapper
            text = f"SELECT * FROM (\n{text}\n) AS analyst_query LIMIT {int(row_limit) + 1}"
        if timeout is None:
            timeout = float(os.environ.get("CITYSTAT_QUERY_TIMEOUT") or ANALYST_TIMEOUT_SECONDS)
        from citystat.kpis.worker import WorkerError

        memory, max_bytes = analyst_limits()
        try:
            table = self.workers(memory).run(text, params, timeout=timeout, max_bytes=max_bytes)
        except WorkerError as exc:
            if exc.kind == "time":
                raise QueryError(context, f"stopped after {timeout:g} s (the time limit for ad-hoc queries)") from None
            if exc.kind == "memory":
                asked = re.search(r"allocate block of (\d+) bytes", exc.message)
                detail = f"; it asked for {int(asked.group(1)) / 1e9:,.1f} GB at once" if asked else ""
                raise QueryError(context, f"stopped: the query needed more than {memory / 1e9:g} GB of memory "
                                          f"(the memory limit for ad-hoc queries){detail}") from None
            if exc.kind == "bytes":
                raise QueryError(context, f"stopped: the result is larger than {max_bytes / 1e6:g} MB (the "
                                          "size limit for ad-hoc results)") from None
            raise QueryError(context, self.explain(exc.message)) from None
        return pl.from_arrow(table)

    def explain(self, message: str) -> str:
        """DuckDB's message, naming the extract when it is a damaged Parquet file (DuckDB only
        says e.g. "Variable-length int over 10 bytes")."""
        if not any(sign in message.lower() for sign in PARQUET_DAMAGE):
            return message
        damaged = self.damaged_files()
        if not damaged:
            return message
        return (f"the extract {', '.join(damaged)} is corrupt (a damaged Parquet file: {message}); "
                "replace it with a good copy")

    def damaged_files(self) -> list[str]:
        """Extract files of the loaded sources that cannot be decoded in full (slow: for errors)."""
        import pyarrow.parquet as pq

        damaged = []
        for source_id in sorted(self.available):
            for file in self.source_files.get(source_id, SourceFiles(source_id, "", ())).files:
                try:
                    pq.ParquetFile(file).read()
                except Exception:  # noqa: BLE001 - any failure to decode is damage
                    damaged.append(file)
        return damaged

    def warm_analyst_worker(self) -> None:
        """Start the worker for analyst SQL in the background (the Explore page calls this)."""
        self.workers(analyst_limits()[0]).warm()

    def workers(self, memory_bytes: int):
        """The warm worker processes that run this engine's analyst SQL (started on first use)."""
        from citystat.kpis.worker import AnalystWorkers, WorkerSetup

        with self._lock:
            if self._workers is None or self._workers.setup.memory_bytes != memory_bytes:
                if self._workers is not None:
                    self._workers.close()
                setup = WorkerSetup(tuple(self.views), tuple(self.sandbox_folders()), memory_bytes)
                self._workers = AnalystWorkers(setup)
                weakref.finalize(self, self._workers.close)
            return self._workers

    def close(self) -> None:
        """Stop this engine's worker processes (a replaced engine's are also stopped when it is freed)."""
        if self._workers is not None:
            self._workers.close()

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
        return {source_id: self._file_source_print(source_id) for source_id in sorted(self.source_files)}

    def _file_source_print(self, source_id: str) -> str:
        local = files_fingerprint(expand(self.source_files[source_id].pattern))
        if source_id not in self.remote_sources:
            return local
        try:
            listing = objects_fingerprint(list_objects(self.remote_sources[source_id]))
        except ObjectStoreError:
            listing = "unreachable"
        return f"{listing}/{local}"

    def stale_sources(self, prints: dict[str, str] | None = None) -> list[str]:
        """The s3:// sources whose bucket now holds something else than this engine copied."""
        prints = self.source_fingerprints() if prints is None else prints
        return sorted(s for s, url in self.remote_sources.items()
                      if s in self.mirrored and prints.get(s, "").split("/")[0] != self.mirrored[s])

    def source_fingerprint(self, source_id: str) -> str:
        """One source's fingerprint (a SQL-defined source: that of all the extracts)."""
        if source_id not in self.source_files:
            return self.data_fingerprint()
        return self._file_source_print(source_id)

    def data_fingerprint(self, prints: dict[str, str] | None = None) -> str:
        """Changes when any extract file is added, removed, replaced or touched."""
        prints = self.source_fingerprints() if prints is None else prints
        digest = hashlib.sha256()
        for source_id, value in sorted(prints.items()):
            digest.update(f"{source_id}|{value}".encode())
        return digest.hexdigest()[:16]

    def fingerprint(self, prints: dict[str, str] | None = None) -> str:
        return f"{self.registry.fingerprint()}-{self.data_fingerprint(prints)}"


def analyst_limits() -> tuple[int, int]:
    """(memory, result bytes) for analyst SQL: $CITYSTAT_QUERY_MEMORY, $CITYSTAT_QUERY_RESULT_BYTES."""
    from citystat.kpis.worker import parse_bytes

    return (parse_bytes(os.environ.get("CITYSTAT_QUERY_MEMORY"), ANALYST_MEMORY_BYTES),
            parse_bytes(os.environ.get("CITYSTAT_QUERY_RESULT_BYTES"), ANALYST_RESULT_BYTES))


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
    fixed = next(i for i, part in enumerate(parts) if is_glob(part))
    return str(Path(*parts[:fixed]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

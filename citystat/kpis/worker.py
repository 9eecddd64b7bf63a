"""Analyst SQL runs in a worker process, where its limits really hold.

DuckDB's own limits do not stop every query: an interrupt is not checked inside one huge list
or string function, and its memory limit does not count every allocation. So the SQL people
type (Explore cells, `CityStat.sql`, alert rules) runs in a separate process that

- has an address-space limit (`RLIMIT_AS`): an allocation past it fails inside DuckDB
  ("Out of Memory") instead of taking memory from the pages and other users;
- is killed by the parent when it has not answered `grace` seconds after the time limit;
- streams the result in batches and stops as soon as it holds more than `max_bytes`, so a
  few rows of huge strings cannot come back through the row limit;
- has its own DuckDB connection with the engine's views, sandboxed the same way (external
  access off except the extract folders, configuration locked), so nothing it does touches
  the engine the pages use. Only one SELECT reaches it (`engine.read_only_sql`).

A worker is started once and kept warm for the next query; one that was killed, or died, is
replaced on the next query. `AnalystWorkers.overhead()` measures start-up and per-query cost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

MEMORY_LIMIT_BYTES = 1_000_000_000

GRACE_SECONDS = 2.0               # after the time limit, before the worker is killed


class WorkerError(Exception):
    """The query was stopped or refused; `kind` is time, memory, bytes or error."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs to rebuild the engine's sandbox: views (name, SQL) in order."""

    views: tuple[tuple[str, str], ...]
    folders: tuple[str, ...]
    memory_bytes: int = MEMORY_LIMIT_BYTES
    threads: int = 2


def parse_bytes(text: str | None, default: int) -> int:
    """'2GB', '512MB', '1.5 GiB' or a number of bytes."""
    if not text:
        return default
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGIB")
    return int(float(number) * units[cleaned[len(number):]])


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(conn: "_Pipe") -> None:  # runs in the worker process
    import resource

    import duckdb
    import pyarrow as pa

    setup: WorkerSetup = conn.recv()
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(setup.threads)}")
    con.execute("SET memory_limit = $m", {"m": f"{max(setup.memory_bytes // 2 // 2**20, 16)}MB"})
    con.execute("SET temp_directory = $d",
                {"d": os.path.join(tempfile.gettempdir(), f"citystat-worker-{uuid.uuid4().hex}")})
    for _name, ddl in setup.views:
        con.execute(ddl)
    if setup.folders:
        con.execute("SET allowed_directories = $dirs", {"dirs": list(setup.folders)})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    con.sql("SELECT 1").fetchall()  # warm the thread pool before measuring the address space
    limit = _vm_size() + setup.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(("ready", None))
    while True:
        try:
            sql, params, timeout, max_bytes = conn.recv()
        except EOFError:
            return
        cursor = con.cursor()
        timer = threading.Timer(timeout, cursor.interrupt)
        timer.daemon = True
        timer.start()
        try:
            reader = cursor.sql(sql, params=params or None).to_arrow_reader(2048)
            batches, size = [], 0
            for batch in reader:
                size += batch.nbytes
                if size > max_bytes:
                    raise WorkerError("bytes", f"{size / 1e6:,.0f} MB")
                batches.append(batch)
            table = pa.Table.from_batches(batches, schema=reader.schema)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            conn.send(("ok", sink.getvalue().to_pybytes()))
        except WorkerError as exc:
            conn.send((exc.kind, exc.message))
        except duckdb.InterruptException:
            conn.send(("time", ""))
        except (duckdb.OutOfMemoryException, MemoryError) as exc:
            conn.send(("memory", str(exc).strip().splitlines()[0]))
        except duckdb.Error as exc:
            text = str(exc).strip()
            conn.send(("error", text.splitlines()[0] if text else type(exc).__name__))
        finally:
            timer.cancel()
            cursor.close()


class Worker:
    """One worker process (`python -m citystat.kpis.worker`) and the pipes to it.

    A plain subprocess rather than multiprocessing: nothing is forked from a threaded server,
    and the parent's main module (Streamlit, a notebook, a script) is never imported again.
    """

    def __init__(self, setup: WorkerSetup):
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        package_parent = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citystat.kpis.worker", str(to_child_read), str(from_child_write)],
            pass_fds=(to_child_read, from_child_write), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_read)
        os.close(from_child_write)
        self.conn = _Pipe(from_child_read, to_child_write)
        self.conn.send(setup)
        if not self.conn.poll(60):
            self.kill()
            raise WorkerError("error", "the query worker did not start")
        try:
            status, _ = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise WorkerError("error", "the query worker could not set up the sources") from None
        if status != "ready":
            self.kill()
            raise WorkerError("error", "the query worker could not set up the sources")

    def run(self, sql: str, params: Mapping[str, Any] | None, timeout: float, max_bytes: int) -> bytes:
        self.conn.send((sql, dict(params) if params else None, timeout, max_bytes))
        if not self.conn.poll(timeout + GRACE_SECONDS):
            self.kill()
            raise WorkerError("time", "")
        try:
            status, payload = self.conn.recv()
        except (EOFError, OSError):
            self.kill()  # it died: an allocation the limit refused outside DuckDB's own checks
            raise WorkerError("memory", "the query process ran out of memory") from None
        if status == "ok":
            return payload
        if status == "memory":
            self.kill()  # start clean after a failed allocation
        raise WorkerError(status, payload)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


class _Pipe:
    """Pickled messages over two pipe file descriptors (multiprocessing's framing)."""

    def __init__(self, read_fd: int, write_fd: int):
        from multiprocessing.connection import Connection

        self._in = Connection(read_fd, writable=False)
        self._out = Connection(write_fd, readable=False)

    def send(self, message: Any) -> None:
        self._out.send(message)

    def recv(self) -> Any:
        return self._in.recv()

    def poll(self, timeout: float) -> bool:
        return self._in.poll(timeout)

    def close(self) -> None:
        for end in (self._in, self._out):
            try:
                end.close()
            except OSError:
                pass


@dataclass
class AnalystWorkers:
    """Warm workers for one engine: a query takes an idle one (or starts one) and gives it back."""

    setup: WorkerSetup
    keep: int = 2
    _idle: list[Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warming: bool = False

    def run(self, sql: str, params: Mapping[str, Any] | None, *, timeout: float, max_bytes: int):
        """The result as a pyarrow Table, or WorkerError."""
        import pyarrow as pa

        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or not worker.alive:
            worker = Worker(self.setup)
        try:
            payload = worker.run(sql, params, timeout, max_bytes)
        except WorkerError:
            if worker.alive:
                self._give_back(worker)
            raise
        self._give_back(worker)
        return pa.ipc.open_stream(payload).read_all()

    def warm(self) -> None:
        """Start a worker in the background when none is idle (the first query then waits less)."""
        with self._lock:
            if self._idle or self._warming:
                return
            self._warming = True

        def start() -> None:
            try:
                self._give_back(Worker(self.setup))
            except WorkerError:
                pass
            finally:
                self._warming = False

        threading.Thread(target=start, daemon=True, name="citystat-warm-worker").start()

    def _give_back(self, worker: Worker) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def overhead(self, repeats: int = 20) -> dict[str, float]:
        """Seconds to start a worker and per trivial query on a warm one (for the report)."""
        started = time.perf_counter()
        worker = Worker(self.setup)
        start_up = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(repeats):
            worker.run("SELECT 1 AS x", None, 10, 2**20)
        per_query = (time.perf_counter() - started) / repeats
        worker.kill()
        return {"start_up_s": start_up, "per_query_s": per_query}


if __name__ == "__main__":  # the worker process: python -m citystat.kpis.worker <read fd> <write fd>
    _serve(_Pipe(int(sys.argv[1]), int(sys.argv[2])))

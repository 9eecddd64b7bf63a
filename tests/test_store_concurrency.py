"""Concurrent writers must never lose a write: threads and processes, SQLite and PostgreSQL.

Each test starts writers together (a barrier), lets them all write at once, then counts the
rows and audit rows against N x M worked out by hand.
"""

from __future__ import annotations

import multiprocessing
import threading
from datetime import date

import pytest

from citystat.store import LATEST_VERSION, ConflictError, open_store

from tests.support.pg_server import pg_server, pg_url  # noqa: F401  (pytest fixtures)

WRITERS = 4
WRITES_EACH = 20
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


# -- workers (module level so that spawned processes can import them) ---------------------

def write_commitments(url: str, writer: int, count: int, session_id: int,
                      barrier=None) -> None:
    with open_store(url) as store:
        (barrier or _process_barrier).wait(timeout=60)
        for n in range(count):
            store.create_commitment(session_id, f"writer {writer} commitment {n} — ✓",
                                    f"owner {writer}", date(2025, 6, 1), actor=f"w{writer}")


def append_to_note(url: str, writer: int, count: int, commitment_id: int) -> None:
    """Add `count` lines to one shared note, re-reading and retrying on every conflict."""
    with open_store(url) as store:
        _process_barrier.wait(timeout=60)
        for n in range(count):
            while True:
                current = store.get_commitment(commitment_id)
                try:
                    store.update_commitment(commitment_id, note=f"{current.note}\nw{writer}-{n}",
                                            expected_version=current.version, actor=f"w{writer}")
                    break
                except ConflictError:
                    continue


def raise_same_alerts(url: str, writer: int, keys: int) -> int:
    """Raise the same `keys` alerts as every other writer; return how many this one created."""
    with open_store(url) as store:
        _process_barrier.wait(timeout=60)
        return sum(store.raise_alert("below_target", f"metric/{k}", f"from writer {writer}",
                                     actor=f"w{writer}")[1] for k in range(keys))


def open_only(url: str, _writer: int) -> None:
    _process_barrier.wait(timeout=60)
    open_store(url).close()


_process_barrier = None


def _remember_barrier(barrier) -> None:
    global _process_barrier
    _process_barrier = barrier


@pytest.fixture(scope="module")
def process_pool():
    """WRITERS spawned processes, reused by every test (spawning costs ~1 s each).

    Each task waits at a shared barrier, so the WRITERS tasks of a test run on WRITERS
    different processes at the same moment (a waiting worker takes no other task).
    """
    barrier = SPAWN.Barrier(WRITERS)
    with SPAWN.Pool(WRITERS, initializer=_remember_barrier, initargs=(barrier,)) as pool:
        yield pool


def run_processes(pool, target, args_for) -> list:
    pending = [pool.apply_async(target, args_for(w)) for w in range(WRITERS)]
    return [p.get(timeout=120) for p in pending]


def run_threads(target, args_for, threads: int) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def guarded(*args):
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001  -- reported by the assert below
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=guarded, args=(*args_for(w), barrier))
               for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert errors == []


def assert_nothing_lost(store, writers: int, each: int) -> None:
    made = store.list_commitments()
    assert len(made) == writers * each
    assert {c.what for c in made} == {f"writer {w} commitment {n} — ✓"
                                      for w in range(writers) for n in range(each)}
    audit = store.audit_log(entity="commitment", limit=None)
    assert len(audit) == writers * each
    assert {e.entity_id for e in audit} == {str(c.id) for c in made}


# -- tests ---------------------------------------------------------------------------------

def test_threads_writing_at_once_lose_nothing(store_url):
    threads = 6
    with open_store(store_url) as store:
        session = store.create_session("pw", date(2025, 5, 1), actor="setup")
        run_threads(write_commitments,
                    lambda w: (store_url, w, WRITES_EACH, session.id), threads)
        assert_nothing_lost(store, threads, WRITES_EACH)


def test_processes_writing_at_once_lose_nothing(store_url, process_pool):
    with open_store(store_url) as store:
        session = store.create_session("pw", date(2025, 5, 1), actor="setup")
    run_processes(process_pool, write_commitments, lambda w: (store_url, w, WRITES_EACH, session.id))
    with open_store(store_url) as store:
        assert_nothing_lost(store, WRITERS, WRITES_EACH)


def test_concurrent_updates_of_one_row_lose_no_edit(store_url, process_pool):
    each = 10
    with open_store(store_url) as store:
        session = store.create_session("pw", date(2025, 5, 1), actor="setup")
        shared = store.create_commitment(session.id, "shared", "all", date(2025, 6, 1),
                                         actor="setup")
        store.update_commitment(shared.id, note="start", expected_version=1, actor="setup")
    run_processes(process_pool, append_to_note, lambda w: (store_url, w, each, shared.id))
    with open_store(store_url) as store:
        final = store.get_commitment(shared.id)
        lines = final.note.split("\n")
        assert lines[0] == "start"
        assert sorted(lines[1:]) == sorted(f"w{w}-{n}" for w in range(WRITERS)
                                           for n in range(each))
        assert final.version == 2 + WRITERS * each
        updates = [e for e in store.audit_log(entity="commitment", limit=None)
                   if e.action == "update"]
        assert len(updates) == 1 + WRITERS * each


def test_same_alert_raised_by_several_processes_exists_once(store_url, process_pool):
    keys = 10
    open_store(store_url).close()
    created = run_processes(process_pool, raise_same_alerts, lambda w: (store_url, w, keys))
    assert sum(created) == keys
    with open_store(store_url) as store:
        alerts = store.list_alerts()
        assert sorted(a.key for a in alerts) == sorted(f"metric/{k}" for k in range(keys))
        assert len(store.audit_log(entity="alert", limit=None)) == keys


def test_processes_opening_a_fresh_database_at_once_migrate_once(store_url, process_pool):
    run_processes(process_pool, open_only, lambda w: (store_url, w))
    with open_store(store_url) as store, store.engine.connect() as conn:
        applied = conn.exec_driver_sql(
            "SELECT version FROM schema_version ORDER BY version").scalars().all()
    assert applied == list(range(1, LATEST_VERSION + 1))

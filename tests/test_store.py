"""State store round-trips, audit trail, review logic, validation and migrations.

Every test runs against a real SQLite file AND a real PostgreSQL server (tests/pg_server.py).
Expected values are the literal inputs or hand-worked dates, never read back from the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from citystat.store import (
    LATEST_VERSION,
    ConflictError,
    InvalidInput,
    NotFound,
    SchemaTooNew,
    Store,
    StoreConfigError,
    default_url,
    make_engine,
    normalise_url,
    open_store,
    schema,
)

from tests.support.pg_server import pg_server, pg_url  # noqa: F401  (pytest fixtures)

TODAY = date.today()
NASTY = "Ünïcödé ☃ 道路 — Robert'); DROP TABLE commitments;-- \"quoted\" \\ %s ?"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        yield opened


def is_utc(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


# -- round trips -------------------------------------------------------------------------

def test_session_and_commitment_round_trip(store: Store):
    before = datetime.now(UTC)
    session = store.create_session("pw", date(2025, 3, 4), title=NASTY, actor="mayor's office")
    assert (session.department, session.session_date, session.title) == (
        "pw", date(2025, 3, 4), NASTY)
    assert session.topic is None and session.version == 1
    assert is_utc(session.created_at) and session.created_at >= before - timedelta(seconds=1)
    assert store.get_session(session.id) == session

    topic = store.create_session(None, "2025-03-05", topic="Vacant lots", actor="ann")
    assert topic.department is None and topic.topic == "Vacant lots"
    assert topic.session_date == date(2025, 3, 5)

    made = store.create_commitment(session.id, NASTY, "Streets Chief", date(2025, 4, 1),
                                   metric_id="pothole_on_time", actor="ann")
    assert made.department == "pw"  # taken from the session
    assert (made.what, made.owner, made.due_date, made.metric_id, made.status, made.note,
            made.closed_at, made.version, made.created_by) == (
        NASTY, "Streets Chief", date(2025, 4, 1), "pothole_on_time", "open", None, None, 1,
        "ann")
    assert store.get_commitment(made.id) == made

    done = store.update_commitment(made.id, status="done", note="crew of 4 — fixed ✓",
                                   expected_version=1, actor="bob")
    assert (done.status, done.note, done.version, done.updated_by) == (
        "done", "crew of 4 — fixed ✓", 2, "bob")
    assert done.what == NASTY and done.created_by == "ann"
    assert done.closed_at is not None and is_utc(done.closed_at)
    reopened = store.update_commitment(made.id, status="open", expected_version=2, actor="bob")
    assert reopened.closed_at is None and reopened.version == 3

    with pytest.raises(InvalidInput) as err:
        store.create_commitment(topic.id, "x", "y", date(2025, 4, 1), actor="ann")
    assert err.value.field == "department"
    cross = store.create_commitment(topic.id, "Map lots", "Planner", date(2025, 5, 1),
                                    department="planning", actor="ann")
    assert cross.department == "planning"

    assert [s.id for s in store.list_sessions()] == [topic.id, session.id]  # newest first
    assert [s.id for s in store.list_sessions("pw")] == [session.id]


def test_list_commitments_filters(store: Store):
    s = store.create_session("pw", date(2025, 1, 6), actor="a")
    p = store.create_session("police", date(2025, 1, 7), actor="a")
    late = store.create_commitment(s.id, "late one", "Ann", date(2025, 1, 20), actor="a")
    later = store.create_commitment(s.id, "on time", "Bob", date(2025, 3, 1),
                                    metric_id="m1", actor="a")
    closed = store.create_commitment(s.id, "closed", "Ann", date(2025, 1, 10), actor="a")
    store.update_commitment(closed.id, status="dropped", expected_version=1, actor="a")
    cop = store.create_commitment(p.id, "patrols", "Chief", date(2025, 1, 15), actor="a")

    ids = lambda items: [c.id for c in items]
    assert ids(store.list_commitments()) == [closed.id, cop.id, late.id, later.id]
    assert ids(store.list_commitments(status="open")) == [cop.id, late.id, later.id]
    assert ids(store.list_commitments(department="pw", status="open")) == [late.id, later.id]
    assert ids(store.list_commitments(owner="Ann")) == [closed.id, late.id]
    assert ids(store.list_commitments(metric_id="m1")) == [later.id]
    # overdue on 2025-02-01: open and due before it -> patrols (01-15) and late one (01-20)
    assert ids(store.list_commitments(overdue_on=date(2025, 2, 1))) == [cop.id, late.id]
    assert ids(store.list_commitments(overdue_on="2025-01-20")) == [cop.id]


def test_narrative_round_trip_and_versions(store: Store):
    first = store.save_narrative("pothole_on_time", "week", date(2025, 3, 3),
                                 what_happened=NASTY, why="rain", whats_next="", actor="ann")
    assert (first.what_happened, first.why, first.whats_next, first.version) == (
        NASTY, "rain", "", 1)
    assert store.get_narrative("pothole_on_time", "week", "2025-03-03") == first
    assert store.get_narrative("pothole_on_time", "month", date(2025, 3, 1)) is None

    # A second "new" story for the same period must not overwrite the first.
    with pytest.raises(ConflictError) as err:
        store.save_narrative("pothole_on_time", "week", date(2025, 3, 3), "other", "", "",
                             actor="bob")
    assert err.value.current.what_happened == NASTY

    second = store.save_narrative("pothole_on_time", "week", date(2025, 3, 3), "hail",
                                  "storm", "more crews", actor="bob", expected_version=1)
    assert (second.id, second.what_happened, second.version, second.created_by,
            second.updated_by) == (first.id, "hail", 2, "ann", "bob")
    store.save_narrative("pothole_on_time", "week", date(2025, 3, 10), "calm", "", "",
                         actor="ann")
    assert [n.period_start for n in store.list_narratives("pothole_on_time")] == [
        date(2025, 3, 10), date(2025, 3, 3)]


def test_annotations_round_trip_and_delete(store: Store):
    b = store.add_annotation("pothole_on_time", date(2025, 2, 1), "new pothole crew started",
                             actor="ann")
    a = store.add_annotation("pothole_on_time", "2025-01-15", NASTY, actor="ann")
    store.add_annotation("other_metric", date(2025, 1, 1), "elsewhere", actor="ann")
    listed = store.list_annotations("pothole_on_time")
    assert [(x.on_date, x.text) for x in listed] == [
        (date(2025, 1, 15), NASTY), (date(2025, 2, 1), "new pothole crew started")]
    assert [x.id for x in store.list_annotations("pothole_on_time", start="2025-01-20")] == [b.id]
    moved = store.update_annotation(a.id, on_date=date(2025, 1, 16), expected_version=1,
                                    actor="bob")
    assert moved.on_date == date(2025, 1, 16) and moved.text == NASTY and moved.version == 2

    store.delete_annotation(b.id, actor="bob")
    assert [x.id for x in store.list_annotations("pothole_on_time")] == [a.id]
    with pytest.raises(NotFound):
        store.delete_annotation(b.id, actor="bob")
    deleted = store.audit_log(entity="annotation", entity_id=b.id, limit=1)[0]
    assert (deleted.action, deleted.actor, deleted.after) == ("delete", "bob", None)
    assert deleted.before["text"] == "new pothole crew started"


def test_alerts_raise_once_acknowledge_notify(store: Store):
    raised_at = datetime(2025, 3, 4, 12, 30, tzinfo=UTC)
    payload = {"metric": "pothole_on_time", "value": 0.61, "districts": [1, 2], "note": NASTY}
    alert, created = store.raise_alert("below_target", "pothole_on_time/2025-03-03",
                                       "Potholes 61% (target 80%)", department="pw",
                                       payload=payload, raised_at=raised_at, actor="alerts")
    assert created is True
    assert (alert.rule_id, alert.key, alert.department, alert.payload, alert.raised_at,
            alert.status, alert.notified_at) == (
        "below_target", "pothole_on_time/2025-03-03", "pw", payload, raised_at, "open", None)

    again, created_again = store.raise_alert("below_target", "pothole_on_time/2025-03-03",
                                             "changed summary", actor="alerts")
    assert created_again is False and again == alert
    other, _ = store.raise_alert("below_target", "pothole_on_time/2025-03-10", "next week",
                                 department="pw", actor="alerts")
    police, _ = store.raise_alert("spc_signal", "crime/2025-03", "rule 1", department="police",
                                  actor="alerts")
    assert len(store.audit_log(entity="alert")) == 3  # the duplicate wrote nothing

    notified = store.mark_notified(alert.id, actor="mailer")
    assert is_utc(notified.notified_at) and notified.version == 2
    assert {a.id for a in store.list_alerts(notified=False)} == {other.id, police.id}

    acked = store.acknowledge(alert.id, actor="Streets Chief")
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "Streets Chief")
    assert store.acknowledge(alert.id, actor="someone else").acknowledged_by == "Streets Chief"
    assert [a.id for a in store.list_alerts(status="open", department="pw")] == [other.id]
    assert [a.id for a in store.list_alerts(status="acknowledged")] == [alert.id]
    assert [a.id for a in store.list_alerts(department="police")] == [police.id]
    with pytest.raises(NotFound):
        store.acknowledge(10_000, actor="x")


def test_notebooks_save_overwrite_list_load_delete(store: Store):
    cells = [{"kind": "sql", "text": "select 1 -- " + NASTY}, {"kind": "chart", "x": None}]
    book = store.save_notebook("Pothole deep dive", cells, actor="ann")
    assert (book.name, book.owner, book.cells, book.version) == (
        "Pothole deep dive", "ann", cells, 1)
    assert store.load_notebook("Pothole deep dive") == book
    assert store.load_notebook("missing") is None

    with pytest.raises(ConflictError) as err:
        store.save_notebook("Pothole deep dive", [], actor="bob")
    assert err.value.current.cells == cells
    updated = store.save_notebook("Pothole deep dive", cells[:1], actor="bob",
                                  expected_version=1)
    assert (updated.cells, updated.version, updated.owner) == (cells[:1], 2, "ann")
    with pytest.raises(ConflictError):
        store.save_notebook("Pothole deep dive", [], actor="cy", expected_version=1)
    forced = store.save_notebook("Pothole deep dive", [], actor="cy", overwrite=True)
    assert forced.cells == [] and forced.version == 3

    store.save_notebook("Another", [], actor="bob")
    assert [n.name for n in store.list_notebooks()] == ["Another", "Pothole deep dive"]
    assert [n.name for n in store.list_notebooks(owner="bob")] == ["Another"]
    store.delete_notebook("Another", actor="bob")
    assert store.load_notebook("Another") is None
    # Nothing lost: the overwritten cells are in the audit trail.
    forced_entry = store.audit_log(entity="notebook", entity_id=book.id, limit=1)[0]
    assert forced_entry.before["cells"] == cells[:1] and forced_entry.after["cells"] == []


# -- audit -------------------------------------------------------------------------------

def test_every_write_has_exactly_one_audit_row(store: Store):
    session = store.create_session("pw", date(2025, 3, 4), actor="ann")
    made = store.create_commitment(session.id, "fill potholes", "Bob", date(2025, 4, 1),
                                   actor="ann")
    store.update_commitment(made.id, note="started", expected_version=1, actor="bob")
    store.update_commitment(made.id, status="done", expected_version=2, actor="cy")

    trail = store.audit_log(entity="commitment", entity_id=made.id)
    assert [(e.action, e.actor) for e in trail] == [
        ("update", "cy"), ("update", "bob"), ("create", "ann")]  # newest first
    created, first, second = trail[2], trail[1], trail[0]
    assert created.before is None
    assert created.after["what"] == "fill potholes" and created.after["due_date"] == "2025-04-01"
    assert (first.before["note"], first.after["note"]) == (None, "started")
    assert (first.before["version"], first.after["version"]) == (1, 2)
    assert (second.before["status"], second.after["status"]) == ("open", "done")
    assert second.before["note"] == second.after["note"] == "started"
    assert second.before["closed_at"] is None and second.after["closed_at"] is not None
    assert all(is_utc(e.at) for e in trail)
    assert len(store.audit_log(limit=None)) == 4
    assert [e.entity for e in store.audit_log(actor="ann")] == ["commitment", "session"]


def test_failed_write_leaves_no_audit_row(store: Store):
    session = store.create_session("pw", date(2025, 3, 4), actor="ann")
    made = store.create_commitment(session.id, "x", "Bob", date(2025, 4, 1), actor="ann")
    store.update_commitment(made.id, note="first", expected_version=1, actor="bob")
    with pytest.raises(ConflictError):
        store.update_commitment(made.id, note="stale", expected_version=1, actor="cy")
    with pytest.raises(InvalidInput):
        store.create_commitment(99_999, "x", "Bob", date(2025, 4, 1), actor="ann")
    assert len(store.audit_log(limit=None)) == 3
    assert len(store.list_commitments()) == 1


# -- optimistic concurrency --------------------------------------------------------------

def test_two_updates_from_the_same_version_conflict_and_nothing_is_lost(store: Store):
    session = store.create_session("pw", date(2025, 3, 4), actor="ann")
    made = store.create_commitment(session.id, "hire crew", "Bob", date(2025, 4, 1),
                                   actor="ann")
    # Ann and Bob both opened the commitment at version 1.
    store.update_commitment(made.id, note="Ann: posted the job", expected_version=1,
                            actor="ann")
    with pytest.raises(ConflictError) as err:
        store.update_commitment(made.id, note="Bob: interviews next week",
                                expected_version=1, actor="bob")
    current = err.value.current
    assert (current.note, current.version) == ("Ann: posted the job", 2)
    assert err.value.expected_version == 1 and "version 2" in str(err.value)
    # Bob merges his text onto what he was shown and saves again.
    merged = store.update_commitment(made.id, note=current.note + "\nBob: interviews next week",
                                     expected_version=current.version, actor="bob")
    assert merged.note == "Ann: posted the job\nBob: interviews next week"
    assert merged.version == 3


# -- review at the next session ------------------------------------------------------------

def test_commitments_reappear_at_next_session_of_same_department(store: Store):
    d0, d1, d2 = TODAY - timedelta(days=60), TODAY - timedelta(days=30), TODAY
    first = store.create_session("pw", d0, actor="a")
    store.create_session("police", d0 + timedelta(days=1), actor="a")
    second = store.create_session("pw", d1, actor="a")
    topic = store.create_session(None, d0 + timedelta(days=5), topic="Snow", actor="a")

    overdue = store.create_commitment(first.id, "overdue", "A", d1, actor="a")
    due_later = store.create_commitment(first.id, "due later", "A", d2 + timedelta(days=10),
                                        actor="a")
    due_today = store.create_commitment(first.id, "due today", "A", d2, actor="a")
    from_topic = store.create_commitment(topic.id, "salt", "A", d0 + timedelta(days=20),
                                         department="pw", actor="a")
    closed_now = store.create_commitment(first.id, "closed now", "A", d1, actor="a")
    store.update_commitment(closed_now.id, status="done", expected_version=1, actor="a")
    closed_long_ago = store.create_commitment(first.id, "closed long ago", "A", d1, actor="a")
    store.update_commitment(closed_long_ago.id, status="dropped", expected_version=1,
                            actor="a")
    with store.engine.begin() as conn:  # it was closed before the previous session
        conn.execute(sa.update(schema.commitments)
                     .where(schema.commitments.c.id == closed_long_ago.id)
                     .values(closed_at=datetime.combine(d0, datetime.min.time(),
                                                        UTC)))
    police = store.create_commitment(first.id, "police job", "B", d0, department="police",
                                     actor="a")
    made_at_second = store.create_commitment(second.id, "made at second", "A", d2, actor="a")
    today_session = store.create_session("pw", d2, actor="a")
    store.create_commitment(today_session.id, "made at this session", "A", d2, actor="a")

    review = store.commitments_for_review("pw", d2)
    got = {(i.commitment.id, i.overdue, i.closed_since_previous) for i in review}
    assert got == {
        (overdue.id, True, False), (from_topic.id, True, False),
        (due_later.id, False, False), (due_today.id, False, False),
        (made_at_second.id, False, False), (closed_now.id, False, True)}
    assert [i.overdue for i in review][:2] == [True, True]      # overdue first
    assert review[-1].commitment.id == closed_now.id            # closed last
    assert police.id not in {i.commitment.id for i in review}
    assert [i.commitment.id for i in store.commitments_for_review("police", d2)] == [police.id]
    assert store.commitments_for_review("parks", d2) == []
    # At the second session (d1): nothing made at it; `overdue` is due that day, so not yet
    # late; the one closed on d0 counts as closed since the previous (d0) session; the one
    # closed today had not been closed by then.
    at_second = {(i.commitment.id, i.overdue, i.closed_since_previous)
                 for i in store.commitments_for_review("pw", d1)}
    assert at_second == {(overdue.id, False, False), (due_later.id, False, False),
                         (due_today.id, False, False), (from_topic.id, True, False),
                         (closed_long_ago.id, False, True)}
    assert store.previous_session("pw", d2).id == second.id
    assert store.previous_session("pw", d0) is None


# -- validation ----------------------------------------------------------------------------

def test_invalid_input_names_the_field(store: Store):
    session = store.create_session("pw", date(2025, 3, 4), actor="ann")
    made = store.create_commitment(session.id, "ok", "Bob", date(2025, 4, 1), actor="ann")
    far = TODAY.replace(year=TODAY.year + 11)
    cases = [
        ("what", lambda: store.create_commitment(session.id, "   ", "Bob", date(2025, 4, 1),
                                                 actor="a")),
        ("what", lambda: store.create_commitment(session.id, "x" * 4001, "Bob",
                                                 date(2025, 4, 1), actor="a")),
        ("what", lambda: store.create_commitment(session.id, "nul\x00", "Bob",
                                                 date(2025, 4, 1), actor="a")),
        ("owner", lambda: store.create_commitment(session.id, "x", "", date(2025, 4, 1),
                                                  actor="a")),
        ("due_date", lambda: store.create_commitment(session.id, "x", "Bob", date(1999, 12, 31),
                                                     actor="a")),
        ("due_date", lambda: store.create_commitment(session.id, "x", "Bob", far, actor="a")),
        ("due_date", lambda: store.create_commitment(session.id, "x", "Bob", "next week",
                                                     actor="a")),
        ("due_date", lambda: store.create_commitment(session.id, "x", "Bob",
                                                     datetime(2025, 4, 1, 9), actor="a")),
        ("session_id", lambda: store.create_commitment(424242, "x", "Bob", date(2025, 4, 1),
                                                       actor="a")),
        ("actor", lambda: store.create_commitment(session.id, "x", "Bob", date(2025, 4, 1),
                                                  actor="")),
        ("status", lambda: store.update_commitment(made.id, status="closed",
                                                   expected_version=1, actor="a")),
        ("expected_version", lambda: store.update_commitment(made.id, status="done",
                                                             expected_version=0, actor="a")),
        ("grain", lambda: store.save_narrative("m", "fortnight", date(2025, 1, 1), "x", "", "",
                                               actor="a")),
        ("payload", lambda: store.raise_alert("r", "k", "s", payload={"x": {1, 2}},
                                              actor="a")),
        ("cells", lambda: store.save_notebook("n", {"not": "a list"}, actor="a")),
        ("department", lambda: store.create_session(None, date(2025, 1, 1), actor="a")),
    ]
    for field, call in cases:
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.field == field, (field, str(err.value))
        assert str(err.value).startswith(field + ":")
    assert isinstance(InvalidInput("f", "m"), ValueError)
    with pytest.raises(NotFound):
        store.update_commitment(777, status="done", expected_version=1, actor="a")
    # Exactly 4,000 characters is allowed and round-trips.
    long = store.create_commitment(session.id, "é" * 4000, "Bob", date(2025, 4, 1), actor="a")
    assert store.get_commitment(long.id).what == "é" * 4000
    assert len(store.list_commitments()) == 2


# -- URLs and location -----------------------------------------------------------------------

def test_urls_choose_driver_and_refuse_unsafe_locations(tmp_path, monkeypatch):
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url(f"sqlite:///{tmp_path}/s.db").database == f"{tmp_path}/s.db"
    with pytest.raises(StoreConfigError, match="in-memory"):
        normalise_url("sqlite://")
    with pytest.raises(StoreConfigError, match="unsupported"):
        normalise_url("mysql://u@h/db")
    (tmp_path / "metrics.yaml").write_text("city: {}\n")
    with pytest.raises(StoreConfigError, match="data"):
        open_store(f"sqlite:///{tmp_path}/data/state.db")
    assert not (tmp_path / "data").exists()

    monkeypatch.delenv("CITYSTAT_STATE_URL", raising=False)
    monkeypatch.delenv("CITYSTAT_STATE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_url() == f"sqlite:///{tmp_path}/xdg/citystat/state.db"
    monkeypatch.setenv("CITYSTAT_STATE", str(tmp_path / "elsewhere.db"))
    assert default_url() == f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("CITYSTAT_STATE_URL", "postgresql://u@h/citystat")
    assert default_url() == "postgresql://u@h/citystat"
    monkeypatch.delenv("CITYSTAT_STATE_URL")
    with open_store() as opened:
        opened.create_session("pw", date(2025, 1, 1), actor="a")
    assert (tmp_path / "elsewhere.db").exists()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/s.db") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


# -- migrations ----------------------------------------------------------------------------

def versions(store_url: str) -> list[int]:
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(schema.schema_version.c.version)
                                     .order_by(schema.schema_version.c.version)).scalars())
    finally:
        engine.dispose()


def test_opening_twice_is_idempotent(store_url):
    with open_store(store_url) as first:
        session = first.create_session("pw", date(2025, 1, 1), actor="a")
    with open_store(store_url) as second:
        assert second.get_session(session.id).department == "pw"
    assert versions(store_url) == list(range(1, LATEST_VERSION + 1))


def test_store_created_at_version_1_migrates_forward(store_url):
    old = Store(make_engine(store_url), target_version=1)
    session = old.create_session("pw", date(2025, 1, 1), actor="a")
    old.create_commitment(session.id, "kept across the upgrade", "Bob", date(2025, 2, 1),
                          actor="a")
    with old.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert "commitments" in tables and "alerts" not in tables and "notebooks" not in tables
    old.close()
    assert versions(store_url) == [1]

    with open_store(store_url) as new:
        assert [c.what for c in new.list_commitments()] == ["kept across the upgrade"]
        _alert, created = new.raise_alert("r", "k", "works after migration", actor="a")
        assert created and new.save_notebook("n", [], actor="a").version == 1
    assert versions(store_url) == list(range(1, LATEST_VERSION + 1))


def test_database_from_a_newer_citystat_is_refused(store_url):
    open_store(store_url).close()
    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(schema.schema_version.insert().values(
            version=99, description="from the future", applied_at=datetime.now(UTC)))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="99"):
        open_store(store_url)


def test_migration_helpers_add_a_column_once(store_url):
    from citystat.store.migrations import add_column, create_tables

    old, new = sa.MetaData(), sa.MetaData()
    sa.Table("scratch", old, sa.Column("id", sa.Integer, primary_key=True))
    scratch = sa.Table("scratch", new, sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("label", sa.String(50), nullable=True),
                       sa.Column("count", sa.Integer, nullable=False, server_default="0"))
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            create_tables(old.tables["scratch"])(conn)
            conn.execute(sa.text("INSERT INTO scratch (id) VALUES (1)"))
            for _ in range(2):  # the second run must find the columns and do nothing
                add_column(scratch, "label")(conn)
                add_column(scratch, "count")(conn)
            rows = conn.execute(sa.text("SELECT id, label, count FROM scratch")).all()
        assert [tuple(r) for r in rows] == [(1, None, 0)]
    finally:
        engine.dispose()

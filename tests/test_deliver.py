"""`deliver`: two consecutive stat sessions of Testville driven through the job, against a real SMTP
server on loopback and a real state store: what each attendee received, and when; exactly once."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from email import policy

import pytest

from citystat.auth import Role, User
from citystat.cli import main
from citystat.session.agenda import make_commitment
from citystat.store import open_store
from tests.conftest import PROJECT_ROOT
from tests.support.cities import make_city
from tests.support.pg_server import pg_server, pg_url  # noqa: F401  (pytest fixtures)
from tests.support.smtp import free_port, running_inbox

# Tuesdays 09:00 in Chicago (UTC-6 in February and on 3 March): 15:00 UTC.
FIRST = date(2026, 2, 24)
SECOND = date(2026, 3, 3)
SESSIONS = """\
app_url: https://citystat.testville.example.gov
sessions:
  - id: ops_weekly
    department: ops
    cadence: weekly
    weekday: tuesday
    time: "09:00"
    starts: 2026-02-24
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees:
      - {name: Ops Chief, email: ops@testville.example.gov}
      - {name: Deputy Mayor, email: deputy@testville.example.gov}
"""
EVERYONE = ["ops@testville.example.gov", "deputy@testville.example.gov", "ana@testville.example.gov"]
LEAD = User(name="Olive Ops", email="olive@testville.example.gov", roles=frozenset({Role.LEAD}),
            departments=frozenset({"ops"}))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def city(tmp_path, monkeypatch):
    registry = make_city(tmp_path / "city")
    (registry.parent / "sessions.yaml").write_text(SESSIONS, encoding="utf-8")
    monkeypatch.setenv("CITYSTAT_SMTP_FROM", "citystat@testville.example.gov")
    return registry


def deliver(registry, now: datetime, *extra: str) -> int:
    return main(["deliver", "--registry", str(registry), "--now", now.isoformat(), *extra])


def received(inbox, start: int = 0) -> list[dict]:
    """What was delivered since message `start`: recipients, subject, text, attachments by type."""
    out = []
    for envelope in inbox.envelopes[start:]:
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        files = {part.get_content_type(): (part.get_filename(), part.get_content())
                 for part in message.iter_attachments()}
        out.append({"to": sorted(envelope.rcpt_tos), "subject": message["Subject"],
                    "text": message.get_body(preferencelist=("plain",)).get_content(), "files": files})
    return out


def test_two_sessions_packet_before_memo_after_next_packet_reviews_the_commitment(city, monkeypatch, capsys):
    store = open_store(os.environ["CITYSTAT_STATE_URL"])
    with running_inbox() as inbox:
        monkeypatch.setenv("CITYSTAT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CITYSTAT_SMTP_PORT", str(inbox.port))

        # 49 hours before the first session: nothing is due yet
        assert deliver(city, utc(2026, 2, 22, 14)) == 0
        assert inbox.envelopes == []

        # 47 hours before: the packet goes to every attendee and the analyst
        assert deliver(city, utc(2026, 2, 22, 16)) == 0
        [packet] = received(inbox)
        assert packet["to"] == sorted(EVERYONE)
        assert packet["subject"] == "Briefing packet: Operations stat session, Tue 24 Feb 2026 09:00"
        pdf_name, pdf = packet["files"]["application/pdf"]
        assert pdf_name == "citystat-packet-ops-2026-02-24.pdf" and pdf[:5] == b"%PDF-"
        html_name, html = packet["files"]["text/html"]
        assert html_name == "citystat-packet-ops-2026-02-24.html" and "Requests received" in html
        assert "Tuesday 24 February 2026 at 09:00 (America/Chicago)" in packet["text"]
        assert ("https://citystat.testville.example.gov/session?department=ops&date=2026-02-24"
                in packet["text"])
        assert "Commitments to review first" not in packet["text"]

        # run again (cron an hour later): nothing new
        assert deliver(city, utc(2026, 2, 22, 17)) == 0
        assert len(inbox.envelopes) == 1
        assert "already sent (or being sent): Briefing packet · Operations" in capsys.readouterr().out

        # during the session a commitment is made
        make_commitment(store, LEAD, session_department="ops", topic=None, session_date=FIRST,
                        what="Answer every D3 request within its SLA", owner="District 3 supervisor",
                        due_date=date(2026, 3, 2), metric_id="requests_count")
        # it ends at 10:00 Chicago (16:00 UTC); at 15:59 UTC it is still on: no memo yet
        assert deliver(city, utc(2026, 2, 24, 15, 59)) == 0
        assert len(inbox.envelopes) == 1

        # the next morning: the follow-up memo lists the commitment with owner and due date
        assert deliver(city, utc(2026, 2, 25, 14)) == 0
        [memo] = received(inbox, 1)
        assert memo["to"] == sorted(EVERYONE)
        assert memo["subject"] == "Follow-up memo: Operations stat session of Tue 24 Feb 2026"
        assert ("Answer every D3 request within its SLA — owner District 3 supervisor, due Mon 2 Mar 2026"
                in memo["text"])
        assert "The next session, on Tuesday 03 March 2026 at 09:00, starts by reviewing them." in memo["text"]
        memo_name, memo_pdf = memo["files"]["application/pdf"]
        assert memo_name == "citystat-followup-ops-2026-02-24.pdf" and memo_pdf[:5] == b"%PDF-"
        memo_html = memo["files"]["text/html"][1]
        assert "Data required at the next session" in memo_html and "Requests received" in memo_html
        assert deliver(city, utc(2026, 2, 25, 15)) == 0
        assert len(inbox.envelopes) == 2

        # 47 hours before the second session: its packet starts with that commitment, under review
        assert deliver(city, utc(2026, 3, 1, 16)) == 0
        [second] = received(inbox, 2)
        assert second["subject"] == "Briefing packet: Operations stat session, Tue 3 Mar 2026 09:00"
        agenda_lines = [line for line in second["text"].splitlines() if line.startswith("  1. ")]
        assert agenda_lines[0].startswith("  1. Follow-up from earlier sessions — 1 open commitment from")
        assert ("Answer every D3 request within its SLA (District 3 supervisor, due 2 Mar 2026)"
                in second["text"])
        html = second["files"]["text/html"][1]
        sections = html.split("<section")[1:]  # one per agenda item, in order
        assert "1. Follow-up from earlier sessions" in sections[0]
        assert "Answer every D3 request within its SLA" in sections[0] and "District 3 supervisor" in sections[0]
        assert len(inbox.envelopes) == 3  # the first session's memo was not sent again

    # the store records each document once, when it went out, with the audit trail
    deliveries = {(d.session_date, d.kind): d for d in store.list_deliveries()}
    assert set(deliveries) == {(FIRST, "packet"), (FIRST, "memo"), (SECOND, "packet")}
    assert deliveries[(FIRST, "packet")].sent_at == utc(2026, 2, 22, 16)
    assert deliveries[(FIRST, "memo")].sent_at == utc(2026, 2, 25, 14)
    assert all(d.status == "sent" and d.attempts == 1 and d.recipients == EVERYONE for d in deliveries.values())
    trail = store.audit_log(entity="delivery", limit=None)
    assert {(a.actor, a.action) for a in trail} == {("deliver", "create"), ("deliver", "update")}
    assert len(trail) == 6  # a claim and a "sent" per document


def test_a_failed_send_is_retried_by_the_next_run(city, monkeypatch, capsys):
    store = open_store(os.environ["CITYSTAT_STATE_URL"])
    monkeypatch.setenv("CITYSTAT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CITYSTAT_SMTP_PORT", str(free_port()))  # nobody listens there
    assert deliver(city, utc(2026, 2, 22, 16)) == 1
    assert "(will retry on the next run)" in capsys.readouterr().err
    [failed] = store.list_deliveries()
    assert failed.status == "failed" and failed.sent_at is None and "127.0.0.1" in failed.error
    with running_inbox() as inbox:
        monkeypatch.setenv("CITYSTAT_SMTP_PORT", str(inbox.port))
        assert deliver(city, utc(2026, 2, 22, 17)) == 0
        assert len(inbox.envelopes) == 1
    [sent] = store.list_deliveries()
    assert sent.status == "sent" and sent.attempts == 2 and sent.error is None


def test_dry_run_lists_what_is_due_and_sends_nothing(city, monkeypatch, capsys):
    with running_inbox() as inbox:
        monkeypatch.setenv("CITYSTAT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CITYSTAT_SMTP_PORT", str(inbox.port))
        assert deliver(city, utc(2026, 2, 22, 16), "--dry-run") == 0
        out = capsys.readouterr().out
        assert "(dry run: nothing claimed, built or sent): 1 document(s) due" in out
        assert ("would send: Briefing packet · Operations · Tue 24 Feb 2026 09:00 CST → "
                "ops@testville.example.gov, deputy@testville.example.gov, ana@testville.example.gov") in out
        assert inbox.envelopes == []
    assert open_store(os.environ["CITYSTAT_STATE_URL"]).list_deliveries() == []


def test_two_concurrent_runs_send_each_document_once(city, tmp_path):
    state = f"sqlite:///{tmp_path / 'shared-state.db'}"
    open_store(state).close()  # created and migrated before the race
    with running_inbox() as inbox:
        env = {**os.environ, "CITYSTAT_SMTP_HOST": "127.0.0.1", "CITYSTAT_SMTP_PORT": str(inbox.port),
               "CITYSTAT_STATE_URL": state, "CITYSTAT_CACHE_DIR": str(tmp_path / "cache")}
        command = [sys.executable, "-m", "citystat", "deliver", "--registry", str(city),
                   "--now", "2026-02-22T16:00:00+00:00"]
        runs = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert len(inbox.envelopes) == 1
        assert sorted(inbox.envelopes[0].rcpt_tos) == sorted(EVERYONE)
        said = "".join(out for out, _ in outputs)
        assert said.count("sent: Briefing packet") == 1 and said.count("already sent (or being sent)") == 1
    [delivery] = open_store(state).list_deliveries()
    assert delivery.status == "sent" and delivery.attempts == 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claims.db'}"
    return request.getfixturevalue("pg_url")


def test_claims_race_one_winner_and_a_failed_claim_is_claimable_again(store_url):
    from concurrent.futures import ThreadPoolExecutor

    open_store(store_url).close()
    stores = [open_store(store_url) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda s: s.claim_delivery("ops_weekly", FIRST, "packet", actor="deliver",
                                                          recipients=EVERYONE, department="ops"), stores))
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].status == "sending" and won[0].attempts == 1
    store = stores[0]
    assert store.claim_delivery("ops_weekly", FIRST, "packet", actor="deliver", recipients=EVERYONE) is None
    store.finish_delivery(won[0].id, actor="deliver", sent=False, error="relay down")
    again = store.claim_delivery("ops_weekly", FIRST, "packet", actor="deliver", recipients=EVERYONE)
    assert again is not None and again.attempts == 2 and again.error is None
    store.finish_delivery(again.id, actor="deliver", sent=True, at=utc(2026, 2, 22, 16), message_id="<m@x>")
    assert store.claim_delivery("ops_weekly", FIRST, "packet", actor="deliver", recipients=EVERYONE) is None
    # a claim left "sending" by a process that died is taken over after an hour
    stuck = store.claim_delivery("ops_weekly", FIRST, "memo", actor="deliver", recipients=EVERYONE,
                                 at=utc(2026, 2, 24, 17))
    assert store.claim_delivery("ops_weekly", FIRST, "memo", actor="deliver", recipients=EVERYONE,
                                at=utc(2026, 2, 24, 17, 30)) is None
    taken = store.claim_delivery("ops_weekly", FIRST, "memo", actor="deliver", recipients=EVERYONE,
                                 at=utc(2026, 2, 24, 18, 1))
    assert stuck is not None and taken is not None and taken.attempts == 2
    for s in stores:
        s.close()


def test_without_a_relay_nothing_is_claimed_or_built(city, monkeypatch, capsys):
    monkeypatch.delenv("CITYSTAT_SMTP_HOST", raising=False)
    assert deliver(city, utc(2026, 2, 22, 16)) == 1
    assert "CITYSTAT_SMTP_HOST is not set" in capsys.readouterr().err
    assert open_store(os.environ["CITYSTAT_STATE_URL"]).list_deliveries() == []

"""The stat session agenda on the sample city, and commitments across sessions (real SQLite store)."""

from __future__ import annotations

import os
from datetime import date

import pytest

from citystat.core.attribution import drivers

from citystat.auth import PermissionDenied, Role, User
from devtools.sample import SHIFTS
from citystat.session.agenda import (OFF_TARGET, OTHER, REVIEW, SIGNAL, FormError, add_annotation, as_of_for,
                              build_agenda, default_session_date, find_session, make_commitment,
                              save_narrative, section_and_reasons, update_commitment)
from citystat.store import ConflictError, open_store

LEAD_PW = User(name="Pat Lead", email="pat@riverton.example.gov", roles=frozenset({Role.LEAD}),
               departments=frozenset({"pw"}))
STAFF = User(name="Sam Staff", email="sam@riverton.example.gov", roles=frozenset({Role.STAFF}))
MONDAY = date(2026, 11, 16)  # the weekday after the sample's last complete week (9..15 Nov 2026)


@pytest.fixture
def store():
    return open_store(os.environ["CITYSTAT_STATE_URL"])


def test_default_session_date_is_the_weekday_after_the_latest_complete_week(sample_city):
    # The sample data ends Sun 2026-11-15 (docs/SAMPLE_CITY.md): the session is Mon 16 Nov.
    assert default_session_date(sample_city) == MONDAY


def test_kpis_are_read_on_the_sessions_eve(sample_city, store):
    assert as_of_for(sample_city, MONDAY) == date(2026, 11, 15)
    # A Thursday session: its eve (Wed 11 Nov) ends no week, so the latest complete week is 2..8 Nov,
    # and the latest complete month is still October.
    agenda = build_agenda(sample_city, store, department="pw", session_date=date(2026, 11, 12))
    periods = {i.metric_id: (i.grain, i.period_start) for i in agenda.kpi_items()}
    assert periods["graffiti_days_to_close"] == ("week", date(2026, 11, 2))
    assert periods["illegal_dumping_on_time"] == ("month", date(2026, 10, 1))


@pytest.mark.parametrize("department, metric_id, shift_key", [
    ("pw", "graffiti_days_to_close", "graffiti_crew_reassigned"),
    ("fire", "ems_response_p90", "ambulances_out_of_service"),
])
def test_a_known_recent_shift_is_a_signal_item_at_the_top(sample_city, store, department, metric_id, shift_key):
    shift = next(s for s in SHIFTS if s.key == shift_key)
    assert shift.department == department
    agenda = build_agenda(sample_city, store, department=department, session_date=MONDAY)
    first = agenda.items[0]  # no commitments yet, so no review item
    assert first.metric_id == metric_id
    assert first.section == SIGNAL
    # the signal in words: which way, and that it is worse for this KPI (no rule numbers)
    assert any("worse than" in r and "since" in r for r in first.reasons), first.reasons
    assert not any("rule" in r.lower() for r in first.reasons)
    # the shift made things worse (longer times), so it is also off target
    assert first.status == "off_track"


def test_agenda_sections_are_in_order_and_cover_every_kpi(sample_city, store):
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    rank = [REVIEW, SIGNAL, OFF_TARGET, OTHER]
    sections = [rank.index(i.section) for i in agenda.items]
    assert sections == sorted(sections)
    assert {i.metric_id for i in agenda.kpi_items()} == {m.id for m in sample_city.registry.metrics_of("pw")}
    # pothole_on_time is on track with no signal in the sample's last week: it comes last
    assert agenda.items[-1].metric_id == "pothole_on_time"
    assert agenda.items[-1].section == OTHER
    off = agenda.section(OFF_TARGET)
    assert off and all(i.status in ("off_track", "at_risk") and not i.signal for i in off)
    head = agenda.headline()
    assert head["kpis"] == 5
    assert head["on_track"] + head["at_risk"] + head["off_track"] + head["no_data"] + head["no_target"] == 5


def test_each_kpi_item_has_trend_comparisons_and_breakdown(sample_city, store):
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    graffiti = next(i for i in agenda.items if i.metric_id == "graffiti_days_to_close")
    assert graffiti.frame["period_start"].max() == date(2026, 11, 9)
    assert graffiti.frame.height == 104  # about two years of weeks on the chart
    assert graffiti.current["prior_value"] is not None and graffiti.current["last_year_value"] is not None
    b = graffiti.breakdown
    assert b is not None and b.dimension in sample_city.metric("graffiti_days_to_close").dimensions
    # a median does not decompose: the sentence says so, and names a value whose own median moved
    # the way the KPI moved (never one that moved against it)
    assert not b.attribution.decomposable and "do not add up" in b.sentence
    total = b.attribution.total_change
    named = drivers(b.attribution)[0]
    assert named.own_change * total > 0 and f"District {named.value}:" in b.sentence
    against = [c.value for c in b.attribution.contributions if (c.own_change or 0) * total < 0]
    assert not any(f"District {v}:" in b.sentence for v in against)
    # every dimension, vs the prior period and vs the same period last year
    assert {(e.dimension, e.comparison) for e in graffiti.explanations} == {
        ("district", "prior"), ("district", "last_year")}
    pothole = next(i for i in agenda.items if i.metric_id == "pothole_on_time")
    # the registry's process change (new crew, 2025-09-08) is inside the two-year window
    assert (date(2025, 9, 8), "New pothole crew started") in [(d, t) for d, t in pothole.annotations]


def test_section_and_reasons_on_hand_made_rows():
    assert section_and_reasons({"value": 3.0, "signal": True, "rules": "1", "status": "on_track"}, "lower",
                               "Above the upper process limit this week — worse than routine variation explains.") == \
        (SIGNAL, ("Above the upper process limit this week — worse than routine variation explains",))
    assert section_and_reasons({"value": 3.0, "signal": False, "rules": "", "status": "at_risk"}, "lower") == \
        (OFF_TARGET, ("at risk against the target",))
    assert section_and_reasons({"value": 3.0, "signal": False, "rules": "", "status": "on_track"}, "lower")[0] == OTHER
    assert section_and_reasons(None, "lower") == (OTHER, ("no data for the period",))


def test_topic_session_lists_tagged_metrics_across_departments(sample_city, store):
    agenda = build_agenda(sample_city, store, topic="cityscore", session_date=MONDAY)
    ids = [i.metric_id for i in agenda.kpi_items()]
    assert set(ids) == {m.id for m in sample_city.registry.metrics_tagged("cityscore")}
    assert {"graffiti_days_to_close", "ems_response_p90"} <= set(i.metric_id for i in agenda.section(SIGNAL))
    with pytest.raises(ValueError, match="tagged 'nope'"):
        build_agenda(sample_city, store, topic="nope", session_date=MONDAY)
    with pytest.raises(ValueError, match="unknown department 'zz'"):
        build_agenda(sample_city, store, department="zz", session_date=MONDAY)


def test_commitment_round_trip_and_review_at_the_next_sessions(sample_city, store):
    made = make_commitment(store, LEAD_PW, session_department="pw", topic=None, session_date=MONDAY,
                           what="Clear the graffiti backlog in D5", owner="Graffiti crew chief",
                           due_date=date(2026, 11, 30), metric_id="graffiti_days_to_close")
    session = find_session(store, department="pw", topic=None, session_date=MONDAY)
    assert session is not None and made.session_id == session.id and made.department == "pw"
    again = store.get_commitment(made.id)
    assert (again.what, again.owner, again.due_date, again.status) == \
        ("Clear the graffiti backlog in D5", "Graffiti crew chief", date(2026, 11, 30), "open")

    # this session does not review what it made itself
    today = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    assert today.items[0].section != REVIEW
    graffiti = next(i for i in today.items if i.metric_id == "graffiti_days_to_close")
    assert [c.id for c in graffiti.open_commitments] == [made.id]

    # next week: reviewed first, not overdue yet
    nxt = build_agenda(sample_city, store, department="pw", session_date=date(2026, 11, 23))
    assert nxt.items[0].section == REVIEW
    assert [(r.commitment.id, r.overdue) for r in nxt.items[0].review] == [(made.id, False)]
    # two weeks after the due date: overdue, counted on the cover
    late = build_agenda(sample_city, store, department="pw", session_date=date(2026, 12, 7))
    assert [(r.commitment.id, r.overdue) for r in late.items[0].review] == [(made.id, True)]
    assert late.headline()["overdue_commitments"] == 1 and late.headline()["open_commitments"] == 1

    # done (with a note): no longer open or overdue at later sessions. (Whether it is listed once
    # more as "closed since the last session" depends on the wall-clock closing time, which the
    # store's own tests cover; the sample city lives in late 2026.)
    done = update_commitment(store, LEAD_PW, store.get_commitment(made.id), status="done", note="Backlog cleared")
    assert done.status == "done" and done.note == "Backlog cleared" and done.version == 2
    later = build_agenda(sample_city, store, department="pw", session_date=date(2026, 12, 7))
    assert all(r.commitment.status == "done" and not r.overdue for r in later.section(REVIEW)[0].review) \
        if later.section(REVIEW) else True
    assert later.headline()["open_commitments"] == 0 and later.headline()["overdue_commitments"] == 0
    with pytest.raises(FormError):  # same status and no note: nothing to save
        update_commitment(store, LEAD_PW, done, status="done", note="  ")
    with pytest.raises(ConflictError):  # edited from a stale copy
        update_commitment(store, LEAD_PW, made, status="dropped", note="stale")
    # audit trail names the actor
    assert store.audit_log(entity="commitment", entity_id=made.id)[0].actor == LEAD_PW.actor


def test_commitment_rules(sample_city, store):
    with pytest.raises(PermissionDenied):
        make_commitment(store, STAFF, session_department="pw", topic=None, session_date=MONDAY,
                        what="x", owner="y", due_date=date(2026, 11, 30))
    with pytest.raises(PermissionDenied):  # a PW lead cannot commit Fire
        make_commitment(store, LEAD_PW, session_department="fire", topic=None, session_date=MONDAY,
                        what="x", owner="y", due_date=date(2026, 11, 30))
    with pytest.raises(FormError) as err:
        make_commitment(store, LEAD_PW, session_department="pw", topic=None, session_date=MONDAY,
                        what="  ", owner="", due_date=date(2026, 11, 1))
    assert set(err.value.errors) == {"what", "owner", "due_date"}
    with pytest.raises(FormError) as err:  # a topic session needs the owning department
        make_commitment(store, LEAD_PW, session_department=None, topic="cityscore", session_date=MONDAY,
                        what="x", owner="y", due_date=date(2026, 11, 30))
    assert set(err.value.errors) == {"department"}
    assert store.list_commitments() == [] and store.list_sessions() == []  # nothing half-written


def test_topic_session_commitment_is_reviewed_at_the_next_topic_session(sample_city, store):
    made = make_commitment(store, LEAD_PW, session_department=None, topic="cityscore", session_date=MONDAY,
                           what="Report graffiti by district weekly", owner="Analyst",
                           due_date=date(2026, 11, 20), department="pw")
    nxt = build_agenda(sample_city, store, topic="cityscore", session_date=date(2026, 11, 23))
    assert [(r.commitment.id, r.overdue) for r in nxt.items[0].review] == [(made.id, True)]
    # and at the department's own next session
    pw = build_agenda(sample_city, store, department="pw", session_date=date(2026, 11, 23))
    assert made.id in [r.commitment.id for r in pw.items[0].review]


def test_narrative_conflict_and_annotation_on_the_chart(sample_city, store):
    kw = dict(metric_id="graffiti_days_to_close", department="pw", grain="week", period_start=date(2026, 11, 9))
    first = save_narrative(store, LEAD_PW, what_happened="Crew reassigned", why="Storm", whats_next="Back",
                           expected_version=None, **kw)
    with pytest.raises(ConflictError) as err:  # someone else thought there was no story yet
        save_narrative(store, LEAD_PW, what_happened="Mine", why="", whats_next="", expected_version=None, **kw)
    assert err.value.current.what_happened == "Crew reassigned"
    with pytest.raises(PermissionDenied):
        save_narrative(store, STAFF, what_happened="x", why="", whats_next="", expected_version=first.version, **kw)
    add_annotation(store, LEAD_PW, metric_id="graffiti_days_to_close", department="pw",
                   on_date=date(2026, 9, 14), text="Crew reassigned to parks")
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    graffiti = next(i for i in agenda.items if i.metric_id == "graffiti_days_to_close")
    assert graffiti.narrative.what_happened == "Crew reassigned"
    assert (date(2026, 9, 14), "Crew reassigned to parks") in graffiti.annotations


# --------------------------------------------------------------------------- people's text
HOSTILE = [
    ("![t](http://evil.example/x.png)", "<p>![t](http://evil.example/x.png)</p>"),
    ("[open](data:text/html;base64,PHNjcmlwdD4=)", "<p>[open](data:text/html;base64,PHNjcmlwdD4=)</p>"),
    ("[report](https://other.example/r)", "<p>[report](https://other.example/r)</p>"),
    ("see https://other.example/r", "<p>see https://other.example/r</p>"),
    ("# Everything is fine", "<p># Everything is fine</p>"),
    ("Fix it\n\n🟢 On track", "<p>Fix it</p>\n<p>🟢 On track</p>"),
    ("Status\n======", "<p>Status\n======</p>"),
    ("> quoted", "<p>&gt; quoted</p>"),
    ("<script>alert(1)</script><img src=x onerror=alert(1)>",
     "<p>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</p>"),
    ("**crew** moved to *parks*\n- D4\n- D5",
     "<p><strong>crew</strong> moved to <em>parks</em></p>\n<ul>\n<li>D4</li>\n<li>D5</li>\n</ul>"),
]


@pytest.mark.parametrize("typed, shown", HOSTILE)
def test_people_s_text_is_inert(typed, shown):
    from citystat.display.safetext import user_markdown

    html = user_markdown(typed)
    assert html == f'<div class="user-text">{shown}\n</div>'
    for forbidden in ("<img", "<a ", "href", "<h1", "<h2", "<script"):
        assert forbidden not in html


def test_inline_text_is_one_escaped_line():
    from citystat.display.safetext import user_inline

    assert user_inline("# Done\n\n<b>x</b>  ![i](http://e/x.png)") == "# Done &lt;b&gt;x&lt;/b&gt; ![i](http://e/x.png)"
    assert user_inline("a" * 10, max_length=5) == "aaaa…"
    assert user_inline(None) == ""


def test_packet_narrative_uses_the_restricted_renderer(sample_city, store):
    from citystat.session.packet import narrative_html

    save_narrative(store, LEAD_PW, metric_id="graffiti_days_to_close", department="pw", grain="week",
                   period_start=date(2026, 11, 9), what_happened="# Fine\n![x](http://evil.example/p.png)",
                   why="[x](data:text/html,hi)", whats_next="", expected_version=None)
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    item = next(i for i in agenda.items if i.metric_id == "graffiti_days_to_close")
    html = narrative_html(item)
    assert "<p># Fine\n![x](http://evil.example/p.png)</p>" in html
    assert "<p>[x](data:text/html,hi)</p>" in html
    assert "<img" not in html and "href" not in html


# --------------------------------------------------------------------------- the sample city's past
def test_committed_sample_history_is_what_the_generator_makes():
    import json

    from citystat.session.seed import SAMPLE_STATE
    from devtools.sample.history import history

    assert json.loads(SAMPLE_STATE.read_text(encoding="utf-8")) == json.loads(json.dumps(history())), \
        "data/sample_state.json is stale: run python -m devtools.sample.history"


def test_seed_sample_fills_an_empty_store_with_a_lived_in_history(sample_city, store, capsys):
    from datetime import UTC, datetime

    from citystat.cli import main

    assert main(["seed-sample"]) == 0
    assert "17 commitments" in capsys.readouterr().out
    # due before the Monday session and still open (hand-checked against the history's table)
    overdue = {c.what for c in store.list_commitments(overdue_on=MONDAY)}
    assert overdue == {
        "Borrow one general crew two days a week for graffiti in District 5 until leaf season ends",  # due 6 Nov
        "Sweep the three dumping hot spots on Mill Road every week",                                  # due 13 Nov
        "Get the two ambulances out for repair back in service",                                      # due 4 Nov
        "Call every family with an elevated lead test not yet inspected",                             # due 15 Oct
    }
    statuses = sorted(c.status for c in store.list_commitments())
    assert statuses.count("done") == 5 and statuses.count("dropped") == 1 and statuses.count("open") == 11
    lights = next(c for c in store.list_commitments(status="done") if "14 streetlights" in c.what)
    assert lights.closed_at == datetime(2026, 10, 28, 16, 48, tzinfo=UTC)
    assert store.get_session(lights.session_id).session_date == date(2026, 10, 12)
    # the Monday session starts with the follow-up: overdue first
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    first = agenda.items[0]
    assert first.section == REVIEW
    assert first.reasons == ("4 open commitments from earlier sessions", "2 overdue")
    assert [r.overdue for r in first.review] == [True, True, False, False]
    graffiti = next(i for i in agenda.items if i.metric_id == "graffiti_days_to_close")
    assert graffiti.narrative is not None and "leaf collection" in graffiti.narrative.why
    assert ("2026-09-14", "Graffiti crew moved to leaf collection") in [(str(d), t) for d, t in graffiti.annotations]
    alerts = store.list_alerts()
    assert {a.status for a in alerts} == {"open", "acknowledged"} and all(a.notified_at for a in alerts)
    # a second load is refused: the store is no longer empty
    assert main(["seed-sample"]) == 1
    assert "only goes into an empty store" in capsys.readouterr().err


def test_seed_dates_count_from_the_data_s_last_day(store):
    from citystat.session.seed import load_seed, read_seed

    load_seed(store, read_seed(), date(2026, 11, 22))  # a week later than the sample's end
    sessions = {s.session_date for s in store.list_sessions("pw")}
    assert max(sessions) == date(2026, 11, 16) and date(2026, 10, 12 + 7) in sessions
    story = store.get_narrative("graffiti_days_to_close", "week", date(2026, 11, 16))
    assert story is not None


def test_app_loads_the_history_on_first_start_only_when_asked_or_by_default(monkeypatch):
    from tests.support.apptest import render

    app = render("pages/commitments.py")  # a configured store (the tests'): left empty
    assert any("No commitment yet" in i.value for i in app.info)
    monkeypatch.setenv("CITYSTAT_SAMPLE_HISTORY", "1")
    from citystat.ui import context

    context._seed_once.clear()
    app = render("pages/commitments.py")
    assert len(app.dataframe[0].value) == 11  # the open ones

"""The session and commitments pages driven through Streamlit's AppTest (real store, real data)."""

from __future__ import annotations

import json
from html import escape
from datetime import date

from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT


def session_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/session.py")
    at.run()
    assert not at.exception, at.exception
    return at


def chart_heights(at: AppTest) -> list[int]:
    return [json.loads(c.proto.spec).get("height") for c in at.get("vega_lite_chart")]


def test_agenda_first_one_item_open_with_a_large_chart_and_packet_buttons_at_the_top():
    at = session_page()
    assert at.title[0].value == "Public Works — stat session Mon 16 Nov 2026"
    # the packet and memo buttons come before everything else that can be clicked
    assert [b.key for b in at.button][:2] == ["build_packet", "build_followup_pdf"]
    agenda = at.dataframe[0].value
    assert list(agenda["Item"])[0] == "Graffiti removal time"
    assert list(agenda["Item"])[-1] == "Potholes repaired on time"
    # one item at a time: only the first is open, with a chart at least 360 px tall
    assert [s.value for s in at.subheader] == ["1. Graffiti removal time"]
    assert chart_heights(at) == [380]
    assert any("signal" in m.value for m in at.markdown)
    # the calendar says when Public Works meets (sessions.yaml)
    assert any("Meets every week on Monday at 09:30" in m.value and "next: Mon 16 Nov 2026 09:30" in m.value
               for m in at.markdown)


def test_previous_next_and_the_item_list_open_one_item_at_a_time():
    at = session_page()
    assert at.button(key="item_previous").disabled
    at.button(key="item_next").click().run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["2. Streetlights fixed on time"]
    at.selectbox(key="agenda_item").set_value(4).run()
    assert [s.value for s in at.subheader] == ["5. Potholes repaired on time"]
    assert at.button(key="item_next").disabled
    at.button(key="item_previous").click().run()
    assert [s.value for s in at.subheader][0].startswith("4. ")


def test_presenting_mode_one_item_per_screen_with_next_and_previous():
    at = session_page()
    at.toggle(key="presenting").set_value(True).run()
    assert not at.exception
    assert [h.value for h in at.header] == ["1. Graffiti removal time"]
    assert any("item 1 of 5" in m.value for m in at.markdown)
    assert chart_heights(at) == [460]
    assert at.button(key="previous").disabled
    at.button(key="next").click().run()
    assert [h.value for h in at.header] == ["2. Streetlights fixed on time"]
    assert any("item 2 of 5" in m.value for m in at.markdown)
    at.button(key="previous").click().run()
    assert [h.value for h in at.header] == ["1. Graffiti removal time"]


def test_commitment_form_keeps_text_on_error_then_records_it_for_the_next_session():
    at = session_page()
    key = "com_graffiti_days_to_close"
    at.text_input(key=f"{key}_what").input("Clear the D5 backlog")
    at.text_input(key=f"{key}_owner").input("")
    at.date_input(key=f"{key}_due").set_value(date(2026, 11, 1))
    at.button(key=f"FormSubmitter:{key}_form-Record commitment").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert "Name the person who owns it." in errors
    assert any("before the session" in e for e in errors)
    assert at.text_input(key=f"{key}_what").value == "Clear the D5 backlog"  # typed text kept

    at.text_input(key=f"{key}_owner").input("Graffiti crew chief")
    at.date_input(key=f"{key}_due").set_value(date(2026, 11, 30))
    at.button(key=f"FormSubmitter:{key}_form-Record commitment").click().run()
    assert not at.exception and not at.error
    made = [df.value for df in at.dataframe if "What" in df.value.columns and "Owner" in df.value.columns]
    assert any("Clear the D5 backlog" in list(df["What"]) for df in made)

    # next week's session reviews it first
    at.date_input(key="session_date").set_value(date(2026, 11, 23)).run()
    assert not at.exception
    assert at.subheader[0].value == "1. Follow-up from earlier sessions"

    # and the city-wide list shows it as open
    at.switch_page("pages/commitments.py")
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["What"]) == ["Clear the D5 backlog"] and list(table["Status"]) == ["open"]


def test_narrative_with_html_is_shown_as_text():
    at = session_page()
    key = "nar_graffiti_days_to_close_week_2026-11-09"
    at.text_area(key=f"{key}_what_happened").input("<b>Crew</b> moved **to parks**")
    at.button(key=f"FormSubmitter:{key}_form-Save the story").click().run()
    assert not at.exception
    shown = [h.proto.body for h in at.get("html")]
    assert any("&lt;b&gt;Crew&lt;/b&gt; moved <strong>to parks</strong>" in body for body in shown)


HOSTILE = ["![t](http://evil.example/x.png)", "[pay here](data:text/html;base64,PHNjcmlwdD4=)",
           "# All fixed", "🟢 On track"]


def test_commitment_and_story_text_are_shown_as_inert_text():
    at = session_page()
    key = "com_graffiti_days_to_close"
    typed = "Clear D5 " + " ".join(HOSTILE)
    at.text_input(key=f"{key}_what").input(typed)
    at.text_input(key=f"{key}_owner").input("# Chief ![x](http://evil.example/o.png)")
    at.date_input(key=f"{key}_due").set_value(date(2026, 11, 30))
    at.button(key=f"FormSubmitter:{key}_form-Record commitment").click().run()
    story = "nar_graffiti_days_to_close_week_2026-11-09"
    at.text_area(key=f"{story}_what_happened").input("\n\n".join(HOSTILE))
    at.button(key=f"FormSubmitter:{story}_form-Save the story").click().run()
    assert not at.exception and not at.error
    # next week the commitment is reviewed first; the text is a table cell, never Markdown
    at.date_input(key="session_date").set_value(date(2026, 11, 23)).run()
    assert at.subheader[0].value == "1. Follow-up from earlier sessions"
    review = next(h.proto.body for h in at.get("html") if "review-table" in h.proto.body)
    assert f"<td>{escape(typed)}</td>" in review and "<td># Chief ![x](http://evil.example/o.png)</td>" in review
    for element in list(at.markdown) + list(at.caption) + list(at.subheader) + list(at.title):
        assert "evil.example" not in element.value and "All fixed" not in element.value
    # the story (this week's) is restricted Markdown: no image, link or heading, the text kept
    at.date_input(key="session_date").set_value(date(2026, 11, 16)).run()
    bodies = [h.proto.body for h in at.get("html")]
    shown = next(b for b in bodies if "All fixed" in b)
    for tag in ("<img", "<a ", "<h1", "href"):
        assert tag not in shown
    assert "<p>![t](http://evil.example/x.png)</p>" in shown and "<p># All fixed</p>" in shown
    assert "<p>[pay here](data:text/html;base64,PHNjcmlwdD4=)</p>" in shown


# --------------------------------------------------------------------------- state store outage
OUTAGE = "is not answering; retrying in 5 s"
NEEDS_STORE = ["pages/session.py", "pages/commitments.py", "pages/alerts.py"]


def page_errors(app) -> str:
    return "\n".join(e.value for e in app.error)


def test_a_dead_store_gives_a_retrying_message_where_needed_and_the_rest_keeps_serving(monkeypatch):
    from tests.support.apptest import render, texts

    monkeypatch.setenv("CITYSTAT_STATE_URL", "postgresql://citystat@/citystat?host=/nonexistent/socket-dir")
    for page in NEEDS_STORE:
        app = render(page)
        assert OUTAGE in page_errors(app), page
        assert not app.dataframe, f"{page} showed data without its store"
    assert "The commitments database is not answering" in page_errors(render("pages/commitments.py"))
    assert "The alerts database is not answering" in page_errors(render("pages/alerts.py"))
    overview = render("pages/overview.py")
    assert overview.title[0].value == "Riverton CityStat" and len(overview.dataframe) >= 9
    assert "Needs attention" in [s.value for s in overview.subheader]
    assert "**Graffiti removal time**" in [link.proto.label for link in overview.get("page_link")]
    metric = render("pages/metric.py", {"metric": "graffiti_days_to_close"})
    assert metric.title[0].value == "Graffiti removal time" and metric.get("vega_lite_chart")
    assert "Commitments and stories are not shown: the commitments database is not answering." in texts(metric)
    assert render("pages/public.py").title


def test_a_postgresql_restart_is_ridden_out(monkeypatch):
    from tests.support.apptest import render
    from tests.support.pg_server import start_postgres_server

    server = start_postgres_server()
    options = (f"-k {server.socket_dir} -p {server.port} -c listen_addresses='' -c fsync=off")
    try:
        monkeypatch.setenv("CITYSTAT_STATE_URL", server.create_database("outage"))
        app = render("pages/commitments.py")
        assert "No commitment yet" in "\n".join(i.value for i in app.info)
        server._run(server.bin_dir / "pg_ctl", "-D", server.data_dir, "-m", "fast", "-w", "stop")
        app.run()
        assert not app.exception and OUTAGE in page_errors(app)
        server._run(server.bin_dir / "pg_ctl", "-D", server.data_dir, "-o", options,
                    "-l", server.base_dir / "server.log", "-w", "-t", "60", "start")
        app.run()
        assert not app.exception and not app.error
        assert "No commitment yet" in "\n".join(i.value for i in app.info)
    finally:
        server.stop()


def test_metric_department_and_overview_show_the_follow_through():
    import os

    from citystat.auth import Role, User
    from citystat.session.agenda import make_commitment, save_narrative
    from citystat.store import open_store
    from tests.support.apptest import render, texts

    lead = User(name="Pat Lead", email="pat@riverton.example.gov", roles=frozenset({Role.LEAD}),
                departments=frozenset({"pw"}))
    state = open_store(os.environ["CITYSTAT_STATE_URL"])
    make_commitment(state, lead, session_department="pw", topic=None, session_date=date(2026, 11, 2),
                    what="Move a crew back from parks", owner="Graffiti crew chief", due_date=date(2026, 11, 10),
                    metric_id="graffiti_days_to_close")
    make_commitment(state, lead, session_department="pw", topic=None, session_date=date(2026, 11, 9),
                    what="Survey D4 lights", owner="Lighting supervisor", due_date=date(2026, 12, 1),
                    metric_id="streetlight_on_time")
    save_narrative(state, lead, metric_id="graffiti_days_to_close", department="pw", grain="week",
                   period_start=date(2026, 11, 9), what_happened="The crew was **moved to parks**.",
                   why="Summer backlog", whats_next="", expected_version=None)

    metric = render("pages/metric.py", {"metric": "graffiti_days_to_close"})
    table = next(d.value for d in metric.dataframe if "Owner" in d.value.columns)
    assert list(table["Status"]) == ["OVERDUE"] and list(table["Owner"]) == ["Graffiti crew chief"]
    assert list(table["Due"].astype(str)) == ["2026-11-10"]
    assert "1 open, **1 overdue** (past their due date on 16 Nov 2026)" in texts(metric)
    assert any("<strong>moved to parks</strong>" in h.proto.body for h in metric.get("html"))

    department = render("pages/department.py", {"department": "pw"})
    table = next(d.value for d in department.dataframe if "Owner" in d.value.columns)
    assert list(table["What"]) == ["Move a crew back from parks", "Survey D4 lights"]  # overdue first
    assert list(table["Status"]) == ["OVERDUE", "Open"]

    overview = render("pages/overview.py")
    links = [link.proto.label.strip("*") for link in overview.get("page_link")]
    reasons = "\n".join(m.value for m in overview.markdown)
    assert "Graffiti removal time" in links
    assert ("Public Works · Week of 9 Nov 2026 — off track: 6.0 days against a target of 4.0 days; "
            "1 overdue commitment (due since 10 Nov 2026)") in reasons
    assert "Streetlights fixed on time" not in links  # at risk, no signal, nothing overdue

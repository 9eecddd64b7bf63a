"""The session and commitments pages driven through Streamlit's AppTest (real store, real data)."""

from __future__ import annotations

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


def test_session_page_shows_the_agenda_in_order():
    at = session_page()
    assert at.title[0].value == "Public Works — stat session Mon 16 Nov 2026"
    headings = [s.value for s in at.subheader]
    assert headings[0] == "1. Graffiti removal time"
    assert headings[-1] == "5. Potholes repaired on time"
    assert any("signal" in m.value for m in at.markdown)


def test_presenting_mode_one_item_per_screen_with_next_and_previous():
    at = session_page()
    at.toggle(key="presenting").set_value(True).run()
    assert not at.exception
    assert [h.value for h in at.header] == ["1. Graffiti removal time"]
    assert any("item 1 of 5" in m.value for m in at.markdown)
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

"""Accessibility and safety in a real browser (headless Chromium).

* Documents (briefing packet, follow-up memo) built from a city whose names are hostile markup
  are opened in Chromium: no injected script runs (``window.__pwned`` stays undefined) and no
  injected element exists.
"""

from __future__ import annotations

import pytest

from tests.support.hostile import HOSTILE, hostile, make_hostile_city

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hostile_documents(tmp_path_factory):
    from datetime import date

    from citystat import CityStat
    from citystat.auth import Role, User
    from citystat.session.agenda import build_agenda, find_session, make_commitment
    from citystat.session.packet import build_followup_html, build_packet_html
    from citystat.store import open_store

    folder = tmp_path_factory.mktemp("hostile_docs")
    stat = CityStat.open(make_hostile_city(folder), use_disk_cache=False)
    store = open_store(f"sqlite:///{folder / 'state.db'}")
    chief = User(name="Chief", email="c@x.gov", roles=frozenset({Role.ADMIN}), departments=frozenset())
    topic = build_agenda(stat, store, topic=HOSTILE)
    department = build_agenda(stat, store, department="ops")
    make_commitment(store, chief, session_department="ops", topic=None, session_date=department.session_date,
                    what=hostile("What"), owner=hostile("Owner"), due_date=date(2026, 4, 1))
    session = find_session(store, department="ops", topic=None, session_date=department.session_date)
    paths = []
    for name, html in (("topic-packet", build_packet_html(stat, store, topic)),
                       ("department-packet", build_packet_html(stat, store, department)),
                       ("followup", build_followup_html(stat, store, department, session))):
        path = folder / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        paths.append(path)
    return paths


def test_hostile_names_run_no_script_when_a_packet_is_opened(page, hostile_documents):
    for path in hostile_documents:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(200)  # an onerror handler would have fired by now
        assert page.evaluate("typeof window.__pwned") == "undefined", path.name
        assert page.locator("script, img, [onerror], [onload]").count() == 0, path.name
        # the hostile text is on the page as text, in the heading
        assert HOSTILE in page.locator("h1").inner_text(), path.name

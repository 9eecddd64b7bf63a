"""The public pages, rendered with Streamlit's AppTest for a resident who is not signed in:
plain-language KPIs, suppression of counts about people, stale markers, and no internal text
(narratives, commitments, annotations, owner names) anywhere in what is rendered."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from citystat import CityStat
from citystat.auth import PUBLIC_USER
from citystat.publish.public import kpi_sentence, public_kpis, suppress_series
from citystat.store import open_store
from tests.support.cities import make_city

APP = str(Path(__file__).resolve().parent.parent / "app.py")
MARKERS = {
    "narrative": "NARRATIVE-MARKER-7f3a",
    "why": "WHY-MARKER-19bc",
    "next": "NEXT-MARKER-c0de",
    "commitment": "COMMITMENT-MARKER-55e1",
    "commitment owner": "Owner Marker Kappa",
    "annotation": "ANNOTATION-MARKER-9d2e",
    "metric owner": "Secret Owner Title Omega",
    "department head": "Chief Marker-Head-Zeta",
}


def walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def rendered_text(at: AppTest) -> str:
    """Everything the page sent to the browser: every element's protobuf, chart specs included."""
    return "\n".join(str(getattr(node, "proto", "")) for node in walk(at._tree))


@pytest.fixture()
def city_registry(tmp_path, monkeypatch) -> Path:
    registry = make_city(tmp_path / "city")
    monkeypatch.setenv("CITYSTAT_REGISTRY", str(registry))
    return registry


def render(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["citystat_user"] = PUBLIC_USER
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_public_page_shows_no_internal_text(city_registry):
    store = open_store()
    session = store.create_session("ops", date(2026, 2, 27), title="Ops stat", actor="lead@testville")
    store.create_commitment(session.id, MARKERS["commitment"], MARKERS["commitment owner"], date(2026, 3, 15),
                            metric_id="requests_count", actor="lead@testville")
    store.save_narrative("requests_count", "week", date(2026, 2, 23), MARKERS["narrative"], MARKERS["why"],
                         MARKERS["next"], actor="lead@testville")
    store.add_annotation("requests_count", date(2026, 2, 2), MARKERS["annotation"], actor="lead@testville")

    for page in ("pages/public.py", "pages/open_data.py"):
        text = rendered_text(render(page))
        assert "Requests received" in text or "Service requests" in text    # the page did render
        for what, marker in MARKERS.items():
            assert marker not in text, f"{what} leaked onto {page}"


def test_public_page_speaks_plainly_and_marks_stale_and_suppressed_kpis(city_registry):
    at = render("pages/public.py")
    markdown = [m.value for m in at.markdown]
    # hand-worked: 20 requests a day x 7 = 140 in the week of 23 Feb 2026, target 150, within 10 %
    assert ("Requests received: 140 in the week of 23 Feb 2026, target 150 — close to the target but "
            "not meeting it.") in markdown
    # the old feed stopped on 20 Feb: its KPI carries the stale warning
    assert any("Old feed" not in w.value and "old feed" in w.value and "out of date" in w.value for w in at.warning)
    # lead cases: Feb has 4 elevated of 96 tests (4.2 %), Jan 10 of 58 (17.2 %): both numerators <= 10
    text = rendered_text(at)
    assert "Children with elevated lead: not shown (too few people to publish) in Feb 2026" in text
    assert "4.2%" not in text and "17.2%" not in text
    assert "0.0416" not in text and "0.1724" not in text      # nor in the chart's data


def test_residents_get_only_the_public_pages(city_registry):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["citystat_user"] = PUBLIC_USER
    at.run()
    assert not at.exception
    with pytest.raises(ValueError, match="Known pages") as caught:
        at.switch_page("pages/data_health.py")
    assert "public.py" in str(caught.value) and "overview.py" not in str(caught.value)


def test_kpi_sentence_and_suppression_by_hand(city_registry):
    assert kpi_sentence("Potholes repaired on time", "88.3%", "Week of 9 Nov 2026", "85.0%", "on_track") == \
        "Potholes repaired on time: 88.3% in the week of 9 Nov 2026, target 85.0% — on track."
    assert kpi_sentence("311 requests received", "1,875", "Oct 2026", "", "no_target") == \
        "311 requests received: 1,875 in Oct 2026 — watched, with no target."
    stat = CityStat.open(city_registry, use_disk_cache=False).sync()
    kpis = {k.metric_id: k for k in public_kpis(stat)}
    assert set(kpis) == {"requests_count", "elevated_share", "old_readings"}
    assert kpis["elevated_share"].value is None and kpis["elevated_share"].privacy_note
    assert kpis["elevated_share"].status == "no_data"       # on/off track would hint at the hidden value
    assert kpis["requests_count"].value == 140 and not kpis["requests_count"].privacy_note
    # a non-sensitive series is never touched
    frame = stat.kpi("requests_count")
    same, applied = suppress_series(frame, stat.metric("requests_count"), sensitive=False,
                                    registry=stat.registry, threshold=10)
    assert not applied and same.equals(frame)

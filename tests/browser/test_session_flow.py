"""The stat-session ritual in headless Chromium: a commitment made at one session opens the next.

The app runs on the sample city with its history loaded (CITYSTAT_SAMPLE_HISTORY=1), as a
newcomer sees it. Screenshots of the Stat session, Overview and Metric pages at 1400×900 and
1024×768 go to test-artifacts/screens/ for a person to look at.
"""

from __future__ import annotations

import pytest

from devtools.appserver import PROJECT_ROOT, exception_texts, start_app, wait_for_app

pytestmark = pytest.mark.browser
SCREENS = PROJECT_ROOT / "test-artifacts" / "screens"
PROMISE = "Open the Mill Road air sensor data to the public"


@pytest.fixture(scope="module")
def lived_in_app(tmp_path_factory):
    app = start_app(tmp_path_factory.mktemp("lived_in_app"), extra_env={"CITYSTAT_SAMPLE_HISTORY": "1"})
    yield app
    app.stop()


def goto(page, app, path: str) -> None:
    page.goto(f"{app.url}/{path}")
    wait_for_app(page)
    boxes = exception_texts(page)
    assert not boxes, f"Streamlit exception on {page.url}:\n" + "\n---\n".join(boxes)


def test_a_commitment_made_at_one_session_is_the_first_item_of_the_next(page, lived_in_app):
    # Environment meets on the last Friday of the month: 27 November after the data's last day (15 Nov)
    goto(page, lived_in_app, "session?department=env")
    main = page.get_by_test_id("stMain")
    assert page.get_by_role("heading", name="Environment — stat session Fri 27 Nov 2026").is_visible()
    assert main.get_by_text("Meets on the last Friday of each month at 10:00").is_visible()
    # the packet and memo buttons are at the top, above the agenda
    packet_button = main.get_by_role("button", name="Build packet")
    agenda_heading = main.get_by_role("heading", name="Agenda")
    assert packet_button.bounding_box()["y"] < agenda_heading.bounding_box()["y"]
    first_item = main.get_by_role("heading", level=3).filter(has_text="1. ").first
    assert "Follow-up" not in first_item.inner_text()  # nothing promised at earlier Environment sessions

    form = main.get_by_test_id("stExpander").filter(has_text="Make a commitment on this KPI")
    form.get_by_text("Make a commitment on this KPI").click()
    form.get_by_label("What will be done").fill(PROMISE)
    form.get_by_role("button", name="Record commitment").click()
    wait_for_app(page)
    assert not exception_texts(page)

    # the next session (Fri 25 Dec, as the e-mailed link opens it) starts with that commitment
    goto(page, lived_in_app, "session?department=env&date=2026-12-25")
    assert page.get_by_role("heading", name="Environment — stat session Fri 25 Dec 2026").is_visible()
    first_item = main.get_by_role("heading", level=3).filter(has_text="1. ").first
    assert first_item.inner_text().strip() == "1. Follow-up from earlier sessions"
    # due 11 Dec (two weeks after the session, the form's default): overdue by the 25th, and said so
    assert main.get_by_role("emphasis").filter(
        has_text="1 open commitment from earlier sessions; 1 overdue").is_visible()
    row = main.locator("table.review-table tr").filter(has_text=PROMISE)
    assert row.count() == 1 and "OVERDUE — still open" in row.inner_text() and "Fri 11 Dec 2026" in row.inner_text()


@pytest.mark.parametrize("width, height", [(1400, 900), (1024, 768)])
def test_screenshots_of_the_session_overview_and_metric_pages(page, lived_in_app, width, height):
    SCREENS.mkdir(parents=True, exist_ok=True)
    for name, path in (("session", "session?department=pw"), ("overview", ""),
                       ("metric", "metric?metric=graffiti_days_to_close")):
        page.set_viewport_size({"width": width, "height": height})
        goto(page, lived_in_app, path)
        page.wait_for_timeout(1500)  # charts finish drawing
        page.screenshot(path=str(SCREENS / f"{name}-{width}x{height}-first-screen.png"))
        # Streamlit scrolls inside its main block: a tall window shows the rest of the page
        page.set_viewport_size({"width": width, "height": 2600})
        wait_for_app(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SCREENS / f"{name}-{width}-whole.png"))
    # presenting mode: one item per screen, for the projector
    page.set_viewport_size({"width": width, "height": height})
    goto(page, lived_in_app, "session?department=pw")
    page.get_by_test_id("stMain").get_by_text("Presenting mode").click()
    wait_for_app(page)
    page.get_by_role("button", name="Next").click()
    wait_for_app(page)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENS / f"session-presenting-{width}x{height}.png"))
    assert page.get_by_role("heading", level=2).filter(has_text="2. ").count() == 1
    # the attention list leads the Overview: its first KPI link opens that KPI's page
    page.set_viewport_size({"width": width, "height": height})
    goto(page, lived_in_app, "")
    attention = page.get_by_test_id("stMain").get_by_test_id("stPageLink")
    first = attention.first.inner_text().strip()
    attention.first.click()
    wait_for_app(page)
    heading = page.get_by_role("heading", level=1).first.inner_text().strip()
    assert heading and first.endswith(heading)  # the link's text is the icon's name, then the KPI's title


def test_commitments_page_rides_out_a_postgresql_restart_by_itself(page, tmp_path_factory):
    """The store stops: a clear message; it comes back: the page recovers without a reload."""
    from tests.support.pg_server import start_postgres_server

    server = start_postgres_server()
    options = f"-k {server.socket_dir} -p {server.port} -c listen_addresses='' -c fsync=off"
    app = None
    try:
        url = server.create_database("browser_outage")
        app = start_app(tmp_path_factory.mktemp("outage_app"), extra_env={"CITYSTAT_STATE_URL": url})
        goto(page, app, "commitments")
        main = page.get_by_test_id("stMain")
        assert main.get_by_text("No commitment yet").is_visible()
        server._run(server.bin_dir / "pg_ctl", "-D", server.data_dir, "-m", "fast", "-w", "stop")
        goto(page, app, "commitments")
        assert main.get_by_text("The commitments database is not answering; retrying in 5 s").is_visible()
        server._run(server.bin_dir / "pg_ctl", "-D", server.data_dir, "-o", options,
                    "-l", server.base_dir / "server.log", "-w", "-t", "60", "start")
        main.get_by_text("No commitment yet").wait_for(timeout=30_000)  # no reload: the page retried
        assert not main.get_by_text("is not answering").is_visible()
    finally:
        page.goto("about:blank")  # leave the app before it stops (its socket would close under the page)
        if app is not None:
            app.stop()
        server.stop()

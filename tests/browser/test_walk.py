"""Walk every page of the running app in headless Chromium, as a person would.

Fails on a Streamlit exception box or any browser console error (see conftest). Pages are
taken from navigation.PAGES: every page whose file exists is visited, none is skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from devtools.appserver import PROJECT_ROOT, exception_texts, wait_for_app
from citystat.ui.navigation import PAGES

pytestmark = pytest.mark.browser

EXISTING = [(path, title) for _section, path, title, _icon, _role in PAGES if (PROJECT_ROOT / path).is_file()]
INJECTIONS = ["'; DROP TABLE commitments; --", "<script>alert(1)</script>", "../../etc/passwd",
              "Robert'); SELECT * FROM read_csv('/etc/passwd') --", "ünïcødé ✓ 漢字 " + "x" * 300]


def url_path(path: str) -> str:
    """Streamlit serves the default (first visible) page at the root, every other at its file stem."""
    return "" if path == EXISTING[0][0] else Path(path).stem


def goto(page, app, path: str = "", query: str = "") -> None:
    page.goto(f"{app.url}/{path}" + (f"?{query}" if query else ""))
    wait_for_app(page)


def assert_clean(page) -> None:
    boxes = exception_texts(page)
    assert not boxes, f"Streamlit exception on {page.url}:\n" + "\n---\n".join(boxes)


def choose(page, label: str, option_index: int = 1) -> str:
    """Pick an option of the selectbox/multiselect labelled `label`; returns the option's text."""
    widget = page.locator('[data-testid="stSelectbox"], [data-testid="stMultiSelect"]').filter(
        has=page.get_by_text(label, exact=True)).first
    widget.locator("input").first.click()
    option = page.get_by_role("option").nth(option_index)
    text = option.inner_text()
    option.click()
    page.keyboard.press("Escape")
    wait_for_app(page)
    return text


def test_every_page_renders(page, local_app):
    assert EXISTING, "no page files found"
    goto(page, local_app)
    assert_clean(page)
    assert page.get_by_text("Single-user local mode").is_visible()
    nav = page.get_by_test_id("stSidebarNav")
    for path, title in EXISTING:
        assert nav.get_by_text(title, exact=True).count() == 1, f"{title} ({path}) missing from the navigation"
    for path, title in EXISTING:
        goto(page, local_app, url_path(path))
        assert_clean(page)
        main = page.get_by_test_id("stMain")
        assert main.inner_text().strip(), f"{path} rendered nothing"
        # the page is really the one asked for, not a redirect to the default page
        assert nav.locator("a[aria-current='page'], a[data-testid='stSidebarNavLink'][aria-current]").count() <= 1


def test_overview_period_and_filters(page, local_app):
    goto(page, local_app, url_path("pages/overview.py"))
    assert_clean(page)
    first_title = page.get_by_role("heading", level=1).first.inner_text()
    assert "CityStat" in first_title
    chosen = choose(page, "As of", 2)
    assert_clean(page)
    assert "as_of" in parse_qs(urlparse(page.url).query), f"period {chosen!r} not kept in the address"
    choose(page, "Departments", 0)
    assert_clean(page)
    choose(page, "Tags", 0)
    assert_clean(page)
    assert page.get_by_test_id("stDataFrame").count() >= 1


def test_open_a_kpi_from_the_overview(page, local_app):
    goto(page, local_app, url_path("pages/overview.py"))
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    # the row-selection checkbox column sits at the grid's left edge; row 1 is below the header
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 18)
    page.wait_for_url("**/metric?metric=*", timeout=60_000)
    # the address changes before the Metric page's script has run: wait for what it draws
    # (on a loaded machine the Overview can still be on screen when its run state settles)
    expect(page.get_by_role("button", name="Download CSV", exact=True)).to_have_count(1, timeout=60_000)
    wait_for_app(page)
    assert_clean(page)
    assert page.get_by_role("button", name="Download CSV", exact=True).count() == 1


def test_metric_grain_and_csv_download(page, local_app):
    goto(page, local_app, "metric", "metric=pothole_on_time")
    assert_clean(page)
    assert page.get_by_role("heading", level=1).first.inner_text().strip()
    page.get_by_test_id("stButtonGroup").get_by_text("Month", exact=True).click()
    wait_for_app(page)
    assert_clean(page)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "pothole_on_time_month.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {"period_start", "value", "target", "status"} <= set(rows[0])
    assert all(r["period_start"][8:10] == "01" for r in rows), "monthly periods start on the 1st"


def test_department_page_switch(page, local_app):
    goto(page, local_app, "department")
    assert_clean(page)
    before = page.get_by_role("heading", level=1).first.inner_text()
    choose(page, "Department", 1)
    assert_clean(page)
    assert page.get_by_role("heading", level=1).first.inner_text() != before
    assert "department" in parse_qs(urlparse(page.url).query)


@pytest.mark.parametrize("param", ["metric", "as_of", "department"])
def test_hostile_query_parameters(page, local_app, param):
    """Injection strings, paths and huge values in the address: a warning or the default, never a crash."""
    target = {"metric": "metric", "as_of": url_path("pages/overview.py"), "department": "department"}[param]
    for value in INJECTIONS:
        from urllib.parse import quote

        goto(page, local_app, target, f"{param}={quote(value)}")
        assert_clean(page)
        assert "<script>" not in page.get_by_test_id("stMain").inner_html().replace("&lt;script&gt;", "")


def saved_commitments(app) -> list[tuple]:
    """Read the app's own state store directly (not through the page) to see what was saved."""
    import sqlite3

    path = app.env["CITYSTAT_STATE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return db.execute("SELECT what, owner, department FROM commitments").fetchall()


def test_create_a_commitment_at_a_stat_session(page, local_app):
    what = "Clear the graffiti backlog — Ünïcødé ✓ 漢字 '; DROP TABLE commitments; -- <b>bold?</b>"
    goto(page, local_app, "session", "department=pw")
    assert_clean(page)
    page.get_by_text("Make a commitment not tied to one KPI").click()
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Record commitment")).last
    form.get_by_label("What will be done").fill(what)
    form.get_by_label("Owner").fill("Streets Division Chief")
    form.get_by_role("button", name="Record commitment").click()
    wait_for_app(page)
    assert_clean(page)
    assert (what, "Streets Division Chief", "pw") in saved_commitments(local_app)
    # the commitments page lists it, and its CSV download holds the text exactly
    goto(page, local_app, "commitments")
    assert_clean(page)
    with page.expect_download() as download_info:
        page.get_by_test_id("stDownloadButton").filter(has_text="Download CSV").get_by_role("button").click()
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert what in {row.get("what") or row.get("What") for row in csv.DictReader(io.StringIO(text))}
    assert "<b>bold?</b>" not in page.get_by_test_id("stMain").inner_html()


def test_an_empty_commitment_is_refused_with_a_message(page, local_app):
    before = len(saved_commitments(local_app))
    goto(page, local_app, "session", "department=pw")
    page.get_by_text("Make a commitment not tied to one KPI").click()
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Record commitment")).last
    form.get_by_label("What will be done").fill("   ")
    form.get_by_role("button", name="Record commitment").click()
    wait_for_app(page)
    assert_clean(page)
    assert page.get_by_test_id("stAlertContentError").count() >= 1
    assert len(saved_commitments(local_app)) == before


def test_build_and_download_the_briefing_packet(page, local_app):
    goto(page, local_app, "session", "department=pw")
    page.get_by_role("button", name="Build packet").click()
    page.get_by_test_id("stDownloadButton").filter(has_text="Packet (PDF)").wait_for(timeout=120_000)
    wait_for_app(page)
    assert_clean(page)
    with page.expect_download() as html_info:
        page.get_by_test_id("stDownloadButton").filter(has_text="Packet (HTML)").get_by_role("button").click()
    html = Path(html_info.value.path()).read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "Public Works" in html
    with page.expect_download() as pdf_info:
        page.get_by_test_id("stDownloadButton").filter(has_text="Packet (PDF)").get_by_role("button").click()
    assert Path(pdf_info.value.path()).read_bytes()[:5] == b"%PDF-"
    page.get_by_role("button", name="Follow-up memo").click()
    page.get_by_test_id("stDownloadButton").filter(has_text="Memo (PDF)").wait_for(timeout=120_000)
    wait_for_app(page)
    with page.expect_download() as memo_info:
        page.get_by_test_id("stDownloadButton").filter(
            has_text="Memo (PDF)").get_by_role("button").click()
    memo = Path(memo_info.value.path()).read_bytes()
    assert memo[:5] == b"%PDF-" and b"%%EOF" in memo[-1024:]


def test_public_page(page, local_app):
    goto(page, local_app, "public")
    assert_clean(page)
    assert page.get_by_role("heading", level=1).first.inner_text().startswith("How Riverton is doing")

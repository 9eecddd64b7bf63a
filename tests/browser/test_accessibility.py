"""Accessibility and safety in a real browser (headless Chromium).

* axe-core (axe-playwright-python) runs the WCAG 2.1 A and AA rules on every page the sidebar
  offers a public visitor, a staff member (a department lead) and an analyst, and on the static
  public site; any "serious" or "critical" violation fails the test, except markup Streamlit
  itself draws (FRAMEWORK_MARKUP, each entry with its reason).
* Documents (briefing packet, follow-up memo) built from a city whose names are hostile markup
  are opened in Chromium: no injected script runs (``window.__pwned`` stays undefined) and no
  injected element exists.
"""

from __future__ import annotations

from pathlib import Path

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


# --------------------------------------------------------------------------- axe-core (WCAG 2.1 AA)
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")
# Markup Streamlit itself draws that axe flags and no page can change, each with its reason. A
# violation is let through only when EVERY node it names lies inside the given container.
FRAMEWORK_MARKUP = [
    ("list", '[data-testid="stSidebarNavItems"]',
     "Streamlit's sidebar navigation puts each section's <li> links in a <div> inside the <ul>; the "
     "links themselves are named and reachable by keyboard"),
    ("listitem", '[data-testid="stSidebarNavItems"]', "the same <li> elements, seen from the item side"),
]


def axe_violations(page) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations on the page, as readable lines."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError as exc:  # pragma: no cover - a missing pin is a set-up error, not a pass
        raise AssertionError("axe-playwright-python is not installed: pip install -r requirements-test.txt") from exc
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS},
                                       "resultTypes": ["violations"]})
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        nodes = violation["nodes"]
        allowed = [container for rule, container, _why in FRAMEWORK_MARKUP if rule == violation["id"]]
        if allowed and all(page.evaluate(
                "([target, container]) => { const el = document.querySelector(target);"
                " return !!(el && el.closest(container)); }", [node["target"][-1], allowed[0]])
                for node in nodes if isinstance(node["target"][-1], str)):
            continue
        for node in nodes[:5]:
            message = (node.get("any") or node.get("all") or node.get("none") or [{}])[0].get("message", "")
            found.append(f"{violation['id']} ({violation['impact']}): {node['html'][:160]} — {message[:200]}")
    return found


def sidebar_pages(page) -> list[tuple[str, str]]:
    """(title, address) of every page the sidebar offers this visitor."""
    nav = page.get_by_test_id("stSidebarNav")
    return [(link.inner_text().strip().split("\n")[-1].strip(), link.get_attribute("href"))
            for link in nav.locator("a").all()]


def check_every_page(page, app_url: str) -> dict[str, list[str]]:
    from devtools.appserver import exception_texts, wait_for_app

    page.goto(app_url)
    wait_for_app(page)
    pages = sidebar_pages(page)
    assert pages, "the sidebar offers no page"
    problems = {}
    for title, href in pages:
        page.goto(href if href.startswith("http") else f"{app_url}/{href.lstrip('/')}")
        wait_for_app(page)
        assert not exception_texts(page), (title, exception_texts(page))
        found = axe_violations(page)
        if found:
            problems[title] = found
    return problems


@pytest.mark.parametrize("role", ["public visitor", "staff (a department lead)", "analyst"])
def test_every_page_has_no_serious_or_critical_axe_violation(page, signin_app, oidc_provider, role):
    from tests.support.signin import ANALYST, LEAD, serve_provider_assets, sign_in_as

    if role != "public visitor":
        serve_provider_assets(page, oidc_provider)
        sign_in_as(page, signin_app, LEAD if role.startswith("staff") else ANALYST)
    problems = check_every_page(page, signin_app.url)
    assert not problems, "\n".join(f"{title}:\n  " + "\n  ".join(lines) for title, lines in problems.items())


@pytest.fixture(scope="module")
def testville_site(tmp_path_factory):
    from citystat import CityStat
    from citystat.publish.site import build_site
    from tests.support.cities import make_city

    folder = tmp_path_factory.mktemp("site_city")
    stat = CityStat.open(make_city(folder / "city"), use_disk_cache=False).sync()
    out = folder / "site"
    build_site(stat, out)
    return out


@pytest.fixture(scope="module")
def site_url(testville_site):
    """The site served by the standard library's static file server on loopback (axe reads the
    stylesheet over HTTP to judge contrast, which a file:// page does not allow)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(testville_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_static_site_has_no_serious_or_critical_axe_violation(page, site_url):
    for name in ("index.html", "opendata.html"):
        page.goto(f"{site_url}/{name}")
        page.wait_for_load_state("load")
        assert page.locator("h1").count() == 1
        found = axe_violations(page)
        assert not found, f"{name}:\n" + "\n".join(found)


# --------------------------------------------------------------------------- keyboard only
FOCUS_IS_VISIBLE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return false;
  // an outline, a focus ring (box-shadow) or the theme's primary colour on the field's border
  for (let node = el, depth = 0; node && depth < 6; node = node.parentElement, depth++) {
    const s = getComputedStyle(node);
    if ((s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || (s.boxShadow && s.boxShadow !== 'none')
        || [s.borderTopColor, s.borderBottomColor].includes('rgb(31, 78, 121)')) return true;
  }
  return false;
}"""


def tab_to(page, predicate: str, what: str, limit: int = 250) -> None:
    """Press Tab (only the keyboard) until the focused element satisfies the JavaScript
    ``predicate`` (called with document.activeElement); then check that focus is visible."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => ({predicate}))(document.activeElement)"):
            assert page.evaluate(FOCUS_IS_VISIBLE), f"focus on {what} is not visible"
            return
    raise AssertionError(f"{what} cannot be reached with the Tab key ({limit} presses)")


def labelled(label: str) -> str:
    """The field itself (not its help button): an input or text area named ``label``."""
    return f"el && ['INPUT', 'TEXTAREA'].includes(el.tagName) && el.getAttribute('aria-label') === {label!r}"


def test_main_tasks_work_with_the_keyboard_alone(page, local_app):
    """Change the period, open a KPI, add a commitment and download the packet with Tab, arrows,
    typing and Enter only; every element reached shows where the focus is."""
    from devtools.appserver import exception_texts, wait_for_app

    page.goto(local_app.url)
    wait_for_app(page)
    page.locator("body").focus()
    # 1. change the reporting period (the As of picker)
    tab_to(page, labelled("As of"), "the As of picker")
    picker = page.get_by_role("combobox", name="As of")
    before = picker.input_value()
    for key in ("ArrowDown", "ArrowDown", "Enter"):  # open the list, move to the next period, choose it
        page.keyboard.press(key)
        page.wait_for_timeout(400)
    wait_for_app(page)
    assert picker.input_value() != before and "latest" not in picker.input_value(), picker.input_value()
    assert "as_of=" in page.url, page.url
    # 2. open a KPI from the Needs attention list
    tab_to(page, "el && el.tagName === 'A' && (el.getAttribute('href') || '').includes('metric=')", "a KPI link")
    page.keyboard.press("Enter")
    wait_for_app(page)
    assert "/metric" in page.url and "metric=" in page.url, page.url
    assert not exception_texts(page)
    # 3. add a commitment on the Stat session page
    page.goto(f"{local_app.url}/session")
    wait_for_app(page)
    page.locator("body").focus()
    tab_to(page, "el && el.tagName === 'SUMMARY' && el.innerText.includes('Make a commitment on this KPI')",
           "the commitment expander")
    page.keyboard.press("Enter")
    tab_to(page, labelled("What will be done"), "the commitment's What field")
    page.keyboard.type("Keyboard-only commitment: fill the D3 backlog")
    tab_to(page, labelled("Owner"), "the Owner field")
    page.keyboard.press("Control+A")
    page.keyboard.type("Streets supervisor")
    tab_to(page, "el && el.tagName === 'BUTTON' && el.innerText.includes('Record commitment')", "Record commitment")
    page.keyboard.press("Enter")
    wait_for_app(page)
    # recording reruns the page (the session is created with its first commitment): wait for it
    page.get_by_text("Keyboard-only commitment: fill the D3 backlog").first.wait_for(timeout=60_000)
    # 4. build and download the briefing packet
    page.locator("body").focus()
    tab_to(page, "el && el.tagName === 'BUTTON' && el.innerText.includes('Build packet')", "Build packet")
    page.keyboard.press("Enter")
    wait_for_app(page, timeout=300_000)
    page.locator("body").focus()
    tab_to(page, "el && el.tagName === 'BUTTON' && el.innerText.includes('Packet (PDF)')", "Packet (PDF)")
    with page.expect_download(timeout=120_000) as caught:
        page.keyboard.press("Enter")
    download = caught.value
    assert download.suggested_filename.endswith(".pdf")
    assert Path(download.path()).read_bytes()[:5] == b"%PDF-"

"""The whole sign-in flow in a real browser against a local OpenID Connect provider.

oidc-provider-mock runs on a free loopback port in a thread; the app is started with a temp
secrets file whose [auth] section points at it and whose [citystat.roles] maps the users.
"""

from __future__ import annotations

import pytest

from devtools.appserver import PROJECT_ROOT, exception_texts, wait_for_app
from citystat.ui.navigation import PAGES
from tests.support.signin import ANALYST, LEAD, OUTSIDER, serve_provider_assets, sign_in_as

pytestmark = [pytest.mark.browser,
              pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")]  # authlib inside the mock

NOT_FOUND = "The page that you have requested does not seem to exist"


def page_titles(role_filter) -> list[str]:
    return [title for _s, path, title, _i, role in PAGES if role_filter(role) and (PROJECT_ROOT / path).is_file()]


def nav_titles(page) -> list[str]:
    nav = page.get_by_test_id("stSidebarNav")
    return [link.inner_text().strip().split("\n")[-1].strip() for link in nav.locator("a").all()]


def test_public_visitor_sees_only_public_pages(page, signin_app, browser_errors):
    page.goto(signin_app.url)
    wait_for_app(page)
    assert not exception_texts(page)
    titles = nav_titles(page)
    internal = page_titles(lambda role: role.value != "public")
    assert internal and not set(titles) & set(internal), titles
    assert "Sign in" in titles
    assert page.get_by_text("Single-user local mode").count() == 0
    # typing an internal page's address does not get around the navigation
    page.goto(f"{signin_app.url}/department")
    wait_for_app(page)
    assert page.get_by_text("Presented by the").count() == 0
    # the public page is served instead (its tables are its charts' data, not internal KPIs)
    assert page.get_by_role("heading", level=1).first.inner_text().startswith("How Riverton is doing")
    assert page.get_by_text("Owner", exact=True).count() == 0
    # Streamlit logs the unknown-page redirect as a console error: expected here, and only here
    browser_errors[:] = [e for e in browser_errors if NOT_FOUND not in e]


def test_lead_signs_in_sees_staff_pages_and_signs_out(page, signin_app, oidc_provider):
    serve_provider_assets(page, oidc_provider)
    sign_in_as(page, signin_app, LEAD)
    titles = nav_titles(page)
    staff_pages = page_titles(lambda role: role.value == "staff")
    assert set(staff_pages) <= set(titles), titles
    analyst_pages = page_titles(lambda role: role.value == "analyst")
    assert not set(analyst_pages) & set(titles)
    assert page.get_by_test_id("stSidebar").get_by_text("Signed in as Lee Lead").count() == 1
    page.goto(f"{signin_app.url}/account")
    wait_for_app(page)
    body = page.get_by_test_id("stMain").inner_text()
    assert "Roles: lead" in body
    assert "Departments you lead: pw" in body
    # a lead's Department page opens on their own department
    page.goto(f"{signin_app.url}/department")
    wait_for_app(page)
    assert page.get_by_role("heading", level=1).first.inner_text().strip() == "Public Works"
    page.goto(f"{signin_app.url}/account")
    wait_for_app(page)
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/oauth2/end_session**")
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{signin_app.url}/**")
    wait_for_app(page)
    assert "Sign in" in nav_titles(page)
    assert not set(nav_titles(page)) & set(staff_pages)


def test_analyst_group_gets_analyst_pages(page, signin_app, oidc_provider):
    serve_provider_assets(page, oidc_provider)
    sign_in_as(page, signin_app, ANALYST)
    titles = nav_titles(page)
    assert set(page_titles(lambda role: role.value in ("staff", "analyst"))) <= set(titles), titles


def test_unknown_person_stays_public(page, signin_app, oidc_provider):
    serve_provider_assets(page, oidc_provider)
    sign_in_as(page, signin_app, OUTSIDER)
    titles = nav_titles(page)
    assert not set(titles) & set(page_titles(lambda role: role.value != "public")), titles
    assert "Your account" in titles

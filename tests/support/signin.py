"""Sign-in for browser tests: a local OpenID Connect provider (oidc-provider-mock on a free
loopback port), the app started with a secrets file that points at it and maps its users to
roles, and signing in as a person does it.

Users: ``LEAD`` leads Public Works (staff), ``ANALYST`` is in the citystat-analysts group,
``OUTSIDER`` has no role.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.appserver import RunningApp, exception_texts, free_port, start_app, wait_for_app

LEAD = "lead@riverton.gov"
ANALYST = "ana@riverton.gov"
OUTSIDER = "someone@example.com"


@contextmanager
def running_provider() -> Iterator[str]:
    """The provider's base URL while it runs."""
    from oidc_provider_mock import User, run_server_in_thread

    users = [
        User(sub=LEAD, claims={"email": LEAD, "name": "Lee Lead", "groups": ["streets"]}),
        User(sub=ANALYST, claims={"email": ANALYST, "name": "Ana Analyst", "groups": ["citystat-analysts"]}),
        User(sub=OUTSIDER, claims={"email": OUTSIDER, "name": "Out Sider"}),
    ]
    with run_server_in_thread(port=free_port(), user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def start_signin_app(folder: Path, provider_url: str) -> RunningApp:
    """The app with sign-in through the provider: the lead of Public Works is a lead, the
    citystat-analysts group are analysts."""
    port = free_port()
    settings = f'''
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{secrets.token_hex(16)}"
client_id = "citystat-test"
client_secret = "not-a-real-secret"
server_metadata_url = "{provider_url}/.well-known/openid-configuration"

[citystat.roles]
groups_claim = "groups"

[citystat.roles.users]
"{LEAD}" = {{ roles = ["lead"], departments = ["pw"] }}

[citystat.roles.groups]
citystat-analysts = {{ roles = ["analyst"] }}
'''
    return start_app(folder, secrets=settings, port=port)


def serve_provider_assets(page, provider_url: str) -> None:
    """The mock provider's own pages load a stylesheet from a CDN (no network here) and ask for a
    favicon it does not have; answer both locally so they log no console error (not our pages)."""
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.fulfill(status=200, content_type="text/css", body=""))
    page.route(f"{provider_url}/favicon.ico", lambda route: route.fulfill(status=204, body=""))


def sign_in_as(page, app, who: str) -> None:
    """As a person does it: open the site, pick Sign in in the sidebar, press the button."""
    page.goto(app.url)
    wait_for_app(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Sign in", exact=True).click()
    wait_for_app(page)
    page.get_by_test_id("stMain").get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize**")
    page.get_by_role("button", name=who, exact=True).click()
    page.wait_for_url(f"{app.url}/**")
    wait_for_app(page)
    assert not exception_texts(page)

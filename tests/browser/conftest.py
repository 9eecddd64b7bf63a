"""Browser-test fixtures: a running app per xdist worker, headless Chromium, error collection.

Every page fixture collects browser console errors and uncaught page errors; a test fails on
any that is not listed (with a reason) in devtools.appserver.BENIGN_CONSOLE_ERRORS. A failing
test leaves a full-page screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import re

import pytest

from devtools.appserver import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, is_benign, start_app

ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    skip = None
    if not os.path.exists(CHROMIUM):
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (scripts/setup.sh installs the "
                                       "Debian package 'chromium'); browser tests need it")
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if skip:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def local_app(tmp_path_factory):
    """The app in single-user local mode (no [auth] in its secrets), own state store and cache."""
    app = start_app(tmp_path_factory.mktemp("local_app"))
    yield app
    app.stop()


class BrowserErrors(list):
    """Console errors and page errors seen so far, minus the explicitly benign ones."""

    def check(self) -> None:
        real = [e for e in self if not is_benign(e)]
        assert not real, "browser reported errors:\n" + "\n".join(real)


def _open_page(browser, request, errors: BrowserErrors):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text} @ {msg.location.get('url', '')}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return context, page


def _screenshot_on_failure(request, page) -> None:
    failed = any(getattr(request.node, f"report_{when}", None) is not None
                 and getattr(request.node, f"report_{when}").failed for when in ("setup", "call"))
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # the page may be gone; the failure itself is what matters
            print(f"could not save screenshot: {exc}")


@pytest.fixture
def browser_errors():
    return BrowserErrors()


@pytest.fixture
def page(browser, request, browser_errors):
    """A fresh browser context and page; fails the test on console errors; screenshot on failure."""
    context, page = _open_page(browser, request, browser_errors)
    yield page
    _screenshot_on_failure(request, page)
    context.close()
    browser_errors.check()


@pytest.fixture
def new_page(browser, request, browser_errors):
    """Factory for extra pages (e.g. a second user); each is checked like `page`."""
    opened = []

    def make():
        context, page = _open_page(browser, request, browser_errors)
        opened.append((context, page))
        return page

    yield make
    for context, page in opened:
        _screenshot_on_failure(request, page)
        context.close()
    browser_errors.check()


@pytest.fixture(scope="module")
def oidc_provider():
    """A local OpenID Connect provider (tests/support/signin.py)."""
    from tests.support.signin import running_provider

    with running_provider() as url:
        yield url


@pytest.fixture(scope="module")
def signin_app(tmp_path_factory, oidc_provider):
    """The app with sign-in through `oidc_provider` and its role mapping."""
    from tests.support.signin import start_signin_app

    app = start_signin_app(tmp_path_factory.mktemp("signin_app"), oidc_provider)
    yield app
    app.stop()

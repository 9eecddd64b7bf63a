"""Which pages a user sees, grouped into sections. Pages check roles again themselves."""

from __future__ import annotations


import streamlit as st

from citystat.auth import Role, User
from citystat.config import PROJECT_ROOT

# (section, file, title, icon, who may see it). Icons are Streamlit's Material icons (a font
# Streamlit ships), never emoji, so they show where no colour-emoji font is installed. A page file that is absent is skipped.
PAGES = [
    ("Performance", "pages/overview.py", "Overview", ":material/dashboard:", Role.STAFF),
    ("Performance", "pages/department.py", "Department", ":material/account_balance:", Role.STAFF),
    ("Performance", "pages/metric.py", "Metric detail", ":material/monitoring:", Role.STAFF),
    ("Stat sessions", "pages/session.py", "Stat session", ":material/event:", Role.STAFF),
    ("Stat sessions", "pages/commitments.py", "Commitments", ":material/task_alt:", Role.STAFF),
    ("Results", "pages/providers.py", "Provider scorecards", ":material/home_work:", Role.STAFF),
    ("Results", "pages/pay_for_success.py", "Pay for Success", ":material/payments:", Role.STAFF),
    ("Results", "pages/experiments.py", "Experiments", ":material/science:", Role.STAFF),
    ("Analysts", "pages/explore.py", "Explore", ":material/search:", Role.ANALYST),
    ("Analysts", "pages/registry.py", "Registry", ":material/menu_book:", Role.ANALYST),
    ("Data", "pages/data_health.py", "Data health", ":material/health_and_safety:", Role.STAFF),
    ("Data", "pages/alerts.py", "Alerts", ":material/notifications:", Role.STAFF),
    ("Public", "pages/public.py", "City performance", ":material/location_city:", Role.PUBLIC),
    ("Public", "pages/open_data.py", "Open data", ":material/dataset:", Role.PUBLIC),
]


def allowed(user: User, role: Role) -> bool:
    if role == Role.PUBLIC:
        return True
    if role == Role.STAFF:
        return user.is_staff
    return user.has(role)


def visible_pages(user: User) -> list[tuple[str, str, str, str, Role]]:
    """The PAGES entries this user may see and whose file exists (pure: testable without Streamlit)."""
    return [entry for entry in PAGES if allowed(user, entry[4]) and (PROJECT_ROOT / entry[1]).is_file()]


def pages_for(user: User) -> dict[str, list[st.Page]]:
    """The navigation for this user. Never empty: somebody who may see nothing gets a welcome page.

    With sign-in configured an Account section (Sign in / Your account) is added.
    """
    from citystat.ui.signin import account_page, auth_configured, welcome_page

    sections: dict[str, list[st.Page]] = {}
    first = True
    for section, path, title, icon, role in visible_pages(user):
        # absolute: Streamlit resolves relative page paths against the running script, which is a page
        # file itself when a page is run directly (deep link, AppTest.from_file("pages/x.py"))
        sections.setdefault(section, []).append(st.Page(PROJECT_ROOT / path, title=title, icon=icon,
                                                        default=first))
        first = False
    if first:
        sections["CityStat"] = [st.Page(welcome_page, title="Welcome", icon=":material/location_city:", url_path="welcome",
                                        default=True)]
    if not user.local_mode and auth_configured():
        title = "Your account" if user.email else "Sign in"
        sections["Account"] = [st.Page(account_page, title=title, icon=":material/key:", url_path="account")]
    return sections

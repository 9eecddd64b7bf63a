"""Which pages a user sees, grouped into sections. Pages check roles again themselves."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..auth import Role, User
from ..config import PROJECT_ROOT

# (section, file, title, icon, who may see it). A page file that is absent is skipped.
PAGES = [
    ("Performance", "pages/overview.py", "Overview", "📊", Role.STAFF),
    ("Performance", "pages/department.py", "Department", "🏛️", Role.STAFF),
    ("Performance", "pages/metric.py", "Metric detail", "📈", Role.STAFF),
    ("Stat sessions", "pages/session.py", "Stat session", "🗓️", Role.STAFF),
    ("Stat sessions", "pages/commitments.py", "Commitments", "✅", Role.STAFF),
    ("Results", "pages/providers.py", "Provider scorecards", "🏠", Role.STAFF),
    ("Results", "pages/pay_for_success.py", "Pay for Success", "💵", Role.STAFF),
    ("Results", "pages/experiments.py", "Experiments", "🧪", Role.STAFF),
    ("Analysts", "pages/explore.py", "Explore", "🔎", Role.ANALYST),
    ("Analysts", "pages/registry.py", "Registry", "📚", Role.ANALYST),
    ("Data", "pages/data_health.py", "Data health", "🩺", Role.STAFF),
    ("Data", "pages/alerts.py", "Alerts", "🚨", Role.STAFF),
    ("Public", "pages/public.py", "City performance", "🌆", Role.PUBLIC),
    ("Public", "pages/open_data.py", "Open data", "🗂️", Role.PUBLIC),
]


def allowed(user: User, role: Role) -> bool:
    if role == Role.PUBLIC:
        return True
    if role == Role.STAFF:
        return user.is_staff
    return user.has(role)


def pages_for(user: User) -> dict[str, list[st.Page]]:
    sections: dict[str, list[st.Page]] = {}
    first = True
    for section, path, title, icon, role in PAGES:
        if not allowed(user, role) or not (PROJECT_ROOT / path).is_file():
            continue
        sections.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=first))
        first = False
    return sections

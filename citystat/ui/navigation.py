"""Which pages a user sees, grouped into sections. Pages check roles again themselves."""

from __future__ import annotations

import streamlit as st

from ..auth import Role, User

# (section, file, title, icon, who may see it)
PAGES = [
    ("Performance", "pages/overview.py", "Overview", "📊", Role.STAFF),
    ("Performance", "pages/department.py", "Department", "🏛️", Role.STAFF),
    ("Performance", "pages/metric.py", "Metric detail", "📈", Role.STAFF),
    ("Data", "pages/data_health.py", "Data health", "🩺", Role.STAFF),
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
        if not allowed(user, role):
            continue
        sections.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=first))
        first = False
    return sections

"""Server-side role checks for pages: call at the top of every page, and before every write.

A page hidden from the navigation is not a permission check: anybody can type its address, so
each page calls `require_role` itself, and each write calls `require_write` (or the matching
`citystat.auth` helper) right before it touches the state store.
"""

from __future__ import annotations

import streamlit as st

from citystat.auth import Role, User
from citystat.ui.context import current_user
from citystat.ui.navigation import allowed


def require_role(role: Role) -> User:
    """Stop the page unless the current user holds `role` (checked on the server, every run)."""
    from citystat.ui.shell import ensure_shell

    ensure_shell()
    user = current_user()
    if not allowed(user, role):
        if user.is_staff:
            st.error(f"This page needs the {role.value} role; you have: "
                     f"{', '.join(sorted(r.value for r in user.roles))}.")
        else:
            st.error("You do not have access to this page. Sign in with a staff account.")
        st.stop()
    return user


def require_write(allowed_to_write: bool, message: str) -> User:
    """Stop with a plain message (and write nothing) unless the current user may make this change."""
    user = current_user()
    if not allowed_to_write:
        st.error(message)
        st.stop()
    return user


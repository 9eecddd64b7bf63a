"""Server-side role checks for pages: call at the top of every page."""

from __future__ import annotations

import streamlit as st

from ..auth import Role, User
from .context import current_user
from .navigation import allowed


def require_role(role: Role) -> User:
    user = current_user()
    if not allowed(user, role):
        st.error("You do not have access to this page. Sign in with a staff account.")
        st.stop()
    return user

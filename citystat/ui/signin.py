"""Who is signed in. Without sign-in configured the app runs in single-user local mode."""

from __future__ import annotations

from ..auth import LOCAL_USER, User


def resolve_user() -> User:
    return LOCAL_USER

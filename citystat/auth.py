"""Roles and permissions, free of Streamlit so every check is testable and runs on the server.

Roles: public (public pages only), staff (read everything internal), lead (staff + edit the
narratives and commitments of their own departments), analyst (staff + Explore and the
registry), admin (everything). A user may hold several roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    PUBLIC = "public"
    STAFF = "staff"
    LEAD = "lead"
    ANALYST = "analyst"
    ADMIN = "admin"


INTERNAL_ROLES = {Role.STAFF, Role.LEAD, Role.ANALYST, Role.ADMIN}


@dataclass(frozen=True)
class User:
    name: str
    email: str | None = None
    roles: frozenset[Role] = frozenset({Role.PUBLIC})
    departments: frozenset[str] = field(default_factory=frozenset)  # for leads
    local_mode: bool = False

    @property
    def actor(self) -> str:
        """How the audit trail names this user."""
        return self.email or self.name

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & INTERNAL_ROLES)

    def can_edit_department(self, department: str | None) -> bool:
        if Role.ADMIN in self.roles:
            return True
        return Role.LEAD in self.roles and department is not None and department in self.departments

    @property
    def can_explore(self) -> bool:
        return self.has(Role.ANALYST)


PUBLIC_USER = User(name="Resident")
LOCAL_USER = User(name="Local user (single-user mode)", email="local", roles=frozenset({Role.ADMIN}),
                  local_mode=True)


class PermissionDenied(Exception):
    """Raised by server-side checks; pages show it as a plain message."""


def require(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDenied(message)

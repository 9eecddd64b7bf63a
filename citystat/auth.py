"""Roles and permissions, free of Streamlit so every check is testable and runs on the server.

Roles: public (public pages only), staff (read everything internal), lead (staff + edit the
narratives and commitments of their own departments), analyst (staff + Explore and the
registry), admin (everything). A user may hold several roles.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping


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


# ---- role mapping (sign-in) -------------------------------------------------------------
# Who gets which role is configuration, not code: a `[citystat.roles]` table in the Streamlit
# secrets file, or a `citystat_roles.toml` file (see docs/SECURITY.md). A signed-in user's roles
# are the union of every rule that matches them: their e-mail address, each group in the
# identity provider's groups claim, and their e-mail domain. A user matching nothing gets the
# `default` roles (public unless configured otherwise): unknown people never see internal data.

ROLE_NAMES = {role.value for role in Role}


class RoleMappingError(ValueError):
    """The role mapping is unusable; the message names the file and the key at fault."""


@dataclass(frozen=True)
class RoleGrant:
    roles: frozenset[Role] = frozenset()
    departments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoleMapping:
    users: dict[str, RoleGrant] = field(default_factory=dict)    # lower-case e-mail -> grant
    groups: dict[str, RoleGrant] = field(default_factory=dict)   # group name -> grant
    domains: dict[str, RoleGrant] = field(default_factory=dict)  # lower-case e-mail domain -> grant
    default: RoleGrant = RoleGrant(frozenset({Role.PUBLIC}))
    groups_claim: str = "groups"
    source: str = "role mapping"

    def grant_for(self, email: str | None, groups: list[str] | tuple[str, ...] = (),
                  email_verified: bool | None = None) -> RoleGrant:
        """The union of every matching rule; `default` when nothing matches.

        An address the provider says is *not* verified matches no e-mail or domain rule, so nobody
        can claim a city address they do not own.
        """
        matches: list[RoleGrant] = []
        address = (email or "").strip().lower()
        if address and email_verified is not False:
            if address in self.users:
                matches.append(self.users[address])
            domain = address.rpartition("@")[2]
            if "@" in address and domain in self.domains:
                matches.append(self.domains[domain])
        matches += [self.groups[g] for g in groups if g in self.groups]
        if not matches:
            return self.default
        return RoleGrant(frozenset().union(*(m.roles for m in matches)),
                         frozenset().union(*(m.departments for m in matches)))

    def user_for(self, claims: Mapping[str, Any]) -> User:
        """Turn the identity provider's claims (st.user) into a CityStat user."""
        email = claims.get("email")
        email = str(email) if email else None
        raw_groups = claims.get(self.groups_claim) or []
        groups = [raw_groups] if isinstance(raw_groups, str) else [str(g) for g in raw_groups]
        verified = claims.get("email_verified")
        grant = self.grant_for(email, groups, verified if isinstance(verified, bool) else None)
        roles = grant.roles or frozenset({Role.PUBLIC})
        name = str(claims.get("name") or claims.get("preferred_username") or email or claims.get("sub") or "user")
        return User(name=name, email=email, roles=roles, departments=grant.departments)


def _grant(value: Any, where: str) -> RoleGrant:
    if isinstance(value, (list, tuple)):  # shorthand: a list of roles
        value = {"roles": value}
    if not isinstance(value, Mapping):
        raise RoleMappingError(f"{where}: expected a table with 'roles' (and 'departments' for leads), "
                               f"got {type(value).__name__}")
    unknown = set(value) - {"roles", "departments"}
    if unknown:
        raise RoleMappingError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                               "allowed: roles, departments")
    roles = value.get("roles", [])
    departments = value.get("departments", [])
    if isinstance(roles, str):
        roles = [roles]
    if isinstance(departments, str):
        departments = [departments]
    if not isinstance(roles, (list, tuple)) or not isinstance(departments, (list, tuple)):
        raise RoleMappingError(f"{where}: 'roles' and 'departments' must be lists of names")
    bad = [r for r in roles if str(r) not in ROLE_NAMES]
    if bad:
        raise RoleMappingError(f"{where}: unknown role(s) {', '.join(map(repr, bad))}; "
                               f"known: {', '.join(sorted(ROLE_NAMES))}")
    parsed = frozenset(Role(str(r)) for r in roles)
    if Role.LEAD in parsed and not departments:
        raise RoleMappingError(f"{where}: role 'lead' needs 'departments' (the departments they lead)")
    return RoleGrant(parsed, frozenset(str(d) for d in departments))


def parse_role_mapping(data: Mapping[str, Any], source: str = "role mapping") -> RoleMapping:
    """Check and parse a role-mapping table (the `[citystat.roles]` secrets section or the file)."""
    if not isinstance(data, Mapping):
        raise RoleMappingError(f"{source}: the role mapping must be a table")
    unknown = set(data) - {"users", "groups", "domains", "default", "groups_claim"}
    if unknown:
        raise RoleMappingError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                               "allowed: users, groups, domains, default, groups_claim")
    tables: dict[str, dict[str, RoleGrant]] = {}
    for kind in ("users", "groups", "domains"):
        table = data.get(kind, {})
        if not isinstance(table, Mapping):
            raise RoleMappingError(f"{source}: '{kind}' must be a table")
        lower = kind != "groups"
        tables[kind] = {(str(k).strip().lower() if lower else str(k)): _grant(v, f"{source}: {kind}.{k}")
                        for k, v in table.items()}
    default = _grant(data["default"], f"{source}: default") if "default" in data \
        else RoleGrant(frozenset({Role.PUBLIC}))
    claim = data.get("groups_claim", "groups")
    if not isinstance(claim, str) or not claim:
        raise RoleMappingError(f"{source}: groups_claim must be the name of a claim, e.g. 'groups'")
    return RoleMapping(users=tables["users"], groups=tables["groups"], domains=tables["domains"],
                       default=default, groups_claim=claim, source=source)


def load_role_mapping_file(path: str | os.PathLike) -> RoleMapping:
    """Read a `citystat_roles.toml` file (top-level keys: users, groups, domains, default, groups_claim)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoleMappingError(f"{path}: cannot read the role mapping: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RoleMappingError(f"{path}: not valid TOML: {exc}") from None
    return parse_role_mapping(data, str(path))


# ---- permission helpers: named checks for library code (the rules themselves live on User) ----

def can_read_internal(user: User) -> bool:
    return user.is_staff


def can_edit_narrative(user: User, department: str | None) -> bool:
    """Narratives and commitments: leads of the department, and admins."""
    return user.can_edit_department(department)


def can_edit_commitment(user: User, department: str | None) -> bool:
    return user.can_edit_department(department)


def can_use_explore(user: User) -> bool:
    """The Explore page (analyst SQL) and the registry editor: analysts and admins."""
    return user.has(Role.ANALYST)


def can_administer(user: User) -> bool:
    return Role.ADMIN in user.roles


def require_edit_department(user: User, department: str | None, what: str = "this") -> None:
    """Server-side check before any write to a department's narratives or commitments."""
    require(user.can_edit_department(department),
            f"{user.actor} may not edit {what}: only the lead of department {department!r} or an admin may.")

"""Who is using the app: OpenID Connect sign-in, or single-user local mode.

- `[auth]` configured in the Streamlit secrets file (Streamlit's built-in OIDC: redirect_uri,
  cookie_secret, client_id, client_secret, server_metadata_url): a signed-in person gets the roles
  the role mapping gives them; somebody not signed in is the public user (public pages only).
- No `[auth]`: the app runs in single-user local mode (LOCAL_USER, every role, labelled as such).

The role mapping is read from `[citystat.roles]` in the secrets, else from the file named by
$CITYSTAT_ROLES, else `citystat_roles.toml` next to the registry (see docs/SECURITY.md). A broken
mapping fails closed: everybody is treated as public and the error is shown.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import streamlit as st

from citystat.auth import LOCAL_USER, PUBLIC_USER, RoleMapping, RoleMappingError, User, load_role_mapping_file, \
    parse_role_mapping
from citystat.config import registry_path

ROLE_FILE_NAME = "citystat_roles.toml"


def _secrets() -> Mapping[str, Any]:
    """The parsed secrets, or {} when there is no secrets file (never raises, never draws)."""
    try:
        from streamlit.runtime.secrets import secrets_singleton

        if not secrets_singleton.load_if_toml_exists():
            return {}
        return secrets_singleton.to_dict()
    except Exception:  # a broken secrets file: Streamlit reports it itself; treat as not configured
        return {}


def auth_configured() -> bool:
    """True when the secrets file has an `[auth]` section (sign-in is on)."""
    auth = _secrets().get("auth")
    return isinstance(auth, Mapping) and bool(auth)


def role_mapping() -> RoleMapping:
    """The role mapping in force; raises RoleMappingError naming the file and key at fault."""
    citystat = _secrets().get("citystat")
    if isinstance(citystat, Mapping) and "roles" in citystat:
        return parse_role_mapping(citystat["roles"], "secrets [citystat.roles]")
    explicit = os.environ.get("CITYSTAT_ROLES")
    if explicit:
        return load_role_mapping_file(explicit)
    candidate = registry_path().parent / ROLE_FILE_NAME
    if candidate.is_file():
        return load_role_mapping_file(candidate)
    return RoleMapping(source="no role mapping (every signed-in user is public)")


def _claims() -> dict[str, Any]:
    try:
        return dict(st.user.to_dict())
    except Exception:
        return {}


def resolve_user() -> User:
    """The user for this browser session (pages also re-check roles on every run)."""
    if not auth_configured():
        return LOCAL_USER
    claims = _claims()
    if not claims.get("is_logged_in"):
        return PUBLIC_USER
    try:
        return role_mapping().user_for(claims)
    except RoleMappingError as exc:
        st.error(f"Sign-in works, but the role mapping is broken, so you only see public pages: {exc}")
        return User(name=str(claims.get("email") or "user"), email=claims.get("email"))


def sign_in() -> None:
    """Start the OIDC login (redirects the browser to the identity provider)."""
    st.session_state.pop("citystat_user", None)
    st.login()


def sign_out() -> None:
    st.session_state.pop("citystat_user", None)
    st.logout()


def account_controls(user: User, *, key: str = "account") -> None:
    """Sign-in / sign-out controls (for the sidebar or the account page)."""
    if user.local_mode or not auth_configured():
        return
    if not _claims().get("is_logged_in"):
        st.button("Sign in", key=f"{key}_sign_in", icon=":material/login:", on_click=sign_in, type="primary")
    else:
        st.button("Sign out", key=f"{key}_sign_out", icon=":material/logout:", on_click=sign_out)


def account_page() -> None:
    """The Sign in / Account page added to the navigation when sign-in is configured."""
    from citystat.ui.context import current_user

    user = current_user()
    if not _claims().get("is_logged_in"):
        st.title("Sign in")
        st.write("City staff sign in with their city account to see internal dashboards. "
                 "Everyone can see the public pages without signing in.")
        account_controls(user, key="account_page")
        return
    st.title("Your account")
    st.write(f"Signed in as **{user.name}**" + (f" ({user.email})" if user.email else ""))
    st.write("Roles: " + ", ".join(sorted(r.value for r in user.roles)))
    if user.departments:
        st.write("Departments you lead: " + ", ".join(sorted(user.departments)))
    account_controls(user, key="account_page")


def welcome_page() -> None:
    """Shown when a user may see no page of the app (e.g. public pages are not installed)."""
    st.title("CityStat")
    st.info("There is nothing public to show here yet. City staff: sign in to see the dashboards.")
    from citystat.ui.context import current_user

    account_controls(current_user(), key="welcome")


__all__ = ["resolve_user", "auth_configured", "role_mapping", "account_controls", "account_page",
           "welcome_page", "sign_in", "sign_out", "ROLE_FILE_NAME"]

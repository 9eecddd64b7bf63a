"""Roles and the role mapping: who may see and change what, checked without a browser.

The browser test of the whole sign-in flow is tests/browser/test_signin.py.
"""

from __future__ import annotations

import pytest

from citystat.auth import (LOCAL_USER, PUBLIC_USER, PermissionDenied, Role, RoleMappingError, User,
                           can_administer, can_edit_commitment, can_edit_narrative, can_read_internal,
                           can_use_explore, load_role_mapping_file, parse_role_mapping, require_edit_department)
from citystat.ui.navigation import PAGES, allowed, visible_pages

MAPPING = {
    "groups_claim": "groups",
    "users": {"Lee@Riverton.gov": {"roles": ["lead"], "departments": ["pw", "csc"]},
              "boss@riverton.gov": ["admin"]},
    "groups": {"citystat-analysts": {"roles": ["analyst"]}},
    "domains": {"riverton.gov": {"roles": ["staff"]}},
}


def user(roles, departments=()):
    return User(name="x", email="x@riverton.gov", roles=frozenset(roles), departments=frozenset(departments))


# ---- who may do what ---------------------------------------------------------------------
@pytest.mark.parametrize("who, internal, edit_pw, edit_fin, explore, admin", [
    (PUBLIC_USER, False, False, False, False, False),
    (user({Role.STAFF}), True, False, False, False, False),
    (user({Role.LEAD}, {"pw"}), True, True, False, False, False),
    (user({Role.ANALYST}), True, False, False, True, False),
    (user({Role.ADMIN}), True, True, True, True, True),
    (LOCAL_USER, True, True, True, True, True),
])
def test_permission_table(who, internal, edit_pw, edit_fin, explore, admin):
    assert can_read_internal(who) is internal
    assert can_edit_narrative(who, "pw") is edit_pw and can_edit_commitment(who, "pw") is edit_pw
    assert can_edit_narrative(who, "fin") is edit_fin
    assert can_use_explore(who) is explore
    assert can_administer(who) is admin


def test_a_lead_cannot_edit_without_a_department():
    assert not can_edit_commitment(user({Role.LEAD}, {"pw"}), None)


def test_require_edit_department_names_the_user_and_department():
    with pytest.raises(PermissionDenied, match=r"x@riverton.gov may not edit the commitment.*'fin'"):
        require_edit_department(user({Role.LEAD}, {"pw"}), "fin", "the commitment")
    require_edit_department(user({Role.LEAD}, {"pw"}), "pw")  # no exception


@pytest.mark.parametrize("who, expected", [
    (PUBLIC_USER, {"public"}),
    (user({Role.STAFF}), {"public", "staff"}),
    (user({Role.LEAD}, {"pw"}), {"public", "staff"}),
    (user({Role.ANALYST}), {"public", "staff", "analyst"}),
    (user({Role.ADMIN}), {"public", "staff", "analyst"}),
])
def test_page_access_by_role(who, expected):
    seen = {role.value for *_, role in PAGES if allowed(who, role)}
    assert seen == expected
    for _section, path, *_rest in visible_pages(who):
        role = next(r for _s, p, _t, _i, r in PAGES if p == path)
        assert role.value in expected


# ---- the role mapping ----------------------------------------------------------------------
def test_mapping_unions_user_group_and_domain_rules():
    mapping = parse_role_mapping(MAPPING, "test")
    lee = mapping.user_for({"email": "LEE@riverton.gov", "name": "Lee", "groups": ["citystat-analysts"]})
    assert lee.roles == {Role.LEAD, Role.ANALYST, Role.STAFF}
    assert lee.departments == {"pw", "csc"}
    assert lee.name == "Lee" and lee.actor == "LEE@riverton.gov"


def test_unknown_people_are_public_and_unverified_addresses_match_nothing():
    mapping = parse_role_mapping(MAPPING, "test")
    assert mapping.user_for({"email": "someone@example.com"}).roles == {Role.PUBLIC}
    assert mapping.user_for({"email": "boss@riverton.gov", "email_verified": False}).roles == {Role.PUBLIC}
    assert mapping.user_for({"email": "boss@riverton.gov", "email_verified": True}).roles == {Role.ADMIN, Role.STAFF}
    # a look-alike domain is not the city's
    assert mapping.user_for({"email": "x@evil-riverton.gov"}).roles == {Role.PUBLIC}
    assert mapping.user_for({"email": "x@riverton.gov.evil.com"}).roles == {Role.PUBLIC}


def test_a_single_group_string_and_a_custom_claim():
    mapping = parse_role_mapping({"groups_claim": "roles", "groups": {"analysts": ["analyst"]}}, "test")
    assert mapping.user_for({"email": "a@b.c", "roles": "analysts"}).roles == {Role.ANALYST}
    assert mapping.user_for({"email": "a@b.c", "groups": ["analysts"]}).roles == {Role.PUBLIC}


def test_default_roles_can_be_raised_for_a_closed_provider():
    mapping = parse_role_mapping({"default": ["staff"]}, "test")
    assert mapping.user_for({"email": "anyone@city.gov"}).roles == {Role.STAFF}


@pytest.mark.parametrize("data, message", [
    ({"users": {"a@b.c": {"roles": ["superuser"]}}}, "test: users.a@b.c: unknown role(s) 'superuser'"),
    ({"users": {"a@b.c": {"roles": ["lead"]}}}, "test: users.a@b.c: role 'lead' needs 'departments'"),
    ({"groups": {"g": {"roles": ["staff"], "depts": ["pw"]}}}, "test: groups.g: unknown key(s) depts"),
    ({"groups": {"g": "staff"}}, "test: groups.g: expected a table"),
    ({"domain": {}}, "test: unknown key(s) domain"),
    ({"users": ["a@b.c"]}, "test: 'users' must be a table"),
    ({"groups_claim": ""}, "test: groups_claim must be the name of a claim"),
])
def test_broken_mapping_is_named_precisely(data, message):
    with pytest.raises(RoleMappingError) as caught:
        parse_role_mapping(data, "test")
    assert str(caught.value).startswith(message)


def test_mapping_file(tmp_path):
    path = tmp_path / "citystat_roles.toml"
    path.write_text('[users]\n"lee@riverton.gov" = { roles = ["lead"], departments = ["pw"] }\n', encoding="utf-8")
    assert load_role_mapping_file(path).user_for({"email": "lee@riverton.gov"}).departments == {"pw"}
    path.write_text('[users\n"x" = 1\n', encoding="utf-8")
    with pytest.raises(RoleMappingError, match=rf"^{path}: not valid TOML"):
        load_role_mapping_file(path)
    with pytest.raises(RoleMappingError, match="cannot read the role mapping"):
        load_role_mapping_file(tmp_path / "absent.toml")


# ---- pages check the role on the server (AppTest: no browser, real app) --------------------
@pytest.fixture
def app_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CITYSTAT_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(tmp_path / "cache"))


def run_as(who: User, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app.py", default_timeout=120)
    at.session_state["citystat_user"] = who
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/department.py", "pages/metric.py",
                                  "pages/data_health.py"])
def test_internal_pages_refuse_the_public_even_when_opened_directly(app_env, page):
    """The navigation hides these pages from the public; running the page file itself (as a deep
    link does) must not show its content either."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(f"../{page}", default_timeout=120)
    at.session_state["citystat_user"] = PUBLIC_USER
    at.run()
    assert not at.exception
    # the public page is served instead: its only tables are the charts' data (period, value, target)
    assert [t.value for t in at.title] == ["How Riverton is doing"]
    assert all(set(frame.value.columns) <= {"Period", "Value", "Target"} for frame in at.dataframe)
    assert not any("CityStat" == t.value.split()[-1] for t in at.title)   # not the Overview's title
    assert not any(m.label in ("Value", "Target") for m in at.metric)  # not Metric detail


def guarded_script():
    """A page body behind require_role, run as if inside the app shell."""
    import streamlit as st

    from citystat.auth import Role
    from citystat.ui import shell
    from citystat.ui.guard import require_role

    shell._inside.active = True
    require_role(Role(st.session_state["needed"]))
    st.write("internal content")


@pytest.mark.parametrize("who, needed, shown, message", [
    (PUBLIC_USER, "staff", False, "do not have access"),
    (user({Role.STAFF}), "staff", True, None),
    (user({Role.STAFF}), "analyst", False, "needs the analyst role"),
    (user({Role.LEAD}, {"pw"}), "analyst", False, "needs the analyst role"),
    (user({Role.ANALYST}), "analyst", True, None),
    (user({Role.ADMIN}), "analyst", True, None),
])
def test_require_role_on_the_server(app_env, who, needed, shown, message):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(guarded_script, default_timeout=60)
    at.session_state["citystat_user"] = who
    at.session_state["needed"] = needed
    at.run()
    assert not at.exception
    assert any(m.value == "internal content" for m in at.markdown) is shown
    if message:
        assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_staff_see_the_overview_and_no_local_mode_banner(app_env):
    at = run_as(user({Role.STAFF}))
    assert not at.exception
    assert not at.error
    assert at.title and "CityStat" in at.title[0].value
    assert not any("Single-user local mode" in i.value for i in at.sidebar.info)


def test_public_navigation_holds_only_public_pages(app_env):
    at = run_as(PUBLIC_USER)
    assert not at.exception
    internal = {path for _s, path, _t, _i, role in PAGES if role != Role.PUBLIC}
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(sorted(internal)[0])


def test_local_mode_is_labelled(app_env):
    at = run_as(LOCAL_USER)
    assert any("Single-user local mode" in i.value for i in at.sidebar.info)

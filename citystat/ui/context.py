"""Per-process resources (the city, the state store) and per-run context for pages."""

from __future__ import annotations

import streamlit as st

from citystat.api import CityStat
from citystat.auth import LOCAL_USER, PUBLIC_USER, User
from citystat.config import registry_path


@st.cache_resource(show_spinner=False)
def _city(path: str) -> CityStat:
    # Pages force one look at the files per run (city() below); within a run, reuse it.
    return CityStat.open(path, check_interval=5.0, keep_last_good=True)


def city() -> CityStat:
    """The city for this process, synced with the files on disk (cheap when nothing changed)."""
    stat = _city(str(registry_path()))
    if stat.unchanged():  # the usual case: no spinner (each one starts a timer thread)
        return stat
    with st.spinner("Refreshing KPIs from the extracts…"):
        return stat.sync(force=True)


def current_user() -> User:
    """Who is using this page. Sign-in (OIDC) fills this in; without it: single-user local mode."""
    user = st.session_state.get("citystat_user")
    if isinstance(user, User):
        return user
    from citystat.ui.signin import resolve_user

    user = resolve_user()
    st.session_state["citystat_user"] = user
    return user


__all__ = ["city", "current_user", "PUBLIC_USER", "LOCAL_USER"]


@st.cache_resource(show_spinner=False)
def _store(url: str | None):
    from citystat.store import open_store

    return open_store(url)


@st.cache_resource(show_spinner=False)
def _seed_once(url: str | None, registry: str) -> bool:
    # The bundled sample city opens on a lived-in history (citystat/session/seed.py).
    from citystat.session.seed import seed_on_first_start

    return seed_on_first_start(_city(registry), _store(url))


def store():
    """The state store for this process (commitments, narratives, annotations, alerts...)."""
    import os

    url = os.environ.get("CITYSTAT_STATE_URL")
    state = _store(url)
    _seed_once(url, str(registry_path()))
    return state


def annotations_for(metric_id: str) -> list[tuple]:
    """Dated annotations drawn on every trend chart of a KPI (none while the state store is down)."""
    from citystat.store.errors import OUTAGE_ERRORS

    try:
        return [(a.on_date, a.text) for a in store().list_annotations(metric_id)]
    except OUTAGE_ERRORS:
        return []

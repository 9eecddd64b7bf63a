"""The app's shell: page config, role-based navigation, sidebar. `app.py` just calls `run_app()`.

Streamlit runs a page file directly (without app.py) when a browser's first request after the
server starts is a deep link such as /metric?metric=x. Pages call `require_role`, which calls
`ensure_shell()`: if the shell is not around this run, it runs it (navigation, then the page)
and stops the direct run, so every visit gets the same navigation, layout and checks.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st
from altair.utils import schemapi as altair_schema

from citystat.ui.context import city, current_user
from citystat.ui.navigation import pages_for
from citystat.ui.signin import account_controls

_inside = threading.local()
# A file, not a Material icon: Streamlit fetches a Material favicon from Google's font servers,
# which a city's network (and the offline test machine) may not reach.
FOCUS_CSS = ("a:focus-visible, button:focus-visible, summary:focus-visible, [role='tab']:focus-visible "
             "{ outline: 3px solid #1F4E79 !important; outline-offset: 2px; } "
             "input:focus-visible, textarea:focus-visible { outline: 2px solid #1F4E79 !important; }")
FAVICON = str(Path(__file__).with_name("static") / "favicon.png")


def run_app() -> None:
    st.set_page_config(page_title="CityStat", page_icon=FAVICON, layout="wide")
    # Altair validates every chart object against the Vega-Lite schema as it is built ("debug
    # mode"); the tests validate every chart builder's spec, so the server does not redo it.
    altair_schema.disable_debug_mode()
    user = current_user()
    # Navigation first: until st.navigation runs, Streamlit would show its default list of page files.
    navigation = st.navigation(pages_for(user), position="sidebar", expanded=True)
    # Again after the navigation: otherwise Streamlit makes the page's Material icon the favicon,
    # fetched from a font CDN on every page (a request to a third party, and no icon offline).
    st.set_page_config(page_icon=FAVICON)
    # Visible keyboard focus everywhere (WCAG 2.4.7): Streamlit draws none on links and some buttons.
    st.html(f"<style>{FOCUS_CSS}</style>")
    stat = city()
    from citystat.kpis.replica import notice

    if text := notice(stat.rollup):
        st.warning(text)
    if user.is_staff:
        registry_error_banner(stat)
    with st.sidebar:
        st.caption(f"**{stat.registry.city.name}** · CityStat")
        if user.local_mode:
            st.info("Single-user local mode: sign-in is not configured, so you have every role. "
                    "See docs/SECURITY.md to turn sign-in on.", icon=":material/lock_open:")
        else:
            st.caption(f"Signed in as {user.name}" if user.is_staff or user.email else "Not signed in")
            account_controls(user, key="sidebar")
    _inside.active = True
    try:
        navigation.run()
    finally:
        _inside.active = False


def registry_error_banner(stat) -> None:
    """Staff see why the registry on disk is not the one being served (file:line: message)."""
    error = stat.registry_error
    if error is None:
        return
    served = ("the dashboard keeps showing the last version that loaded"
              if stat.registry.metrics or stat.registry.sources else "no KPIs can be shown until it is fixed")
    lines = "\n".join(f"- `{problem}`" for problem in error.problems[:10])
    more = f"\n- … and {len(error.problems) - 10} more" if len(error.problems) > 10 else ""
    st.error(f"**The metric registry on disk does not load**, so {served}. Fix it and reload:\n\n{lines}{more}",
             icon=":material/block:")


def ensure_shell() -> None:
    """Run the page inside the shell if Streamlit started it directly."""
    if getattr(_inside, "active", False):
        return
    run_app()
    st.stop()

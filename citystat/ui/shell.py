"""The app's shell: page config, role-based navigation, sidebar. `app.py` just calls `run_app()`.

Streamlit runs a page file directly (without app.py) when a browser's first request after the
server starts is a deep link such as /metric?metric=x. Pages call `require_role`, which calls
`ensure_shell()`: if the shell is not around this run, it runs it (navigation, then the page)
and stops the direct run, so every visit gets the same navigation, layout and checks.
"""

from __future__ import annotations

import base64
import gc
import sys
import threading
from pathlib import Path

import streamlit as st

from citystat.ui.context import city, current_user
from citystat.ui.navigation import pages_for
from citystat.ui.signin import account_controls

_inside = threading.local()
# A file, not a Material icon: Streamlit fetches a Material favicon from Google's font servers,
# which a city's network (and the offline test machine) may not reach.
FOCUS_CSS = ("a:focus-visible, button:focus-visible, summary:focus-visible, [role='tab']:focus-visible "
             "{ outline: 3px solid #1F4E79 !important; outline-offset: 2px; } "
             "input:focus-visible, textarea:focus-visible { outline: 2px solid #1F4E79 !important; }")
# Given as a data URL: a file path makes Streamlit open, check and re-encode the image with
# PIL on every run (twice a run: before and after the navigation).
FAVICON = "data:image/png;base64," + base64.b64encode(
    (Path(__file__).with_name("static") / "favicon.png").read_bytes()).decode("ascii")
_frozen_modules = 0


def freeze_long_lived() -> None:
    """Keep the process's long-lived objects out of the garbage collector's way.

    Streamlit runs a full garbage collection after every script run (`runner.postScriptGC`):
    with the libraries, the registry and the KPI caches loaded, that walks ~170 k objects that
    never become garbage, ~0.12 CPU s on every page view. At the start of a run (the last
    run's garbage already collected), whatever is alive once new modules were imported since
    the last time is moved to the collector's permanent generation (`gc.freeze`): later
    collections look only at objects made after it, so each run's own garbage is still
    collected after every run. It happens while the process warms up (a page's first visit
    imports its modules), not on every run.
    """
    global _frozen_modules
    if len(sys.modules) != _frozen_modules:
        gc.freeze()
        _frozen_modules = len(sys.modules)


def run_app() -> None:
    freeze_long_lived()
    st.set_page_config(page_title="CityStat", page_icon=FAVICON, layout="wide")
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

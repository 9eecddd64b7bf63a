"""CityStat: the Streamlit entry point. Run with `streamlit run app.py`.

Builds the navigation for the signed-in user's role; every page also checks the role itself
(a hidden page is not a permission check).
"""

import streamlit as st

from citystat.ui.context import city, current_user
from citystat.ui.navigation import pages_for

st.set_page_config(page_title="CityStat", page_icon="📊", layout="wide")

user = current_user()
# Navigation first: until st.navigation runs, Streamlit would show its default list of page files.
navigation = st.navigation(pages_for(user), position="sidebar", expanded=True)
stat = city()
with st.sidebar:
    st.caption(f"**{stat.registry.city.name}** · CityStat")
    if user.local_mode:
        st.info("Single-user local mode: sign-in is not configured, so you have every role. "
                "See docs/DEPLOYMENT.md to turn sign-in on.", icon="🔓")
    else:
        st.caption(f"Signed in as {user.name}")
navigation.run()

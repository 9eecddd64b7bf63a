"""CityStat: the Streamlit entry point. Run with `streamlit run app.py`.

Builds the navigation for the signed-in user's role (citystat/ui/shell.py); every page also
checks the role itself (a hidden page is not a permission check).
"""

from citystat.ui.shell import run_app

run_app()

"""Helpers for AppTest page tests: open a page of the app and read what it shows."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT


def render(page: str, query: dict | None = None) -> AppTest:
    """Open `page` of app.py directly (with `query` in the address) and fail on any exception."""
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    if query:
        app.query_params.update(query)
    app.switch_page(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    """The page's visible text: titles, markdown, captions, notices, metric cards and tables."""
    parts = [e.value for e in app.title] + [e.value for e in app.markdown] + [e.value for e in app.caption]
    parts += [e.value for e in app.subheader] + [e.value for e in app.success] + [e.value for e in app.info]
    parts += [e.value for e in app.warning]
    parts += [str(e.value) for e in app.metric] + [e.label for e in app.metric]
    parts += [frame.value.to_string() for frame in app.dataframe]
    return "\n".join(str(p) for p in parts)

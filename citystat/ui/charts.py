"""Charts on screen with their text alternative (WCAG 1.1.1): every chart is drawn with a
one-sentence summary under it and, where the page does not already show the numbers next to
it, its data in a table inside an expander."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import streamlit as st

from citystat.display.report import quiet_marks


def show_chart(chart: Any, summary: str, *, columns: Sequence[str] | None = None,
               rows: Sequence[Sequence[Any]] | None = None, table_label: str = "Data table",
               where: Any = None, **altair_kwargs) -> None:
    """Draw ``chart`` with ``summary`` as its text alternative and caption, and (given
    ``columns`` and ``rows``) the data as a table in an expander.

    The chart's own SVG marks are hidden from assistive technology (``aria: false`` on every
    mark) and the chart carries the summary as its description: a screen reader hears one
    sentence, then can open the table, instead of a list of unlabeled points.
    """
    where = where if where is not None else st
    if not summary or not summary.strip():
        raise ValueError("every chart needs a one-sentence summary as its text alternative")
    # No schema validation on every page view (a third of the CPU of a chart-heavy page such as
    # the Stat session): the tests validate every chart builder's spec (tests/test_charts.py).
    spec = quiet_marks(chart.to_dict(validate=False))
    spec["description"] = summary
    where.vega_lite_chart(spec, **altair_kwargs)
    where.caption(summary)
    if columns is not None and rows is not None:
        with where.expander(table_label):
            st.dataframe(pl.DataFrame([list(r) for r in rows], schema=list(columns), orient="row",
                                      infer_schema_length=None),
                         hide_index=True, width="stretch")


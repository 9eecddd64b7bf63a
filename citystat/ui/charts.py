"""Charts on screen with their text alternative (WCAG 1.1.1): every chart is drawn with a
one-sentence summary under it and, where the page does not already show the numbers next to
it, its data in a table inside an expander."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import streamlit as st
from altair.utils import schemapi

from citystat.display.report import quiet_marks
from citystat.ui.cache import frame_digest, hashable, kept
from citystat.ui.tables import show_table

# Altair validates every chart object against the Vega-Lite schema as it is built ("debug
# mode"); the tests validate every chart builder's spec (tests/test_charts.py), so the app does
# not redo it on every view. Set here, where pages get their charts drawn, so that pages
# without charts (the Overview) do not import Altair at all.
schemapi.disable_debug_mode()


def vega_spec(chart: Any) -> dict:
    """The Vega-Lite spec Streamlit is given for an Altair chart: every mark hidden from
    assistive technology (``aria: false``), each dataset already in Arrow IPC bytes (what
    Streamlit would otherwise convert the records to on every draw)."""
    from streamlit import dataframe_util

    # No schema validation on every page view (a third of the CPU of a chart-heavy page such as
    # the Stat session): the tests validate every chart builder's spec (tests/test_charts.py).
    spec = quiet_marks(chart.to_dict(validate=False))
    if isinstance(spec.get("datasets"), dict):
        spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(values)
                            if isinstance(values, list) else values for name, values in spec["datasets"].items()}
    return spec


def chart_spec(build: Callable[..., Any], data: pl.DataFrame, **kwargs) -> dict:
    """``vega_spec(build(data, **kwargs))``, built once per content of ``data`` and arguments
    (``build`` is a pure chart builder of ``citystat.display.charts``), shared by every view."""
    key = ("chart", build.__module__, build.__qualname__, frame_digest(data), hashable(kwargs))
    return kept(key, lambda: vega_spec(build(data, **kwargs)))


def show_chart(chart: Any, summary: str, *, columns: Sequence[str] | None = None,
               rows: Sequence[Sequence[Any]] | None = None, table_label: str = "Data table",
               where: Any = None, **altair_kwargs) -> None:
    """Draw ``chart`` (an Altair chart, or a spec from ``chart_spec``) with ``summary`` as its
    text alternative and caption, and (given ``columns`` and ``rows``) the data as a table in
    an expander.

    The chart's own SVG marks are hidden from assistive technology (``aria: false`` on every
    mark) and the chart carries the summary as its description: a screen reader hears one
    sentence, then can open the table, instead of a list of unlabeled points.
    """
    where = where if where is not None else st
    if not summary or not summary.strip():
        raise ValueError("every chart needs a one-sentence summary as its text alternative")
    spec = chart if isinstance(chart, dict) else vega_spec(chart)
    where.vega_lite_chart({**spec, "description": summary}, **altair_kwargs)  # a copy: specs are shared
    where.caption(summary)
    if columns is not None and rows is not None:
        with where.expander(table_label):
            table = kept(("rows", hashable(list(columns)), hashable(rows)),
                         lambda: pl.DataFrame([list(r) for r in rows], schema=list(columns), orient="row",
                                              infer_schema_length=None))
            show_table(table, width="stretch")

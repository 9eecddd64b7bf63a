"""Tables on screen: ``st.dataframe`` of a Polars frame, its Arrow data built once per content."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from citystat.ui.cache import frame_digest, kept


def arrow_table(frame: pl.DataFrame):
    """The Arrow table ``st.dataframe`` makes of a Polars frame (through pandas, as Streamlit
    does: the same column types, the same bytes to the browser), kept per content: converting
    a KPI table costs ~10 ms, its digest 0.3 ms."""
    from streamlit import dataframe_util

    return kept(("arrow", frame_digest(frame)), lambda: dataframe_util.convert_pandas_df_to_arrow_table(
        dataframe_util.convert_anything_to_pandas_df(frame, ensure_copy=False)))


def show_table(frame: pl.DataFrame, *, where: Any = None, **kwargs):
    """``st.dataframe(frame, hide_index=True, **kwargs)`` from the kept Arrow table.

    A Polars frame has no index to show (Streamlit hides the one pandas adds): the index is
    always hidden here.
    """
    where = where if where is not None else st
    kwargs.setdefault("hide_index", True)
    if kwargs["hide_index"] is not True:
        raise ValueError("show_table always hides the index (a Polars frame has none)")
    return where.dataframe(arrow_table(frame), **kwargs)

"""Tables on screen: ``st.dataframe`` of a Polars frame, its Arrow data built once per content."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from citystat.ui.cache import frame_digest, kept

# Frames of only these columns (the pages' tables of text, and the KPI table's trend sparkline)
# are given to Streamlit as Arrow directly: the same column types Streamlit's own conversion
# through pandas gives them (large_string; list<double>), without importing pandas (~0.25 s of
# a cold first page). Other frames go through pandas, as st.dataframe would take them.
_DIRECT = {pl.String: None, pl.List(pl.Float64): "list<double>"}


def arrow_table(frame: pl.DataFrame):
    """The Arrow table ``st.dataframe`` shows for a Polars frame, kept per content (converting a
    KPI table costs ~10 ms, its digest ~0.05 ms)."""
    key = frame_digest(frame)
    if all(dtype in _DIRECT for dtype in frame.dtypes):
        return kept(("arrow", key), lambda: _direct(frame))
    return kept(("arrow", key), lambda: _through_pandas(frame))


def _direct(frame: pl.DataFrame):
    import pyarrow as pa

    table = frame.to_arrow()
    fields = [pa.field(f.name, pa.list_(pa.float64())) if pa.types.is_large_list(f.type) else f
              for f in table.schema]
    return table.cast(pa.schema(fields))


def _through_pandas(frame: pl.DataFrame):
    from streamlit import dataframe_util

    return dataframe_util.convert_pandas_df_to_arrow_table(
        dataframe_util.convert_anything_to_pandas_df(frame, ensure_copy=False))


def show_table(frame: pl.DataFrame, *, where: Any = None, **kwargs):
    """``st.dataframe(frame, hide_index=True, **kwargs)`` from the kept Arrow table.

    A Polars frame has no index to show (Streamlit hides the one pandas adds): the index is
    always hidden here. The tables are small, so they are sent whole (``lazy=False``, what
    Streamlit does below 150 000 rows anyway).
    """
    where = where if where is not None else st
    kwargs.setdefault("hide_index", True)
    if kwargs["hide_index"] is not True:
        raise ValueError("show_table always hides the index (a Polars frame has none)")
    return where.dataframe(arrow_table(frame), lazy=False, **kwargs)

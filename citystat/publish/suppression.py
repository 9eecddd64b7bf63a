"""Small-cell suppression for public tables of counts about people.

Why: a count of 1..10 people (a child with lead poisoning in one district in one week) can
identify someone. Sources marked `sensitive` in the registry go through this module before
any public download or chart.

Method (the standard line-by-line rule used by statistical offices):

1. **Primary suppression** - every count with ``1 <= count <= threshold`` is hidden. Zero may
   be shown (``show_zero=True``): "nobody" identifies nobody. Totals are counts too, so a
   small total is hidden as well.
2. **Complementary suppression** - a *line* is one additive equation of the published table:
   each row (its cells plus the row total), each column (its cells plus the column total),
   the total row and the total column. A reader can solve a line that has exactly one hidden
   cell by subtraction. So, while some line has exactly one hidden cell, hide one more cell
   of that line: the smallest non-zero interior cell (a total only when no interior cell is
   left; a zero only when nothing else is left). Repeat until no line has exactly one hidden
   cell.

Margins are always treated as known by the reader (they are usually published somewhere,
e.g. the citywide KPI), even when ``totals=False`` leaves them out of the returned table.

Limits (say so when publishing): this is the line-by-line check, not a full
linear-programming audit. It guarantees that no hidden cell can be *solved* from a single
row or column equation, iterated. It does not guarantee that a hidden cell cannot be
*bounded* (two hidden cells in a line whose difference is 4 tell the reader both lie in a
narrow interval), nor that combinations of several equations (or other published tables,
e.g. the same counts by another dimension or by week and by month) cannot pin a cell down.
For those, use an audit such as tau-ARGUS on the full set of releases.

Everything here is pure: plain Polars in, plain Polars out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl

TOTAL_LABEL = "Total"
PRIMARY = "primary"
COMPLEMENTARY = "complementary"

Cell = tuple[int, int]


@dataclass(frozen=True)
class SuppressedTable:
    """A table ready for publication plus a record of what was hidden and why.

    `frame` has the row key column, the count columns (``None`` where hidden) and, when
    totals were requested, a ``Total`` column and a ``Total`` row. `hidden` maps
    ``(row label, column name)`` to ``"primary"`` or ``"complementary"``.
    """

    frame: pl.DataFrame
    hidden: dict[tuple[str, str], str] = field(default_factory=dict)
    threshold: int = 10
    note: str = ""

    @property
    def primary(self) -> set[tuple[str, str]]:
        return {cell for cell, why in self.hidden.items() if why == PRIMARY}

    @property
    def complementary(self) -> set[tuple[str, str]]:
        return {cell for cell, why in self.hidden.items() if why == COMPLEMENTARY}


def suppression_note(threshold: int, show_zero: bool = True) -> str:
    """The sentence printed under every suppressed public table or chart."""
    zero = " Zero is shown." if show_zero else " Zero is hidden too."
    return (f"Counts from 1 to {threshold} are hidden to protect privacy, and some other cells are "
            f"hidden so the small ones cannot be worked out from totals.{zero}")


# --- the core: a grid of integers and the additive lines over it --------------------------------

def is_primary(count: int, threshold: int, show_zero: bool) -> bool:
    """True when the count itself is too small to publish."""
    if count == 0:
        return not show_zero
    return 1 <= count <= threshold


def suppress_cells(values: dict[Cell, int], lines: Sequence[Sequence[Cell]], *,
                   threshold: int = 10, show_zero: bool = True,
                   total_cells: Iterable[Cell] = ()) -> dict[Cell, str]:
    """Decide which cells to hide: returns ``{cell: "primary" | "complementary"}``.

    `values` maps every published cell to its count; `lines` lists the additive equations
    (each a list of cells whose hidden members a reader would try to solve for);
    `total_cells` are margins, used as complements only when nothing else is left.
    """
    if threshold < 0:
        raise ValueError(f"suppression threshold must be >= 0, not {threshold}")
    for cell, count in values.items():
        if count is None or count < 0:
            raise ValueError(f"cell {cell} has count {count!r}: counts must be non-negative integers")
    totals = set(total_cells)
    hidden: dict[Cell, str] = {
        cell: PRIMARY for cell, count in values.items() if is_primary(count, threshold, show_zero)}

    def complement_order(cell: Cell) -> tuple:
        # interior before margins, non-zero before zero, then smallest, then position
        count = values[cell]
        return (cell in totals, count == 0, count, cell)

    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden_in_line = [c for c in line if c in hidden]
            if len(hidden_in_line) != 1:
                continue
            candidates = [c for c in line if c not in hidden]
            if not candidates:
                continue
            hidden[min(candidates, key=complement_order)] = COMPLEMENTARY
            changed = True
    return hidden


def recoverable_cells(hidden: Iterable[Cell], lines: Sequence[Sequence[Cell]]) -> set[Cell]:
    """Hidden cells a reader can solve by subtraction, line by line, repeated to a fixpoint.

    Used to check a release (and by the tests); empty for the output of `suppress_cells`.
    """
    unknown = set(hidden)
    solved: set[Cell] = set()
    progress = True
    while progress:
        progress = False
        for line in lines:
            left = [c for c in line if c in unknown]
            if len(left) == 1:
                unknown.discard(left[0])
                solved.add(left[0])
                progress = True
    return solved


# --- tables --------------------------------------------------------------------------------------

def _check_counts(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    for name in columns:
        if name not in frame.columns:
            raise ValueError(f"count column {name!r} is not in the table (columns: {frame.columns})")
        series = frame[name]
        whole_floats = series.dtype.is_float() and bool((series.drop_nulls() % 1 == 0).all())
        if not (series.dtype.is_integer() or whole_floats):
            raise ValueError(f"count column {name!r} must hold whole numbers, not {series.dtype}")
        if series.null_count():
            raise ValueError(f"count column {name!r} has {series.null_count()} empty value(s); "
                             "fill them with 0 or drop the rows before suppressing")
        if series.len() and series.min() < 0:
            raise ValueError(f"count column {name!r} has a negative count ({series.min()})")


def table_lines(n_rows: int, n_cols: int) -> tuple[list[list[Cell]], set[Cell]]:
    """The additive lines of an n_rows x n_cols table with margins at index n_rows / n_cols.

    One column (a one-way table) has a single line: the cells plus the grand total; a row
    total would equal its one cell, so none is made.
    """
    R, C = n_rows, n_cols
    if C == 1:
        line = [(i, 0) for i in range(R)] + [(R, 0)]
        return [line], {(R, 0)}
    lines: list[list[Cell]] = []
    lines += [[(i, j) for j in range(C)] + [(i, C)] for i in range(R)]          # rows
    lines += [[(i, j) for i in range(R)] + [(R, j)] for j in range(C)]          # columns
    lines.append([(R, j) for j in range(C)] + [(R, C)])                         # total row
    lines.append([(i, C) for i in range(R)] + [(R, C)])                         # total column
    totals = {(i, C) for i in range(R + 1)} | {(R, j) for j in range(C)}
    return lines, totals


def suppress_table(frame: pl.DataFrame, *, count_columns: Sequence[str], row_key: str,
                   threshold: int = 10, show_zero: bool = True, totals: bool = True,
                   total_label: str = TOTAL_LABEL) -> SuppressedTable:
    """Suppress a one- or two-way table of counts (rows x `count_columns`).

    Row and column totals are computed from the frame (never trusted from input), treated as
    known to the reader and, with ``totals=True``, included in the output as a ``Total``
    column (two-way tables only) and a ``Total`` row.

    >>> t = pl.DataFrame({"district": ["D1", "D2", "D3"], "cases": [3, 50, 47]})
    >>> suppress_table(t, count_columns=["cases"], row_key="district").frame["cases"].to_list()
    [None, 50, None, 100]
    """
    count_columns = list(count_columns)
    if not count_columns:
        raise ValueError("suppress_table needs at least one count column")
    if row_key not in frame.columns:
        raise ValueError(f"row key {row_key!r} is not in the table (columns: {frame.columns})")
    if frame[row_key].null_count() or frame[row_key].n_unique() != frame.height:
        raise ValueError(f"row key {row_key!r} must be present and unique on every row")
    _check_counts(frame, count_columns)
    if total_label in count_columns:
        raise ValueError(f"a count column may not be called {total_label!r}")

    labels = [str(v) for v in frame[row_key].to_list()]
    if totals and total_label in labels:
        raise ValueError(f"a row is already labelled {total_label!r}; pass the table without totals")
    R, C = len(labels), len(count_columns)
    grid = [[int(v) for v in frame[c].to_list()] for c in count_columns]  # column-major
    values: dict[Cell, int] = {(i, j): grid[j][i] for i in range(R) for j in range(C)}
    for j in range(C):
        values[(R, j)] = sum(grid[j])
    if C > 1:
        for i in range(R):
            values[(i, C)] = sum(grid[j][i] for j in range(C))
        values[(R, C)] = sum(values[(R, j)] for j in range(C))
    lines, total_cells = table_lines(R, C)
    hidden = suppress_cells(values, lines, threshold=threshold, show_zero=show_zero,
                            total_cells=total_cells)

    out_labels = labels + ([total_label] if totals else [])
    columns = count_columns + ([total_label] if totals and C > 1 else [])
    n_out_rows = R + 1 if totals else R
    data: dict[str, list] = {row_key: out_labels}
    for j, name in enumerate(columns):
        data[name] = [None if (i, j) in hidden else values[(i, j)] for i in range(n_out_rows)]
    schema = {row_key: pl.String, **{name: pl.Int64 for name in columns}}
    published = pl.DataFrame(data, schema=schema)

    row_names = labels + [total_label]
    col_names = count_columns + [total_label]
    record = {(row_names[i], col_names[j]): why for (i, j), why in hidden.items()}
    return SuppressedTable(published, record, threshold, suppression_note(threshold, show_zero))


def suppress_long(frame: pl.DataFrame, *, count_column: str = "value",
                  label_column: str = "dimension_value", group_columns: Sequence[str] = (),
                  threshold: int = 10, show_zero: bool = True) -> pl.DataFrame:
    """Suppress the common long format: ``group..., dimension_value, count``.

    Within each group (e.g. metric, grain, period and dimension) the breakdown rows plus the
    total form one line. The total is the row whose label is null (as in the rollup frame);
    when a group has no such row, the sum of the group is taken as the known total.

    Returns the frame with hidden counts set to null and two columns added: ``suppressed``
    (bool) and ``suppression`` ("primary", "complementary" or null).
    """
    group_columns = list(group_columns)
    for name in [count_column, label_column, *group_columns]:
        if name not in frame.columns:
            raise ValueError(f"column {name!r} is not in the frame (columns: {frame.columns})")
    indexed = frame.with_row_index("__row")
    _check_counts(indexed.filter(pl.col(count_column).is_not_null()), [count_column])
    reasons: dict[int, str] = {}
    groups = indexed.group_by(group_columns, maintain_order=True) if group_columns else [((), indexed)]
    for _, part in groups:
        part_rows = part["__row"].to_list()
        counts = part[count_column].to_list()
        labels = part[label_column].to_list()
        values: dict[Cell, int] = {}
        line: list[Cell] = []
        total_cells: set[Cell] = set()
        total_seen = False
        for k, (count, label) in enumerate(zip(counts, labels)):
            if count is None:
                continue
            values[(k, 0)] = int(count)
            line.append((k, 0))
            if label is None:
                if total_seen:
                    raise ValueError(f"group has two total rows (null {label_column!r})")
                total_seen = True
                total_cells.add((k, 0))
        if not total_seen and len(line) > 1:
            virtual = (len(counts), 0)  # known to the reader, never published here
            values[virtual] = sum(values[c] for c in line)
            line.append(virtual)
            total_cells.add(virtual)
        hidden = suppress_cells(values, [line], threshold=threshold, show_zero=show_zero,
                                total_cells=total_cells)
        for (k, _), why in hidden.items():
            if k < len(part_rows):
                reasons[part_rows[k]] = why
    reason_col = pl.Series("suppression", [reasons.get(i) for i in range(frame.height)], dtype=pl.String)
    out = frame.with_columns(reason_col).with_columns(
        pl.col("suppression").is_not_null().alias("suppressed"))
    return out.with_columns(
        pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(count_column)).alias(count_column))


def suppress_rates(frame: pl.DataFrame, *, numerator: str = "numerator",
                   denominator: str = "denominator", rate: str | Sequence[str] = "value",
                   label_column: str = "dimension_value", group_columns: Sequence[str] = (),
                   threshold: int = 10, show_zero: bool = True) -> pl.DataFrame:
    """Suppress a long frame of rates: hide small numerators and denominators (with
    complementary suppression across each group's breakdown + total), then hide every rate
    whose numerator or denominator is hidden - otherwise rate x denominator gives the
    numerator back.

    Adds ``suppressed`` (the rate is hidden) and ``suppression`` (why, e.g.
    "numerator primary").
    """
    rate_columns = [rate] if isinstance(rate, str) else list(rate)
    for name in rate_columns:
        if name not in frame.columns:
            raise ValueError(f"rate column {name!r} is not in the frame (columns: {frame.columns})")
    num = suppress_long(frame, count_column=numerator, label_column=label_column,
                        group_columns=group_columns, threshold=threshold, show_zero=show_zero)
    den = suppress_long(frame, count_column=denominator, label_column=label_column,
                        group_columns=group_columns, threshold=threshold, show_zero=show_zero)
    reasons = []
    for n_why, d_why in zip(num["suppression"].to_list(), den["suppression"].to_list()):
        parts = ([f"numerator {n_why}"] if n_why else []) + ([f"denominator {d_why}"] if d_why else [])
        reasons.append("; ".join(parts) or None)
    out = frame.with_columns(
        num[numerator].alias(numerator),
        den[denominator].alias(denominator),
        pl.Series("suppression", reasons, dtype=pl.String),
    ).with_columns(pl.col("suppression").is_not_null().alias("suppressed"))
    return out.with_columns(
        [pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c) for c in rate_columns])

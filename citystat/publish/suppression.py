"""Small-cell suppression for public tables of counts about people.

Why: a count of 1..10 people (a child with lead poisoning in one district in one week) can
identify someone. Sources marked `sensitive` in the registry go through this module before
any public download or chart.

Threat model (the one this module is built and tested against). The reader knows:

- every cell and every total CityStat publishes, in every table, grain and breakdown of the
  same counts that is published side by side;
- the city-wide total of each table (the grand total of a two-way table, the total of each
  one-way breakdown), even when CityStat hides it: it is usually published elsewhere, e.g. as
  the city-wide KPI;
- that counts are non-negative whole numbers and that the parts of a table add up to its
  totals.

Guarantee (the protection rule). For every hidden cell holding 1..threshold (threshold 10 by
default), the interval of values the reader can work out for it from all of the above
contains 0 or a value above the threshold. Why this rule: the publishing rule itself shows 0
and shows counts above the threshold; what it protects is the fact "this cell holds 1 to
threshold people". When the reader's interval reaches 0 they cannot tell that anybody is
there; when it reaches above the threshold they cannot tell the count is small. Either way
what they know is also true of a table in which the cell would have been published. In
particular no hidden small cell can be pinned to an exact value. The city-wide total is
assumed known, so it is outside the guarantee (hidden when small, never counted as
protection), and so is the one cell of a breakdown with a single category (it *is* the
total).

Method:

1. **Primary suppression** - every count with ``1 <= count <= threshold`` is hidden, totals
   included. Zero may be shown (``show_zero=True``): "nobody" identifies nobody.
2. **Margins first** (two-way tables) - the row totals and the column totals each form a
   one-way line with the grand total. A line with exactly one hidden cell is solved by
   subtraction, so one more cell of the line is hidden: the smallest non-zero one (a zero only
   when nothing else is left; a zero shown next to a lone small cell gives it away: ``[4, 0,
   0]`` with total 4). This is the same rule as a one-way breakdown, so a series that equals
   the month totals of a table hides the same months.
3. **Complementary suppression** - the same rule on each row and each column (its cells plus
   its total), hiding interior cells; a total only when no interior cell is left. The city-
   wide total is never counted as hidden.
4. **Audit and repair** - `citystat.publish.audit` computes, by integer programming, the
   interval the reader gets for every hidden small cell. While some cell fails the rule, hide
   the smallest non-zero cell of its row or column that is still shown (an interior cell
   first; then any cell of the table), re-apply step 3 and audit again. Hiding a cell can only
   widen the reader's intervals, so a cell that passed stays passed and the loop ends (at
   worst everything but the city-wide total is hidden).

Every choice is ordered (margins last, non-zero before zero, smallest first, then position),
so the same table always gives the same publication.

Rates built on suppressed counts are hidden too (`suppress_rates`): a rate times its
denominator gives the numerator back.

Limits (say so when publishing): tables protected by separate calls are protected
separately. Two calls that publish the *same* counts (a public KPI series that equals a
table's month totals) hide the same ones because both apply the one-way rule above to them
(unless a last-resort repair had to hide a further margin), but other cross-table links
(weekly and monthly series of one count, which do not nest) are not audited together.

Everything here is pure: plain Polars in, plain Polars out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl

from citystat.publish.audit import exposed_cells, line_equations

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
                   total_cells: Iterable[Cell] = (), known_cells: Iterable[Cell] = ()) -> dict[Cell, str]:
    """Decide which cells to hide: returns ``{cell: "primary" | "complementary"}``.

    `values` maps every cell to its count; `lines` lists the additive equations, each written
    as its parts followed by its total (the last cell); `total_cells` are margins, used as
    complements only when nothing else is left; `known_cells` are cells the reader is assumed
    to know even when hidden (the city-wide total): they are hidden when small but never count
    as protection and are never chosen as complements. See the module docstring for the
    method and the guarantee, which `citystat.publish.audit` checks before this returns.
    """
    if threshold < 0:
        raise ValueError(f"suppression threshold must be >= 0, not {threshold}")
    for cell, count in values.items():
        if count is None or count < 0:
            raise ValueError(f"cell {cell} has count {count!r}: counts must be non-negative integers")
    totals = set(total_cells)
    known = set(known_cells)
    hidden: dict[Cell, str] = {
        cell: PRIMARY for cell, count in values.items() if is_primary(count, threshold, show_zero)}

    def complement_order(cell: Cell) -> tuple:
        # interior before margins, non-zero before zero, then smallest, then position
        count = values[cell]
        return (cell in totals, count == 0, count, cell)

    def close(some_lines: Sequence[Sequence[Cell]]) -> None:
        """Until no line has exactly one hidden (unknown) cell, hide one more in such a line."""
        changed = True
        while changed:
            changed = False
            for line in some_lines:
                if sum(1 for c in line if c in hidden and c not in known) != 1:
                    continue
                candidates = [c for c in line if c not in hidden and c not in known]
                if candidates:
                    hidden[min(candidates, key=complement_order)] = COMPLEMENTARY
                    changed = True

    margin_lines = [line for line in lines if all(c in totals for c in line)]
    inner_lines = [line for line in lines if not all(c in totals for c in line)]
    close(margin_lines)
    equations = line_equations(lines)
    lines_of: dict[Cell, list[Sequence[Cell]]] = {}
    for line in lines:
        for cell in line:
            lines_of.setdefault(cell, []).append(line)
    pending: list[Cell] | None = None   # None: audit every hidden small cell
    while True:
        close(inner_lines)
        pending = exposed_cells(values, equations, hidden, threshold=threshold, known=known,
                                cells=pending)
        if not pending:
            return hidden
        worst = pending[0]
        nearby = [c for line in lines_of.get(worst, []) for c in line
                  if c not in hidden and c not in known]
        anywhere = [c for c in values if c not in hidden and c not in known]
        if not (nearby or anywhere):
            return hidden   # everything is hidden: what is left is implied by the known totals
        hidden[min(nearby or anywhere, key=complement_order)] = COMPLEMENTARY


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

    Row and column totals are computed from the frame (never trusted from input) and, with
    ``totals=True``, included in the output as a ``Total`` column (two-way tables only) and a
    ``Total`` row, hidden where the rule says so. The grand total is assumed known to the
    reader even when hidden. ``totals=False`` leaves the margins out of the output but hides
    exactly the same cells, so the table stays safe for a reader who has the margins from
    elsewhere.

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
                            total_cells=total_cells, known_cells=[(R, C) if C > 1 else (R, 0)])

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

    Within each group (e.g. metric, grain, period and dimension) the breakdown rows form one
    line whose sum the reader is assumed to know (the city-wide figure). The row whose label
    is null (as in the rollup frame) is the published total: hidden when small, but never
    counted as protection. Groups that share a total (breakdowns of one period by district
    and by age) are independent once that total is known, so each is protected on its own.

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
        if sum(1 for label, count in zip(labels, counts) if label is None and count is not None) > 1:
            raise ValueError(f"group has two total rows (null {label_column!r})")
        values: dict[Cell, int] = {}
        parts: list[Cell] = []
        known: set[Cell] = set()
        for k, (count, label) in enumerate(zip(counts, labels)):
            if count is None:
                continue
            values[(k, 0)] = int(count)
            (known.add if label is None else parts.append)((k, 0))
        # The reader is assumed to know the sum of the breakdown (the city-wide figure); it is
        # the line's total whether or not a total row is published and whether or not that row
        # equals the sum (a breakdown may leave records out). A total row is then one more
        # cell: shown, or hidden when small, never counted as protection.
        line_total = (len(counts), 0)
        values[line_total] = sum(values[c] for c in parts)
        hidden = suppress_cells(values, [parts + [line_total]] if parts else [],
                                threshold=threshold, show_zero=show_zero,
                                total_cells={line_total}, known_cells=known | {line_total})
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

"""Small-cell suppression: hand-made tables where primary-only suppression leaks.

The leak checker below is written independently of the module: it rebuilds each row and
column equation from the published table (hidden cells as unknowns, margins as known) and
solves every equation with exactly one unknown, repeating until nothing more is solved.
"""

from __future__ import annotations

import random

import polars as pl
import pytest

from citystat.publish.suppression import (suppress_cells, suppress_long, suppress_rates,
                                          suppress_table, table_lines)


def solvable_by_subtraction(original: dict[tuple[int, int], int], hidden: set[tuple[int, int]],
                            n_rows: int, n_cols: int) -> dict[tuple[int, int], int]:
    """Independent reader's attack: returns {cell: recovered value} for a table with
    margins (row totals at column n_cols, column totals at row n_rows)."""
    equations = []
    if n_cols == 1:
        equations.append(([(i, 0) for i in range(n_rows)], (n_rows, 0)))
    else:
        for i in range(n_rows + 1):
            equations.append(([(i, j) for j in range(n_cols)], (i, n_cols)))
        for j in range(n_cols + 1):
            equations.append(([(i, j) for i in range(n_rows)], (n_rows, j)))
    known = {c: v for c, v in original.items() if c not in hidden}
    recovered = {}
    progress = True
    while progress:
        progress = False
        for parts, total in equations:
            cells = parts + [total]
            unknown = [c for c in cells if c not in known]
            if len(unknown) != 1:
                continue
            u = unknown[0]
            if u == total:
                value = sum(known[c] for c in parts)
            else:
                value = known[total] - sum(known[c] for c in parts if c != u)
            known[u] = value
            recovered[u] = value
            progress = True
    return recovered


def grid_of(frame: pl.DataFrame, columns: list[str]) -> dict[tuple[int, int], int | None]:
    return {(i, j): frame[c][i] for j, c in enumerate(columns) for i in range(frame.height)}


def with_margins(rows: list[list[int]]) -> dict[tuple[int, int], int]:
    R, C = len(rows), len(rows[0])
    cells = {(i, j): rows[i][j] for i in range(R) for j in range(C)}
    for i in range(R):
        cells[(i, C)] = sum(rows[i])
    for j in range(C + 1):
        cells[(R, j)] = sum(cells[(i, j)] for i in range(R))
    return cells


TWO_WAY = pl.DataFrame({
    "district": ["D1", "D2", "D3"],
    "under_5": [5, 30, 25],
    "age_5_17": [20, 40, 35],
})
# totals, worked by hand: rows 25, 70, 60; columns 60, 95; grand 155


def test_primary_only_leaks_from_row_total_two_way():
    original = with_margins([[5, 20], [30, 40], [25, 35]])
    assert original[(0, 2)] == 25 and original[(3, 0)] == 60 and original[(3, 2)] == 155
    naive_hidden = {(0, 0)}  # only the 5
    recovered = solvable_by_subtraction(original, naive_hidden, 3, 2)
    assert recovered == {(0, 0): 5}  # 25 - 20: the naive release leaks


def test_two_way_complementary_suppression_protects_and_matches_hand_result():
    result = suppress_table(TWO_WAY, count_columns=["under_5", "age_5_17"], row_key="district")
    # Worked by hand: D1/under_5 (5) is primary. Row D1 then has one hidden cell -> hide the
    # smallest other interior cell of that row, D1/age_5_17 (20). Column under_5 has one hidden
    # cell -> smallest other is D3 (25). Column age_5_17 has one -> smallest other is D3 (35).
    # Row D3 now has two. Every line has 0 or 2 hidden cells.
    assert result.primary == {("D1", "under_5")}
    assert result.complementary == {("D1", "age_5_17"), ("D3", "under_5"), ("D3", "age_5_17")}
    frame = result.frame
    assert frame["district"].to_list() == ["D1", "D2", "D3", "Total"]
    assert frame["under_5"].to_list() == [None, 30, None, 60]
    assert frame["age_5_17"].to_list() == [None, 40, None, 95]
    assert frame["Total"].to_list() == [25, 70, 60, 155]
    original = with_margins([[5, 20], [30, 40], [25, 35]])
    published = grid_of(frame, ["under_5", "age_5_17", "Total"])
    hidden = {c for c, v in published.items() if v is None}
    assert solvable_by_subtraction(original, hidden, 3, 2) == {}
    assert "hidden" in result.note


def test_one_way_table_primary_only_leaks_and_suppression_does_not():
    table = pl.DataFrame({"district": ["D1", "D2", "D3", "D4"], "cases": [3, 50, 47, 0]})
    original = {(0, 0): 3, (1, 0): 50, (2, 0): 47, (3, 0): 0, (4, 0): 100}
    assert solvable_by_subtraction(original, {(0, 0)}, 4, 1) == {(0, 0): 3}
    result = suppress_table(table, count_columns=["cases"], row_key="district")
    # the zero is shown (show_zero) and is not picked as the complement: 47 is
    assert result.frame["cases"].to_list() == [None, 50, None, 0, 100]
    assert "Total" not in result.frame.columns  # a one-way table has no row-total column
    hidden = {(i, 0) for i, v in enumerate(result.frame["cases"].to_list()) if v is None}
    assert solvable_by_subtraction(original, hidden, 4, 1) == {}


def test_small_total_is_hidden_and_its_line_protected():
    # column "b" totals 7: the total itself is a small count
    table = pl.DataFrame({"k": ["x", "y", "z"], "a": [40, 50, 60], "b": [0, 3, 4]})
    result = suppress_table(table, count_columns=["a", "b"], row_key="k")
    assert ("Total", "b") in result.primary
    assert ("y", "b") in result.primary and ("z", "b") in result.primary
    published = grid_of(result.frame, ["a", "b", "Total"])
    hidden = {c for c, v in published.items() if v is None}
    original = with_margins([[40, 0], [50, 3], [60, 4]])
    assert solvable_by_subtraction(original, hidden, 3, 2) == {}
    # published cells are the true values
    assert all(original[c] == v for c, v in published.items() if v is not None)


def test_threshold_and_show_zero_are_configurable():
    table = pl.DataFrame({"k": ["a", "b", "c", "d"], "n": [0, 4, 12, 30]})
    loose = suppress_table(table, count_columns=["n"], row_key="k", threshold=3)
    assert loose.frame["n"].to_list() == [0, 4, 12, 30, 46]
    strict = suppress_table(table, count_columns=["n"], row_key="k", threshold=12, show_zero=False)
    # 0, 4 and 12 are all primary; the line then has 3 hidden cells: nothing more needed
    assert strict.frame["n"].to_list() == [None, None, None, 30, 46]
    assert strict.complementary == set()


def test_totals_false_still_protects_against_known_margins():
    result = suppress_table(TWO_WAY, count_columns=["under_5", "age_5_17"], row_key="district",
                            totals=False)
    assert result.frame["district"].to_list() == ["D1", "D2", "D3"]
    assert "Total" not in result.frame.columns
    assert result.frame["under_5"].to_list() == [None, 30, None]


@pytest.mark.parametrize("seed", range(40))
def test_random_tables_never_leak(seed):
    rng = random.Random(seed)
    R, C = rng.randint(2, 6), rng.randint(1, 5)
    rows = [[rng.choice([0, 1, 2, 5, 9, 10, 11, 14, 30, 80, 200]) for _ in range(C)] for _ in range(R)]
    frame = pl.DataFrame({"k": [f"r{i}" for i in range(R)], **{f"c{j}": [r[j] for r in rows] for j in range(C)}})
    cols = [f"c{j}" for j in range(C)]
    result = suppress_table(frame, count_columns=cols, row_key="k")
    out_cols = cols + (["Total"] if C > 1 else [])
    published = grid_of(result.frame, out_cols)
    original = with_margins(rows) if C > 1 else {**{(i, 0): rows[i][0] for i in range(R)},
                                                  (R, 0): sum(r[0] for r in rows)}
    hidden = {c for c, v in published.items() if v is None}
    assert solvable_by_subtraction(original, hidden, R, C) == {}
    for cell, value in published.items():
        if value is not None:
            assert value == original[cell]
            assert value == 0 or value > 10  # nothing small is ever shown


def test_line_check_helper_agrees_with_core():
    lines, totals = table_lines(2, 2)
    values = {(0, 0): 3, (0, 1): 40, (1, 0): 50, (1, 1): 60, (0, 2): 43, (1, 2): 110,
              (2, 0): 53, (2, 1): 100, (2, 2): 153}
    hidden = suppress_cells(values, lines, total_cells=totals)
    assert set(hidden) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="'n'.*negative"):
        suppress_table(pl.DataFrame({"k": ["a"], "n": [-1]}), count_columns=["n"], row_key="k")
    with pytest.raises(ValueError, match="row key 'k'.*unique"):
        suppress_table(pl.DataFrame({"k": ["a", "a"], "n": [1, 2]}), count_columns=["n"], row_key="k")
    with pytest.raises(ValueError, match="'m' is not in the table"):
        suppress_table(pl.DataFrame({"k": ["a"], "n": [1]}), count_columns=["m"], row_key="k")


def test_long_format_with_null_total_row():
    frame = pl.DataFrame({
        "period_start": ["2026-10-01"] * 4 + ["2026-11-01"] * 4,
        "dimension_value": [None, "D1", "D2", "D3"] * 2,
        "value": [100, 3, 50, 47, 100, 20, 40, 40],
    })
    out = suppress_long(frame, group_columns=["period_start"])
    assert out["value"].to_list() == [100, None, 50, None, 100, 20, 40, 40]
    assert out["suppression"].to_list()[:4] == [None, "primary", None, "complementary"]
    assert out["suppressed"].to_list()[4:] == [False] * 4


def test_rates_hidden_when_numerator_or_denominator_hidden():
    # lead follow-up by district: numerator = followed up, denominator = elevated tests
    frame = pl.DataFrame({
        "dimension_value": [None, "D1", "D2", "D3"],
        "numerator": [90, 8, 40, 42],
        "denominator": [120, 12, 50, 58],
        "value": [0.75, 8 / 12, 0.8, 42 / 58],
    })
    out = suppress_rates(frame)
    # numerator: 8 primary -> complement 40 (smallest other); denominator: all > 10, shown.
    assert out["numerator"].to_list() == [90, None, None, 42]
    assert out["denominator"].to_list() == [120, 12, 50, 58]
    assert out["value"].to_list() == [0.75, None, None, pytest.approx(42 / 58)]
    assert out["suppression"].to_list() == [None, "numerator primary", "numerator complementary", None]
    # the shown rate x shown denominator never gives back a hidden numerator
    for n, d, r in zip(out["numerator"], out["denominator"], out["value"]):
        assert r is None or (n is not None and d is not None)

    small_den = frame.with_columns(pl.Series("denominator", [120, 9, 53, 58]))
    out2 = suppress_rates(small_den)
    assert out2["value"][1] is None and "denominator primary" in out2["suppression"][1]


def test_float_counts_from_rollups_are_accepted_but_checked():
    frame = pl.DataFrame({"dimension_value": [None, "D1", "D2", "D3"], "value": [100.0, 3.0, 50.0, 47.0]})
    assert suppress_long(frame)["value"].to_list() == [100.0, None, 50.0, None]
    with pytest.raises(ValueError, match="whole numbers"):
        suppress_long(frame.with_columns(pl.Series("value", [1.0, 0.5, 0.25, 0.25])))
    with pytest.raises(ValueError, match="negative"):
        suppress_long(frame.with_columns(pl.Series("value", [100.0, -3.0, 50.0, 53.0])))

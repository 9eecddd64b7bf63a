"""Small-cell suppression against the reader of its threat model: an integer-programming audit.

The reader knows every published cell and total, the city-wide (grand) total even when it is
hidden, and that counts are non-negative whole numbers. For each hidden cell they can work out
an interval (min and max over every table consistent with that); the protection rule says the
interval of a hidden cell holding 1..10 must reach 0 or go above 10.

`reader_interval` below is this file's own auditor: it reads the *published frame* (None where
hidden), writes the table's equations from scratch and asks `scipy.optimize.milp` for the min
and the max. It shares no code with `citystat.publish.audit` (which the product uses to check
itself); both are checked against hand-worked tables and a brute-force enumeration here.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import polars as pl
from scipy.optimize import Bounds, LinearConstraint, milp

from citystat.publish.audit import feasible_intervals, line_equations
from citystat.publish.suppression import suppress_long, suppress_rates, suppress_table, table_lines

T = 10


# --- the test's own reader ---------------------------------------------------------------------

def two_way_system(published: list[list[int | None]], grand_total: int):
    """Unknowns and equations of a published two-way table with its Total column and row.

    `published` is (R+1) x (C+1): the interior, then the row totals in the last column and
    the column totals in the last row; the grand total (bottom right) is given as known.
    Returns (unknown cells, A, b) with A x = b.
    """
    grid = [list(row) for row in published]
    grid[-1][-1] = grand_total
    R, C = len(grid) - 1, len(grid[0]) - 1
    unknown = [(i, j) for i in range(R + 1) for j in range(C + 1) if grid[i][j] is None]
    position = {cell: k for k, cell in enumerate(unknown)}
    equations = [([(i, j) for j in range(C)], (i, C)) for i in range(R + 1)]
    equations += [([(i, j) for i in range(R)], (R, j)) for j in range(C + 1)]
    a, b = [], []
    for parts, total in equations:
        row = np.zeros(len(unknown))
        rhs = 0.0
        for cell, sign in [(c, 1.0) for c in parts] + [(total, -1.0)]:
            if cell in position:
                row[position[cell]] += sign
            else:
                rhs -= sign * grid[cell[0]][cell[1]]
        if row.any():
            a.append(row)
            b.append(rhs)
    return unknown, np.array(a).reshape(len(a), len(unknown)), np.array(b)


def one_way_system(published: list[int | None], total: int):
    """A one-way breakdown: the hidden parts add up to the known total minus the shown ones."""
    unknown = [(i, 0) for i, v in enumerate(published) if v is None]
    rest = total - sum(v for v in published if v is not None)
    return unknown, np.ones((1, len(unknown))), np.array([float(rest)])


def reader_interval(system, cell) -> tuple[int, int]:
    unknown, a, b = system
    k = unknown.index(cell)
    out = []
    for sign in (1.0, -1.0):
        c = np.zeros(len(unknown))
        c[k] = sign
        result = milp(c, constraints=LinearConstraint(a, b, b), integrality=np.ones(len(unknown)),
                      bounds=Bounds(0, np.inf))
        assert result.status == 0, result.message
        out.append(round(result.x[k]))
    return out[0], out[1]


def reader_can_rule_out_small(system, cell) -> bool:
    """The protection rule, cheaply: can the cell be 0? If not, can it exceed the threshold?"""
    unknown, a, b = system
    k = unknown.index(cell)
    for sign, ok in ((1.0, lambda v: v == 0), (-1.0, lambda v: v > T)):
        c = np.zeros(len(unknown))
        c[k] = sign
        result = milp(c, constraints=LinearConstraint(a, b, b), integrality=np.ones(len(unknown)),
                      bounds=Bounds(0, np.inf))
        assert result.status == 0, result.message
        if ok(round(result.x[k])):
            return True
    return False


def protected(interval: tuple[int, int]) -> bool:
    return interval[0] == 0 or interval[1] > T


def brute_force_interval(system, cell, limit: int) -> tuple[int, int]:
    """Every non-negative integer assignment up to `limit`: slow, obviously right, tiny tables."""
    unknown, a, b = system
    k = unknown.index(cell)
    points = np.array(list(itertools.product(range(limit + 1), repeat=len(unknown))), dtype=float)
    feasible = points[np.all(np.abs(points @ a.T - b) < 1e-9, axis=1)]
    return int(feasible[:, k].min()), int(feasible[:, k].max())


def published_grid(frame: pl.DataFrame) -> list[list[int | None]]:
    return [list(row) for row in frame.drop(frame.columns[0]).rows()]


def with_margins(rows: list[list[int]]) -> list[list[int]]:
    full = [list(r) + [sum(r)] for r in rows]
    full.append([sum(col) for col in zip(*full)])
    return full


def table_frame(rows: list[list[int]]) -> pl.DataFrame:
    return pl.DataFrame({"k": [f"r{i}" for i in range(len(rows))],
                         **{f"c{j}": [r[j] for r in rows] for j in range(len(rows[0]))}})


def suppress_rows(rows: list[list[int]]):
    return suppress_table(table_frame(rows), count_columns=[f"c{j}" for j in range(len(rows[0]))],
                          row_key="k")


def audit_two_way(rows: list[list[int]], frame: pl.DataFrame, *,
                  full: bool = True) -> dict[tuple[int, int], tuple[int, int] | bool]:
    """Checks a published two-way table (published cells true, none of them small) and returns,
    for each hidden small cell, the reader's interval (or, with ``full=False``, whether the
    protection rule holds)."""
    truth = with_margins(rows)
    grid = published_grid(frame)
    R, C = len(rows), len(rows[0])
    intervals = {}
    system = two_way_system(grid, truth[R][C])
    for i in range(R + 1):
        for j in range(C + 1):
            value = grid[i][j]
            if value is not None:
                assert value == truth[i][j], "a published cell must be the true count"
                assert not 1 <= value <= T, f"small count {value} published at {(i, j)}"
            elif 1 <= truth[i][j] <= T and (i, j) != (R, C):
                intervals[(i, j)] = (reader_interval(system, (i, j)) if full
                                     else reader_can_rule_out_small(system, (i, j)))
    return intervals


# --- the reader itself, against hand-worked tables ---------------------------------------------

def test_reader_pins_a_lone_cell_next_to_shown_zeros():
    # [4, 0, 0] with total 4 and only the 4 hidden: 4 - 0 - 0 = 4
    assert reader_interval(one_way_system([None, 0, 0], 4), (0, 0)) == (4, 4)
    # hide one zero as well: D1 + D2 = 4, so D1 can be anything from 0 to 4
    assert reader_interval(one_way_system([None, None, 0], 4), (0, 0)) == (0, 4)


def test_reader_recovers_the_issue_four_by_five_cell_from_the_old_pattern():
    # The line-by-line rule published this (None = hidden). By hand: row r2 gives
    # r2c0 + r2c2 = 76-36-17-15 = 8, row r3 gives r3c0 + r3c2 = 161-51-30-49 = 31, column c2
    # gives r2c2 + r3c2 = 114-57-33 = 24, so r2c0 + r3c0 = 15 and column c0 gives
    # r0c0 = 63 - 46 - 15 = 2.
    old = [[None, 48, 57, None, None, 126],
           [46, 0, 33, None, None, 90],
           [None, 36, None, 17, 15, 76],
           [None, 51, None, 30, 49, 161],
           [63, 135, 114, 72, 69, None]]
    system = two_way_system(old, 453)
    assert reader_interval(system, (0, 0)) == (2, 2)


def test_reader_recovers_the_issue_three_by_three_cell_from_the_old_pattern():
    # [[1,44,5],[0,1,0],[1,20,0]]: row totals 50, 1, 21; column totals 2, 65, 5; grand 72.
    # By hand: r1T + r2T = 72 - 50 = 22, r1c1 + r2c1 = 65 - 44 = 21, r1T = r1c1 (the zeros of
    # row r1 are shown), so r2c0 = r2T - r2c1 = (22 - r1T) - (21 - r1c1) = 1.
    old = [[None, 44, None, 50],
           [0, None, 0, None],
           [None, None, 0, None],
           [None, 65, None, None]]
    assert reader_interval(two_way_system(old, 72), (2, 0)) == (1, 1)


def test_reader_matches_hand_work_and_brute_force_on_a_rectangle():
    # [[5, 1], [2, 3]] with all four cells hidden and the margins shown (rows 6, 5; columns
    # 7, 4; grand 11). By hand: x00 = 5 + t, x01 = 1 - t, x10 = 2 - t, x11 = 3 + t with
    # -3 <= t <= 1, so x00 is in [2, 6], x01 in [0, 4], x10 in [1, 5], x11 in [0, 4].
    grid = [[None, None, 6], [None, None, 5], [7, 4, None]]
    system = two_way_system(grid, 11)
    expected = {(0, 0): (2, 6), (0, 1): (0, 4), (1, 0): (1, 5), (1, 1): (0, 4)}
    for cell, interval in expected.items():
        assert reader_interval(system, cell) == interval
        assert brute_force_interval(system, cell, 11) == interval
    # x00 holds 5 and the reader knows it is between 2 and 6: pinned inside 1..10
    assert not protected(expected[(0, 0)])


def test_product_auditor_agrees_with_hand_worked_intervals():
    # the same rectangle through citystat.publish.audit's own formulation
    values = {(0, 0): 5, (0, 1): 1, (1, 0): 2, (1, 1): 3, (0, 2): 6, (1, 2): 5,
              (2, 0): 7, (2, 1): 4, (2, 2): 11}
    lines, _ = table_lines(2, 2)
    hidden = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)}
    got = feasible_intervals(values, line_equations(lines), hidden, known={(2, 2)})
    assert got == {(0, 0): (2, 6), (0, 1): (0, 4), (1, 0): (1, 5), (1, 1): (0, 4)}
    # and the one-way [4, 0, 0] cases (the total is cell 3)
    values = {(0, 0): 4, (1, 0): 0, (2, 0): 0, (3, 0): 4}
    line = [[(0, 0), (1, 0), (2, 0), (3, 0)]]
    assert feasible_intervals(values, line_equations(line), {(0, 0), (3, 0)}, known={(3, 0)}) == \
        {(0, 0): (4, 4)}
    assert feasible_intervals(values, line_equations(line), {(0, 0), (1, 0)}, known={(3, 0)}) == \
        {(0, 0): (0, 4), (1, 0): (0, 4)}


# --- the product against the reader: the issue's tables --------------------------------------

def test_lone_small_cell_next_to_zeros_is_protected_in_long_format():
    frame = pl.DataFrame({"dimension_value": [None, "D1", "D2", "D3"], "value": [4, 4, 0, 0]})
    out = suppress_long(frame)
    # the total (4) is small: hidden, but the reader knows it anyway. D1 is primary; the only
    # cells left are zeros, so the first one (D2) is hidden with it; D3 = 0 may be shown.
    assert out["value"].to_list() == [None, None, None, 0]
    assert out["suppression"].to_list() == ["primary", "primary", "complementary", None]
    assert reader_interval(one_way_system(out["value"].to_list()[1:], 4), (0, 0)) == (0, 4)


def test_issue_four_by_five_table_is_protected():
    rows = [[2, 48, 57, 15, 4], [46, 0, 33, 10, 1], [7, 36, 1, 17, 15], [8, 51, 23, 30, 49]]
    result = suppress_rows(rows)
    intervals = audit_two_way(rows, result.frame)
    assert set(intervals) == {(0, 0), (0, 4), (1, 3), (1, 4), (2, 0), (2, 2), (3, 0)}
    assert all(protected(iv) for iv in intervals.values()), intervals
    grid = published_grid(result.frame)
    # hidden by hand-checked pattern: all of column c0 (46 joins the three small ones), and
    # then by hand: row r0 gives r0c0 + r0c3 + r0c4 = 21, columns c3 and c4 give
    # r0c3 + r1c3 + r0c4 + r1c4 = 30, row r1 gives r1c0 = 48 - r0c0, column c0 then holds for
    # any r0c0 in 0..21.
    assert [grid[i][0] for i in range(4)] == [None] * 4
    assert intervals[(0, 0)] == (0, 21)


def test_issue_three_by_three_table_is_protected():
    rows = [[1, 44, 5], [0, 1, 0], [1, 20, 0]]
    result = suppress_rows(rows)
    intervals = audit_two_way(rows, result.frame)
    # small cells: r0c0, r0c2, r1c1, r2c0 and the margins r1T = 1, c0T = 2, c2T = 5
    assert set(intervals) == {(0, 0), (0, 2), (1, 1), (2, 0), (1, 3), (3, 0), (3, 2)}
    assert all(protected(iv) for iv in intervals.values()), intervals
    assert intervals[(2, 0)][0] == 0   # the old pattern pinned it to 1


# --- the product against the reader: hundreds of random tables --------------------------------

CELL_CHOICES = [0, 0, 0, 1, 2, 3, 5, 8, 10, 11, 12, 15, 25, 40, 80, 150]


def random_rows(rng: random.Random, R: int, C: int) -> list[list[int]]:
    return [[rng.choice(CELL_CHOICES) for _ in range(C)] for _ in range(R)]


def test_random_two_way_tables_survive_the_audit():
    rng = random.Random(20260415)
    tables = hidden_small = 0
    for _ in range(250):
        rows = random_rows(rng, rng.randint(2, 6), rng.randint(2, 6))
        verdicts = audit_two_way(rows, suppress_rows(rows).frame, full=False)
        exposed = [cell for cell, ok in verdicts.items() if not ok]
        assert not exposed, (rows, exposed)
        tables += 1
        hidden_small += len(verdicts)
    assert tables == 250 and hidden_small > 500      # the audit really looked at small cells


def test_random_one_way_breakdowns_survive_the_audit():
    rng = random.Random(7)
    checked = 0
    for _ in range(250):
        n_groups = rng.randint(1, 3)
        records = []
        truth = {}
        for g in range(n_groups):
            counts = [rng.choice(CELL_CHOICES) for _ in range(rng.randint(2, 8))]
            with_total = rng.random() < 0.5
            if with_total:
                records.append((g, None, sum(counts)))
            records += [(g, f"D{k}", v) for k, v in enumerate(counts)]
            truth[g] = counts
        frame = pl.DataFrame(records, schema=["period", "dimension_value", "value"], orient="row")
        out = suppress_long(frame, group_columns=["period"])
        for g, counts in truth.items():
            part = out.filter((pl.col("period") == g) & pl.col("dimension_value").is_not_null())
            shown = part["value"].to_list()
            total_row = out.filter((pl.col("period") == g) & pl.col("dimension_value").is_null())
            for value in total_row["value"].to_list() + shown:
                assert value is None or not 1 <= value <= T
            assert [v for v in shown if v is not None] == [c for c, v in zip(counts, shown) if v is not None]
            system = one_way_system(shown, sum(counts))
            for k, (value, count) in enumerate(zip(shown, counts)):
                if value is None and 1 <= count <= T:
                    assert reader_can_rule_out_small(system, (k, 0)), (counts, shown)
                    checked += 1
    assert checked > 300


def test_rates_on_hidden_counts_are_hidden():
    rng = random.Random(3)
    for _ in range(60):
        n = rng.randint(2, 6)
        den = [rng.choice([0, 4, 9, 12, 30, 80]) for _ in range(n)]
        num = [rng.randint(0, d) for d in den]
        frame = pl.DataFrame({"dimension_value": [f"D{k}" for k in range(n)], "numerator": num,
                              "denominator": den,
                              "value": [x / d if d else None for x, d in zip(num, den)]})
        out = suppress_rates(frame)
        for x, d, r in zip(out["numerator"], out["denominator"], out["value"]):
            if x is None or d is None:
                assert r is None
            for count in (x, d):
                assert count is None or not 1 <= count <= T

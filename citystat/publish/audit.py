"""What a reader can work out about the hidden cells of a published table.

Why: a cell is only hidden if the reader cannot recover it, or narrow it down to the range the
publishing rule forbids showing, from what is published. A reader who knows every published
cell, the totals it is told (or assumes), and that counts are non-negative whole numbers knows
exactly one thing about the hidden cells: they are a non-negative integer solution of the
table's additive equations with the published values filled in. The smallest and largest value
a hidden cell takes over all such solutions is everything the reader can learn about it. This
module computes that interval, so that `suppression` can check its own output against the
strongest reader of its threat model instead of trusting a rule of thumb.

How: the hidden cells that share an equation form connected groups, solved separately. A group
held by a single equation whose hidden cells all sit on the same side (``x1 + ... + xk = s``)
has the exact answer ``[0, s]`` for every cell when ``k >= 2`` (each other cell can take all of
``s``) and ``[s, s]`` when ``k == 1``. Every other group is solved with ``scipy.optimize.milp``
(HiGHS): minimise and maximise the cell subject to the equations, ``x >= 0`` and ``x`` integer.

An equation is ``(parts, total)``: the parts add up to the total. Cells are any hashable keys.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

Equation = tuple[Sequence[Hashable], Hashable]


def line_equations(lines: Iterable[Sequence[Hashable]]) -> list[Equation]:
    """Equations of lines written parts first, total last (the convention of `suppression`)."""
    return [(list(line[:-1]), line[-1]) for line in lines if len(line) >= 2]


def is_protected(interval: tuple[float, float], threshold: int) -> bool:
    """The protection rule: the reader cannot tell that the cell holds 1..threshold.

    True when what is published is consistent with the cell being 0 (nobody) or being more
    than `threshold` (a count the rule would have published anyway).
    """
    low, high = interval
    return low <= 0 or high > threshold


def _ordered(cells: Iterable[Hashable]) -> list[Hashable]:
    """Cells in a fixed order (natural when comparable), so every run audits alike."""
    unique = set(cells)
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=repr)


class _System:
    """The equations restricted to the hidden cells, split into independent groups."""

    def __init__(self, values: Mapping[Hashable, int], equations: Sequence[Equation],
                 unknown: Iterable[Hashable]):
        self.unknown = _ordered(unknown)
        index = {cell: k for k, cell in enumerate(self.unknown)}
        self.index = index
        rows: list[tuple[dict[int, int], int]] = []
        for parts, total in equations:
            coefficients: dict[int, int] = {}
            constant = 0
            for cell, sign in [(c, 1) for c in parts] + [(total, -1)]:
                if cell in index:
                    coefficients[index[cell]] = coefficients.get(index[cell], 0) + sign
                else:
                    constant += sign * int(values[cell])
            coefficients = {k: a for k, a in coefficients.items() if a}
            if coefficients:
                rows.append((coefficients, -constant))
        self.rows = rows
        parent = list(range(len(self.unknown)))

        def find(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for coefficients, _ in rows:
            first, *rest = coefficients
            for k in rest:
                parent[find(k)] = find(first)
        self.group_of = [find(k) for k in range(len(self.unknown))]
        self.group_rows: dict[int, list[int]] = {}
        for r, (coefficients, _) in enumerate(rows):
            self.group_rows.setdefault(self.group_of[next(iter(coefficients))], []).append(r)
        self._matrices: dict[int, tuple] = {}

    def _matrix(self, group: int):
        if group not in self._matrices:
            members = [k for k in range(len(self.unknown)) if self.group_of[k] == group]
            position = {k: p for p, k in enumerate(members)}
            row_ids = self.group_rows.get(group, [])
            a = np.zeros((len(row_ids), len(members)))
            b = np.zeros(len(row_ids))
            for i, r in enumerate(row_ids):
                coefficients, rhs = self.rows[r]
                for k, coefficient in coefficients.items():
                    a[i, position[k]] = coefficient
                b[i] = rhs
            self._matrices[group] = (members, position, a, b)
        return self._matrices[group]

    def bound(self, cell: Hashable, upper: bool) -> float:
        """The smallest (or largest) value the hidden `cell` can take; ``inf`` if unbounded."""
        k = self.index[cell]
        group = self.group_of[k]
        row_ids = self.group_rows.get(group, [])
        if not row_ids:
            return math.inf if upper else 0
        if len(row_ids) == 1:
            coefficients, rhs = self.rows[row_ids[0]]
            signs = set(coefficients.values())
            if len(signs) == 1 and abs(next(iter(signs))) == 1:
                total = rhs * next(iter(signs))          # x1 + ... + xk = total
                if len(coefficients) == 1:
                    return total
                return total if upper else 0
        members, position, a, b = self._matrix(group)
        objective = np.zeros(len(members))
        objective[position[k]] = -1.0 if upper else 1.0
        result = milp(objective, constraints=LinearConstraint(a, b, b),
                      integrality=np.ones(len(members)), bounds=Bounds(0, np.inf))
        if result.status == 3 or (result.status != 0 and upper and result.x is None):
            return math.inf
        if result.status != 0 or result.x is None:
            raise RuntimeError(f"the audit of cell {cell!r} failed: {result.message} "
                               "(the published values do not satisfy the table's equations)")
        return round(result.x[position[k]])


def feasible_intervals(values: Mapping[Hashable, int], equations: Sequence[Equation],
                       hidden: Iterable[Hashable], *, known: Iterable[Hashable] = (),
                       cells: Iterable[Hashable] | None = None) -> dict[Hashable, tuple[float, float]]:
    """``{cell: (min, max)}`` for hidden cells, as the reader can work them out.

    `values` holds the true count of every cell; the reader sees those not in `hidden`, plus
    those in `known` (e.g. the city-wide total, assumed known even when not published).
    `cells` limits the answer to some hidden cells (default: every hidden, unknown cell).
    """
    known = set(known)
    unknown = [c for c in hidden if c not in known]
    system = _System(values, equations, unknown)
    wanted = unknown if cells is None else [c for c in cells if c in system.index]
    return {c: (system.bound(c, upper=False), system.bound(c, upper=True)) for c in wanted}


def exposed_cells(values: Mapping[Hashable, int], equations: Sequence[Equation],
                  hidden: Iterable[Hashable], *, threshold: int, known: Iterable[Hashable] = (),
                  cells: Iterable[Hashable] | None = None) -> list[Hashable]:
    """Hidden cells holding 1..threshold that the reader can pin inside 1..threshold.

    Checks the lower bound first: most hidden cells can be 0, and then the upper bound is not
    needed. `cells` limits the check (default: every hidden, unknown small cell).
    """
    known = set(known)
    unknown = [c for c in hidden if c not in known]
    system = _System(values, equations, unknown)
    candidates = unknown if cells is None else [c for c in cells if c in system.index]
    out = []
    for cell in _ordered(candidates):
        if not 1 <= values[cell] <= threshold:
            continue
        if system.bound(cell, upper=False) <= 0:
            continue
        if system.bound(cell, upper=True) > threshold:
            continue
        out.append(cell)
    return out

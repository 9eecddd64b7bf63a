"""Explore: notebook-style analyst SQL over the registered extracts.

A notebook is a list of cells; a cell is a plain dict (so it can live in
`st.session_state` and be saved as JSON in the state store):

    {"id": "c1a2b3", "title": "", "sql": "SELECT ...", "chart": {"mark": "line", "x": ..., "y": ..., "colour": ...}}

The functions here are pure list operations (add, edit, move, remove) plus `run_cell`, which
runs one cell's SQL read-only with a row limit and a time limit. The sandbox itself lives in
`citystat.kpis.engine` (one SELECT guard, external access off except the extract folders, configuration locked);
this module adds the one-SELECT rule's friendly messages and the time limit.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

import altair as alt
import polars as pl

from citystat.kpis.engine import Engine, QueryError, period_sql, read_only_sql

DEFAULT_ROW_LIMIT = 5_000
DEFAULT_TIME_LIMIT = 30.0
MARKS = ("line", "bar", "point", "area")
NO_CHART = "none"
CHART_KEYS = ("mark", "x", "y", "colour")
# Parameters a cell may use; the same ones a SQL-file metric gets, so a cell can be promoted as is.
CELL_PARAMETERS = ("grain", "start", "end", "fy_start_month")


class ExploreError(Exception):
    """A cell could not run; `message` is what the analyst sees next to the cell."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


# ---- the cells model ------------------------------------------------------------------------

def new_cell(sql: str = "", *, title: str = "", mark: str = NO_CHART, x: str | None = None,
             y: str | None = None, colour: str | None = None) -> dict:
    """A fresh cell with a short random id (ids keep widget keys stable when cells move)."""
    return {"id": uuid.uuid4().hex[:8], "title": title, "sql": sql,
            "chart": {"mark": mark, "x": x, "y": y, "colour": colour}}


def add_cell(cells: list[dict], sql: str = "", after: str | None = None) -> list[dict]:
    """A new list with an empty cell at the end (or just after the cell `after`)."""
    cell = new_cell(sql)
    if after is None:
        return [*cells, cell]
    index = _index(cells, after)
    return [*cells[:index + 1], cell, *cells[index + 1:]]


def update_cell(cells: list[dict], cell_id: str, **changes: Any) -> list[dict]:
    """A new list where one cell has new `sql`, `title` or chart settings (`mark`, `x`, `y`, `colour`)."""
    index = _index(cells, cell_id)
    cell = {**cells[index], "chart": dict(cells[index]["chart"])}
    for key, value in changes.items():
        if key in ("sql", "title"):
            cell[key] = str(value)
        elif key in CHART_KEYS:
            cell["chart"][key] = value
        else:
            raise ValueError(f"a cell has no setting {key!r} (known: sql, title, {', '.join(CHART_KEYS)})")
    return [*cells[:index], cell, *cells[index + 1:]]


def move_cell(cells: list[dict], cell_id: str, offset: int) -> list[dict]:
    """A new list with the cell moved `offset` places (-1 = up); clamped at the ends."""
    index = _index(cells, cell_id)
    target = max(0, min(len(cells) - 1, index + offset))
    rest = [c for c in cells if c["id"] != cell_id]
    return [*rest[:target], cells[index], *rest[target:]]


def remove_cell(cells: list[dict], cell_id: str) -> list[dict]:
    _index(cells, cell_id)
    return [c for c in cells if c["id"] != cell_id]


def _index(cells: list[dict], cell_id: str) -> int:
    for index, cell in enumerate(cells):
        if cell["id"] == cell_id:
            return index
    raise KeyError(f"no cell {cell_id!r} in this notebook")


def normalise_cells(raw: Any) -> list[dict]:
    """Cells loaded from the store (or a file), checked and completed; bad input names the cell."""
    if not isinstance(raw, list):
        raise ValueError(f"a notebook's cells must be a list, got {type(raw).__name__}")
    cells, seen = [], set()
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("sql", ""), str):
            raise ValueError(f"cell {number}: must be a mapping with a text 'sql'")
        chart = item.get("chart") or {}
        if not isinstance(chart, dict):
            raise ValueError(f"cell {number}: 'chart' must be a mapping")
        mark = chart.get("mark") or NO_CHART
        if mark not in (NO_CHART, *MARKS):
            raise ValueError(f"cell {number}: unknown chart mark {mark!r} (known: {', '.join(MARKS)})")
        cell_id = str(item.get("id") or uuid.uuid4().hex[:8])
        if cell_id in seen:
            cell_id = uuid.uuid4().hex[:8]
        seen.add(cell_id)
        cells.append({"id": cell_id, "title": str(item.get("title") or ""), "sql": item.get("sql", ""),
                      "chart": {"mark": mark, **{k: chart.get(k) for k in ("x", "y", "colour")}}})
    return cells


def export_sql(cells: Iterable[dict], name: str = "notebook") -> str:
    """The notebook as one .sql file: each cell's query, titled and separated, in order."""
    lines = [f"-- CityStat Explore notebook: {name}",
             "-- Cells may use $grain, $start, $end and $fy_start_month (bound when run).", ""]
    for number, cell in enumerate(cells, start=1):
        title = cell.get("title") or f"Cell {number}"
        lines.append(f"-- [{number}] {title}")
        chart = cell.get("chart") or {}
        if chart.get("mark") and chart["mark"] != NO_CHART:
            lines.append(f"-- chart: {chart['mark']} x={chart.get('x')} y={chart.get('y')} colour={chart.get('colour')}")
        body = cell.get("sql", "").strip().rstrip(";")
        lines.append((body + ";") if body else "-- (empty)")
        lines.append("")
    return "\n".join(lines)


# ---- running a cell -------------------------------------------------------------------------

@dataclass
class CellResult:
    """What a run produced: a frame (at most `row_limit` rows) or the error to show beside the cell."""

    frame: pl.DataFrame | None = None
    error: str | None = None
    truncated: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


WRITE_HINT = ("Explore is read-only: only one SELECT (or WITH ... SELECT) may run here; "
              "{kind} statements are refused.")


def check_read_only(engine: Engine, sql: str) -> str:
    """The cell's single SELECT without its semicolons, or ExploreError saying why not
    (the engine's one guard, `read_only_sql`, with messages for the notebook)."""
    if not sql.strip():
        raise ExploreError("The cell is empty: write a SELECT over the sources listed beside the notebook.")
    try:
        return read_only_sql(sql, "explore")
    except QueryError as exc:
        message = exc.message
        if message.startswith("expected one SQL statement, got "):
            count = message.rsplit(" ", 1)[-1]
            raise ExploreError(f"One statement per cell, please: this cell has {count}.") from None
        if message.startswith("only SELECT queries may run here, not "):
            raise ExploreError(WRITE_HINT.format(kind=message.rsplit(" ", 1)[-1])) from None
        raise ExploreError(_friendly(message)) from None


def cell_parameters(sql: str, *, grain: str = "month", start: date = date(1900, 1, 1),
                    end: date = date(2999, 12, 31), fy_start_month: int = 7) -> dict[str, Any]:
    """Only the parameters the SQL uses (DuckDB refuses unused bound names)."""
    offered = {"grain": grain, "start": start, "end": end, "fy_start_month": fy_start_month}
    return {name: value for name, value in offered.items() if re.search(rf"\${name}\b", sql)}


def run_read_only(engine: Engine, sql: str, params: dict[str, Any] | None = None, *,
                  row_limit: int = DEFAULT_ROW_LIMIT, time_limit: float = DEFAULT_TIME_LIMIT
                  ) -> tuple[pl.DataFrame, bool]:
    """Run one SELECT in the engine's sandbox; returns (frame, truncated).

    The engine runs it on its own cursor and a timer interrupts that cursor after
    `time_limit` seconds (interrupting the engine's main connection would not stop it, and
    would stop other users' queries).
    """
    text = check_read_only(engine, sql)
    try:
        frame = engine.read_only_query(text, params or None, context="explore", row_limit=row_limit,
                                       timeout=time_limit)
    except QueryError as exc:
        if exc.message.lower().startswith("stopped after"):
            raise ExploreError(f"Stopped after {time_limit:g} s (the time limit): narrow the query "
                               "with a WHERE on the time column, or aggregate first.") from None
        if exc.message.startswith("stopped: "):
            raise ExploreError(f"Stopped: {exc.message.removeprefix('stopped: ')}. Aggregate first, or select "
                               "fewer or shorter columns.") from None
        raise ExploreError(_friendly(exc.message)) from None
    return frame.head(row_limit), frame.height > row_limit


def run_cell(engine: Engine, sql: str, *, row_limit: int = DEFAULT_ROW_LIMIT,
             time_limit: float = DEFAULT_TIME_LIMIT, **parameters: Any) -> CellResult:
    """Run a cell; never raises for the analyst's mistakes (they come back as `error`)."""
    started = time.perf_counter()
    try:
        params = cell_parameters(sql, **parameters)
        frame, truncated = run_read_only(engine, sql, params, row_limit=row_limit, time_limit=time_limit)
    except (ExploreError, QueryError) as exc:
        return CellResult(error=exc.message, seconds=time.perf_counter() - started)
    return CellResult(frame=frame, truncated=truncated, seconds=time.perf_counter() - started)


def _friendly(message: str) -> str:
    if "Permission Error" in message or "disabled by configuration" in message or "not available to analyst" in message:
        return (f"{message} — Explore reads only the registered extracts (use the source tables by name); "
                "files elsewhere, the network and settings are off limits.")
    return message


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def period_expression(column: str, fy_start_month: int) -> str:
    """A SQL expression giving the period start of `column` at the bound $grain.

    Paste it into a cell as `... AS period_start` so the cell works at every grain, which is
    what a SQL-file KPI needs (it is run once per grain with $grain bound).
    """
    branches = " ".join(
        f"WHEN '{grain}' THEN {period_sql(column, grain, fy_start_month)}"
        for grain in ("day", "week", "month", "quarter"))
    return f"CASE $grain {branches} ELSE {period_sql(column, 'fiscal_year', fy_start_month)} END"


# ---- the chart ------------------------------------------------------------------------------

def suggest_chart(frame: pl.DataFrame) -> dict:
    """A first guess: a line of the first numeric column over the first date column, else a bar."""
    temporal = [c for c, t in frame.schema.items() if t.is_temporal()]
    numeric = [c for c, t in frame.schema.items() if t.is_numeric()]
    text = [c for c, t in frame.schema.items() if t == pl.Utf8 or t == pl.Categorical]
    if temporal and numeric:
        return {"mark": "line", "x": temporal[0], "y": numeric[0], "colour": text[0] if text else None}
    if text and numeric:
        return {"mark": "bar", "x": text[0], "y": numeric[0], "colour": None}
    if len(numeric) >= 2:
        return {"mark": "point", "x": numeric[0], "y": numeric[1], "colour": None}
    return {"mark": NO_CHART, "x": None, "y": None, "colour": None}


def cell_chart(frame: pl.DataFrame, mark: str, x: str | None, y: str | None,
               colour: str | None = None) -> alt.Chart | None:
    """The analyst's chart of a result, or None when the settings do not make one."""
    if mark == NO_CHART or not x or not y or x not in frame.columns or y not in frame.columns:
        return None
    if mark not in MARKS:
        raise ValueError(f"unknown chart mark {mark!r} (known: {', '.join(MARKS)})")
    if colour and colour not in frame.columns:
        colour = None
    data = frame.select(list(dict.fromkeys(c for c in (x, y, colour) if c)))
    base = alt.Chart(data)
    chart = {"line": base.mark_line(point=True), "bar": base.mark_bar(), "point": base.mark_point(),
             "area": base.mark_area(opacity=0.7)}[mark]
    encoding = {"x": alt.X(x, type=_encoding_type(frame.schema[x])),
                "y": alt.Y(y, type=_encoding_type(frame.schema[y])),
                "tooltip": list(data.columns)}
    if colour:
        encoding["color"] = alt.Color(colour, type=_encoding_type(frame.schema[colour]))
    return chart.encode(**encoding)


def _encoding_type(dtype: pl.DataType) -> str:
    if dtype.is_temporal():
        return "temporal"
    if dtype.is_numeric():
        return "quantitative"
    return "nominal"


# ---- the sources as tables ------------------------------------------------------------------

def source_tables(engine: Engine) -> list[dict]:
    """Every available source as a table: id, title, description and columns with types and notes."""
    tables = []
    for source_id in sorted(engine.available):
        source = engine.registry.sources[source_id]
        columns = engine.columns(source_id)
        tables.append({
            "id": source_id,
            "title": source.title or source_id,
            "description": source.description,
            "time_column": source.time_column,
            "columns": [{"column": name, "type": kind, "description": source.columns.get(name, "")}
                        for name, kind in columns.iter_rows()],
        })
    return tables


__all__ = [
    "CellResult", "ExploreError", "MARKS", "NO_CHART", "add_cell", "cell_chart", "cell_parameters",
    "check_read_only", "export_sql", "move_cell", "new_cell", "normalise_cells", "period_expression",
    "remove_cell", "run_cell", "run_read_only", "source_tables", "suggest_chart", "update_cell",
]

"""Promote an Explore cell to a KPI: draft the registry entry, preview it, then write it.

Two forms, as in the registry:
- SQL file: the cell's query becomes `queries/<id>.sql`; it is run once per grain with
  `$grain`, `$start`, `$end` (and `$fy_start_month`) bound and must return `period_start`
  and `value` (optionally `numerator`, `denominator`).
- Declared: the analyst picks a source, an aggregation and a filter (or a rate's numerator
  condition); no SQL file.

Nothing is written until `write_promotion`: `preview_promotion` loads a temporary copy of the
registry holding the new entry (with every source), runs `validate` on it and computes the
KPI trend. Writing keeps metrics.yaml's comments and order (ruamel.yaml round-trip), replaces
the file atomically, and refuses an id that already exists.
"""

from __future__ import annotations

import difflib
import io
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from citystat.files.local import atomic_write
from citystat.registry.loader import Problem, RegistryError, load_registry, parse_yaml
from citystat.registry.models import ID_PATTERN, Metric

QUERIES_FOLDER = "queries"


class PromoteError(Exception):
    """The draft cannot be made or written; the message names the field, file or metric."""


@dataclass
class KpiDetails:
    """What the analyst fills in for any KPI."""

    id: str
    title: str
    department: str
    owner: str
    description: str
    unit: str = "number"
    direction: str = "higher"
    grain: str = "month"
    targets: list[tuple[date, float | None]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass
class DeclaredForm:
    """A declared metric: `agg` of `expr` over `source` rows meeting `filter`.

    With `numerator_filter` it is a rate instead: rows meeting it / all rows (both within `filter`).
    """

    source: str
    agg: str = "count"
    expr: str | None = None
    p: float | None = None
    filter: str | None = None
    numerator_filter: str | None = None
    dimensions: list[str] = field(default_factory=list)


@dataclass
class Draft:
    metric_id: str
    entry: dict[str, Any]            # the metric as plain data, in registry order
    yaml_text: str                   # the entry as it will appear under `metrics:`
    sql_path: str | None = None      # "queries/<id>.sql" for the SQL-file form
    sql_text: str | None = None


@dataclass
class Preview:
    problems: list[Problem]          # about the new metric (and anything that stops it loading)
    frame: pl.DataFrame | None = None
    chart: Any = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


# ---- drafting --------------------------------------------------------------------------------

def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load_round_trip(yaml: YAML, text: str, path: Path) -> Any:
    """Parse with the same settings we dump with (quotes kept), reporting syntax errors by line."""
    try:
        return yaml.load(text)
    except Exception:  # ruamel raises several types; the loader's parser names the file and line
        parse_yaml(text, str(path))
        raise


def _flow(value: Any) -> Any:
    if isinstance(value, dict):
        node = CommentedMap(value.items())
        node.fa.set_flow_style()
        return node
    node = CommentedSeq(value)
    node.fa.set_flow_style()
    return node


def _common(details: KpiDetails) -> dict[str, Any]:
    if not re.match(ID_PATTERN, details.id or ""):
        raise PromoteError(f"id {details.id!r}: use lower-case letters, digits and underscores, starting with a letter")
    entry: dict[str, Any] = {
        "id": details.id, "title": details.title.strip(), "department": details.department,
        "owner": details.owner.strip(), "description": details.description.strip(), "unit": details.unit,
        "direction": details.direction, "grain": details.grain,
    }
    if details.tags:
        entry["tags"] = list(details.tags)
    targets = sorted((d, v) for d, v in details.targets)
    if targets:
        entry["targets"] = [{"from": d, "value": v} for d, v in targets]
    return entry


def _checked(entry: dict[str, Any]) -> None:
    """Schema errors now, naming the field, rather than after the analyst presses Write."""
    try:
        Metric.model_validate(entry)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
            message = error["msg"].removeprefix("Value error, ")
            messages.append(f"{loc}: {message}" if loc else message)
        raise PromoteError(f"metric {entry.get('id')}: " + "; ".join(messages)) from None


def _entry_node(entry: dict[str, Any]) -> CommentedMap:
    node = CommentedMap()
    for key, value in entry.items():
        if key == "targets":
            node[key] = CommentedSeq(_flow(t) for t in value)
        elif isinstance(value, (list, dict)):
            node[key] = _flow(value)
        else:
            node[key] = value
    return node


def entry_yaml(entry: dict[str, Any]) -> str:
    """The entry as a `- id: ...` block indented like metrics.yaml."""
    doc = CommentedMap(metrics=CommentedSeq([_entry_node(entry)]))
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    return buffer.getvalue().split("\n", 1)[1]


def draft_sql_metric(details: KpiDetails, cell_sql: str, *, actor: str = "") -> Draft:
    """A SQL-file KPI from a cell. The query must use $grain so each grain gets its own periods."""
    body = cell_sql.strip().rstrip(";").strip()
    if not body:
        raise PromoteError("the cell is empty: there is no query to promote")
    if not re.search(r"\$grain\b", body):
        raise PromoteError(
            "the cell's query does not use $grain, so every grain would get the same periods: compute "
            "period_start with the period expression shown on the Explore page (CASE $grain WHEN 'day' ...)")
    sql_path = f"{QUERIES_FOLDER}/{details.id}.sql"
    entry = {**_common(details), "sql": sql_path}
    _checked(entry)
    # No dollar signs in the header: the engine binds every $name the file mentions.
    header = [f"-- {details.title.strip()}: {details.description.strip()}",
              "-- Run once per grain with the parameters grain, start, end (and fy_start_month) bound;",
              "-- returns period_start and value (and numerator, denominator for a rate)."]
    if actor:
        header.append(f"-- Promoted from Explore by {actor} on {date.today().isoformat()}.")
    sql_text = "\n".join(header) + "\n" + body + "\n"
    return Draft(details.id, entry, entry_yaml(entry), sql_path, sql_text)


def draft_declared_metric(details: KpiDetails, form: DeclaredForm) -> Draft:
    """A declared KPI (no SQL file): a single aggregate, or a rate when `numerator_filter` is given."""
    entry = _common(details)
    if form.dimensions:
        entry = {**{k: v for k, v in entry.items() if k not in ("tags", "targets")},
                 "dimensions": list(form.dimensions),
                 **{k: entry[k] for k in ("tags", "targets") if k in entry}}
    entry["source"] = form.source
    if form.filter and form.filter.strip():
        entry["filter"] = form.filter.strip()
    if form.numerator_filter and form.numerator_filter.strip():
        entry["numerator"] = {"agg": "count", "filter": form.numerator_filter.strip()}
        entry["denominator"] = {"agg": "count"}
    else:
        measure = {"agg": form.agg}
        if form.expr and form.expr.strip():
            measure["expr"] = form.expr.strip()
        if form.p is not None:
            measure["p"] = form.p
        entry["measure"] = measure
    _checked(entry)
    return Draft(details.id, entry, entry_yaml(entry))


# ---- preview -----------------------------------------------------------------------------------

def existing_ids(registry_path: str | Path) -> dict[str, int | None]:
    """Every metric id in the file (broken entries included) -> its line."""
    path = Path(registry_path)
    return _ids_in(_load_round_trip(_yaml(), path.read_text(encoding="utf-8"), path))


def _ids_in(doc: Any) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    for index, node in enumerate(metrics or []):
        if isinstance(node, dict) and node.get("id"):
            found[str(node["id"])] = metrics.lc.item(index)[0] + 1
    return found


def preview_promotion(registry_path: str | Path, draft: Draft, *, today: date | None = None) -> Preview:
    """Validate the draft against the real extracts in a temporary registry; nothing is written."""
    from citystat.display.charts import trend_chart
    from citystat.kpis.frames import kpi_frame
    from citystat.checks.validate import validate

    path = Path(registry_path).resolve()
    doc = _load_round_trip(_yaml(), path.read_text(encoding="utf-8"), path)
    taken = _ids_in(doc)
    if draft.metric_id in taken:
        return Preview([Problem(str(path), taken[draft.metric_id], f"metric {draft.metric_id}",
                                f"id {draft.metric_id!r} is already in the registry; choose another")])
    with tempfile.TemporaryDirectory(prefix="citystat-promote-") as folder:
        temp = Path(folder) / "metrics.yaml"
        _write_temp_registry(doc, path, temp, draft)
        try:
            real_root = load_registry_root(path)
            registry = load_registry(temp, data_root=real_root)
        except RegistryError as exc:
            return Preview([_relocated(p, path, draft) for p in exc.problems])
        report = validate(registry, today=today)
        mine = [_relocated(p, path, draft) for p in report.problems if p.entry == f"metric {draft.metric_id}"]
        metric = registry.metrics.get(draft.metric_id)
        if metric is None and not mine:
            mine = [Problem(str(path), None, f"metric {draft.metric_id}", "the metric did not load")]
        if metric is None or any(p.severity == "error" for p in mine):
            return Preview(mine)
        frame = kpi_frame(registry, report.rollup, metric, metric.grain)
        chart = trend_chart(frame, title=metric.title, unit=metric.unit.value) if frame.height else None
        return Preview(mine, frame, chart)


def load_registry_root(path: Path) -> Path:
    """Where the real registry's extracts are (its data root), for the preview copy to read."""
    from citystat.registry.loader import Registry, empty_registry

    registry: Registry = empty_registry(path)
    return registry.data_root


def _relocated(problem: Problem, path: Path, draft: Draft) -> Problem:
    """A temp-registry problem told against the real file (its line there does not exist yet)."""
    return Problem(str(path), None, problem.entry or f"metric {draft.metric_id}", problem.message, problem.severity)


def _write_temp_registry(doc: Any, real: Path, temp: Path, draft: Draft) -> None:
    """City, departments and every source of the real registry, plus the draft.

    `doc` is the real file's parsed copy; it is changed here (its metrics replaced).
    """
    yaml = _yaml()
    root = real.parent
    for source in doc.get("sources") or []:  # paths stay relative: the copy reads the real data root
        if not isinstance(source, dict):
            continue
        if source.get("sql"):
            _copy_inside(root, temp.parent, str(source["sql"]))
    doc["metrics"] = CommentedSeq([_entry_node(draft.entry)])
    if draft.sql_path and draft.sql_text is not None:
        target = temp.parent / draft.sql_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(draft.sql_text, encoding="utf-8")
    with temp.open("w", encoding="utf-8") as handle:
        yaml.dump(doc, handle)


def _copy_inside(real_root: Path, temp_root: Path, relative: str) -> None:
    source = (real_root / relative).resolve()
    if not source.is_relative_to(real_root.resolve()) or not source.is_file():
        return  # the loader reports it, as it does for the real file
    target = temp_root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


# ---- write -------------------------------------------------------------------------------------

def write_promotion(registry_path: str | Path, draft: Draft) -> list[Path]:
    """Append the entry to metrics.yaml (and create the SQL file); returns the files written.

    Refuses an id already in the file and an existing SQL file. The YAML is replaced atomically
    (temp file + rename) and only if every existing line survives unchanged.
    """
    path = Path(registry_path).resolve()
    text = path.read_text(encoding="utf-8")
    yaml = _yaml()
    doc = _load_round_trip(yaml, text, path)
    metrics = doc.get("metrics")
    if not isinstance(metrics, CommentedSeq):
        raise PromoteError(f"{path}: has no 'metrics' list to add to")
    taken = _ids_in(doc)
    if draft.metric_id in taken:
        raise PromoteError(f"{path}:{taken[draft.metric_id]}: metric {draft.metric_id!r} already exists; "
                           "nothing was written")
    metrics.append(_entry_node(draft.entry))
    if len(metrics) > 1:  # a blank line between entries, as in the rest of the file
        metrics.ca.items[len(metrics) - 1] = [None, [CommentToken("\n", CommentMark(0), None)], None, None]
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    new_text = buffer.getvalue()
    _check_only_added(text, new_text, path)

    written: list[Path] = []
    sql_file = None
    if draft.sql_path and draft.sql_text is not None:
        sql_file = path.parent / draft.sql_path
        sql_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with sql_file.open("x", encoding="utf-8") as handle:
                handle.write(draft.sql_text)
        except FileExistsError:
            raise PromoteError(f"{sql_file}: already exists; nothing was written") from None
        written.append(sql_file)
    try:
        if path.read_text(encoding="utf-8") != text:
            raise PromoteError(f"{path}: changed while the KPI was being added; nothing was written, try again")
        atomic_write(path, new_text, mode=path.stat().st_mode & 0o777)
    except BaseException:
        if sql_file is not None:
            sql_file.unlink(missing_ok=True)
        raise
    written.append(path)
    return written


def _check_only_added(old: str, new: str, path: Path) -> None:
    matcher = difflib.SequenceMatcher(a=old.splitlines(), b=new.splitlines(), autojunk=False)
    changed = [op for op in matcher.get_opcodes() if op[0] not in ("equal", "insert")]
    if changed:
        line = changed[0][1] + 1
        raise PromoteError(f"{path}:{line}: adding the KPI would reformat existing lines; add the entry by hand")


__all__ = ["DeclaredForm", "Draft", "KpiDetails", "Preview", "PromoteError", "draft_declared_metric",
           "draft_sql_metric", "entry_yaml", "existing_ids", "preview_promotion", "write_promotion"]

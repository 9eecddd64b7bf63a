"""Validate a registry against its real extracts.

One rule per concern, each a plain function returning problems; `validate()` runs the static
rules (already applied at load), then builds the engine and the rollup so that every metric's
query runs against the data, then the data-aware rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from citystat.kpis.engine import Engine, quote_identifier
from citystat.kpis.rollup import Rollup, compute_rollup
from citystat.registry.loader import Problem, Registry


@dataclass
class ValidationReport:
    registry: Registry
    problems: list[Problem]
    rollup: Rollup | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def metric_state(self, metric_id: str) -> str:
        entry = f"metric {metric_id}"
        if any(p.entry == entry for p in self.errors):
            return "error"
        if any(p.entry == entry for p in self.warnings):
            return "warning"
        return "ok"


def _warn(registry: Registry, metric_id: str, message: str) -> Problem:
    return Problem(str(registry.path), registry.line_of("metric", metric_id), f"metric {metric_id}", message,
                   severity="warning")


def check_targets(registry: Registry) -> list[Problem]:
    """Targets of zero need absolute bands (targets dated in the future are fine: planned)."""
    problems = []
    for metric in registry.metrics.values():
        for target in metric.targets:
            if target.value == 0 and metric.bands.at_risk_within_abs is None:
                problems.append(_warn(registry, metric.id,
                                      f"target 0 from {target.from_}: a relative 'at risk' band is empty, so any miss "
                                      "is off track; set bands.at_risk_within_abs"))
    return problems


def check_publishing(registry: Registry) -> list[Problem]:
    """A publishable source needs `city.website`: the Open data page builds data.json links from it."""
    if registry.city.website:
        return []
    return [Problem(str(registry.path), registry.line_of("source", source.id), f"source {source.id}",
                    "publishable, but city.website is not set: the open-data catalog (data.json) needs the "
                    "city's public base URL; set city.website or make the source publishable: false")
            for source in registry.sources.values() if source.publishable]


def check_columns(engine: Engine) -> list[Problem]:
    """Every dimension and time column a metric names exists in its source's real columns."""
    registry = engine.registry
    problems = []
    columns_cache: dict[str, set[str]] = {}
    for metric in registry.metrics.values():
        if not metric.source or metric.source not in engine.available:
            continue
        if metric.source not in columns_cache:
            columns_cache[metric.source] = set(engine.columns(metric.source)["column_name"].to_list())
        actual = columns_cache[metric.source]
        source = registry.sources[metric.source]
        wanted = [metric.time_column or source.time_column, *metric.dimensions]
        missing = [c for c in wanted if c and c not in actual]
        if missing:
            problems.append(Problem(str(registry.path), registry.line_of("metric", metric.id), f"metric {metric.id}",
                                    f"column(s) {', '.join(missing)} not in source {metric.source!r} "
                                    f"(has: {', '.join(sorted(actual))})"))
    for source_id in sorted(engine.available):
        source = registry.sources[source_id]
        actual = columns_cache.get(source_id) or set(engine.columns(source_id)["column_name"].to_list())
        if source.time_column and source.time_column not in actual:
            problems.append(Problem(str(registry.path), registry.line_of("source", source_id), f"source {source_id}",
                                    f"time_column {source.time_column!r} is not a column"))
        elif source.time_column:
            kind = engine.query(
                "SELECT data_type FROM information_schema.columns WHERE table_name = $t AND column_name = $c",
                {"t": source_id, "c": source.time_column})["data_type"][0]
            if not (kind.startswith("TIMESTAMP") or kind == "DATE"):
                problems.append(Problem(str(registry.path), registry.line_of("source", source_id),
                                        f"source {source_id}",
                                        f"time_column {source.time_column!r} has type {kind}, expected DATE or TIMESTAMP"))
        documented = set(source.columns)
        extra = sorted(documented - actual)
        if extra:
            problems.append(Problem(str(registry.path), registry.line_of("source", source_id), f"source {source_id}",
                                    f"documented column(s) not in the data: {', '.join(extra)}", severity="warning"))
    return problems


def check_empty(engine: Engine, rollup: Rollup) -> list[Problem]:
    registry = engine.registry
    problems = []
    failed = rollup.failed_metrics()
    present = set(rollup.frame.filter(pl.col("value").is_not_null())["metric_id"].unique().to_list())
    for metric in registry.metrics.values():
        if metric.id not in failed and metric.id not in present:
            problems.append(_warn(registry, metric.id, "the query ran but returned no values"))
    for source_id in sorted(engine.available):
        rows = rollup.extents.filter(pl.col("source_id") == source_id)["rows"]
        if rows.len() and rows[0] == 0:
            problems.append(Problem(str(registry.path), registry.line_of("source", source_id), f"source {source_id}",
                                    "the extract is empty", severity="warning"))
    return problems


def check_future_data(engine: Engine, rollup: Rollup, today: date) -> list[Problem]:
    """Sources with rows dated after today: how many, and the latest (they are left out of the
    default "as of" period until their day comes)."""
    from datetime import datetime, time

    from citystat.checks.health import count_future_rows
    from citystat.display.format import format_date

    registry = engine.registry
    problems = []
    found = count_future_rows(engine, rollup.extents, datetime.combine(today, time.max))
    for source_id, (rows, latest) in sorted(found.items()):
        problems.append(Problem(str(registry.path), registry.line_of("source", source_id), f"source {source_id}",
                                f"has {rows:,} row(s) dated in the future (the latest {format_date(latest)}; "
                                f"today is {format_date(today)}); they are left out of the default period",
                                severity="warning"))
    return problems


def validate(registry: Registry, today: date | None = None) -> ValidationReport:
    """Everything: schema (at load), references, cycles, and every query against the data."""
    today = today or date.today()
    problems = list(registry.problems) + check_targets(registry) + check_publishing(registry)
    engine = Engine(registry)
    rollup = compute_rollup(engine)
    problems += rollup.problems + check_columns(engine) + check_empty(engine, rollup)
    problems += check_future_data(engine, rollup, today)
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (p.file, p.line or 0, p.severity))
    return ValidationReport(registry=registry, problems=unique, rollup=rollup)


__all__ = ["ValidationReport", "validate", "quote_identifier"]

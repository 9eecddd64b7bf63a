"""The SQL the Metric page shows is the SQL that runs: run it for every KPI of the sample city.

`rollup.metric_sql` (what pages/metric.py and pages/registry.py show) is built by the same
builders the refresh runs. Here the shown text itself is executed on the sample city's
extracts, at each KPI's own grain, and its values must equal the rollup's.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path

import pytest

from citystat.kpis.engine import Engine
from citystat.kpis.rollup import compute_rollup, metric_sql
from citystat.registry.loader import load_registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample():
    registry = load_registry(ROOT / "metrics.yaml")
    engine = Engine(registry)
    return registry, engine, compute_rollup(engine)


def rollup_totals(rollup, metric_id: str, grain: str) -> dict[date, float | None]:
    return {r["period_start"]: r["value"] for r in rollup.series(metric_id, grain).iter_rows(named=True)}


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_the_shown_sql_of_every_kpi_gives_the_rollup_values(sample):
    registry, engine, rollup = sample
    assert len(registry.metrics) >= 20
    checked = set()
    for metric in registry.metrics.values():
        shown = metric_sql(registry, metric, metric.grain)
        expected = rollup_totals(rollup, metric.id, metric.grain)
        assert expected, f"{metric.id}: the rollup has no {metric.grain} rows"
        if metric.kind == "derived":
            # shown as its formula over other KPIs: evaluate that formula on their rollup values
            formula = shown.splitlines()[-1].split("=", 1)[1]
            assert metric.derived in shown
            parts = {ref: rollup_totals(rollup, ref, metric.grain) for ref in re.findall(r"[a-z_][a-z0-9_]*", formula)}
            for start, value in expected.items():
                if all(parts[ref].get(start) is not None for ref in parts):
                    got = eval(formula, {}, {ref: parts[ref][start] for ref in parts})  # ids and + - * / only
                    assert same(got, value), (metric.id, start)
            checked.add(metric.id)
            continue
        params = {}
        if metric.kind == "sql":
            assert shown == registry.sql_text(metric.sql)
            offered = {"grain": metric.grain, "start": date(1900, 1, 1), "end": date(2999, 12, 31),
                       "fy_start_month": registry.city.fiscal_year_start_month}
            params = {k: v for k, v in offered.items() if re.search(rf"\${k}\b", shown)}
        else:
            assert "FROM" in shown and "__p_week" not in shown.split("-- Internal names:")[0]
        result = engine.query(shown.rstrip().rstrip(";"), params, context=metric.id)
        got = {row["period_start"]: row["value"] for row in result.iter_rows(named=True)}
        got = {(k.date() if hasattr(k, "date") else k): v for k, v in got.items()}
        assert set(got) == set(expected), f"{metric.id}: periods differ"
        for start, value in expected.items():
            assert same(float(got[start]) if got[start] is not None else None, value), (metric.id, start)
        checked.add(metric.id)
    assert checked == set(registry.metrics)


def test_the_shown_sql_is_laid_out_and_explains_its_internal_names(sample):
    registry, _, _ = sample
    metric = registry.metrics["pothole_on_time"]
    shown = metric_sql(registry, metric, "week")
    lines = shown.splitlines()
    assert lines[0].startswith("-- Potholes repaired on time, by week")
    code = [line for line in lines if not line.startswith("--")]
    assert code[0].startswith("SELECT period_start, CASE WHEN m0_d > 0 THEN m0_v / m0_d END AS value")
    assert any(line.lstrip().startswith("FROM") for line in code)
    assert any(line.lstrip().startswith("GROUP BY") for line in code)
    explained = [line.removeprefix("--   ").split("  ")[0] for line in lines if line.startswith("--   ")]
    patterns = {"__p_m0_*": r"__p_m\d+_[a-z]",
                "__c0, __c1": r"__c\d+", "__e0": r"__e\d+"}
    for name in set(re.findall(r"\b(__[a-z_0-9]+|m0_[a-z])\b", "\n".join(code))):
        assert any(re.fullmatch(patterns.get(e, re.escape(e)), name) for e in explained), name
    monthly = metric_sql(registry, registry.metrics["graffiti_days_to_close"], "month")
    assert "--   __day        the day of a row (its time column cast to a date)" in monthly
    assert "GROUP BY period_start" in monthly

"""Promote to KPI: drafts, preview against the real extracts, and comment-keeping writes."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from citystat.cli import main as cli
from citystat.analyst.explore import period_expression
from citystat.analyst.promote import (
    DeclaredForm, KpiDetails, PromoteError, draft_declared_metric, draft_sql_metric, preview_promotion,
    write_promotion,
)
from citystat.registry.loader import load_registry

from .conftest import PROJECT_ROOT

REQUESTS = PROJECT_ROOT / "data" / "service_requests.parquet"


@pytest.fixture
def registry_copy(tmp_path) -> Path:
    """metrics.yaml and queries/ copied, data/ linked: writes never touch the real registry."""
    shutil.copy(PROJECT_ROOT / "metrics.yaml", tmp_path / "metrics.yaml")
    shutil.copytree(PROJECT_ROOT / "queries", tmp_path / "queries")
    (tmp_path / "data").symlink_to(PROJECT_ROOT / "data")
    return tmp_path / "metrics.yaml"


def details(metric_id: str, **changes) -> KpiDetails:
    base = dict(id=metric_id, title="Requests received", department="csc", owner="311 Director",
                description="311 requests made in the period.", unit="count", direction="neutral", grain="month")
    return KpiDetails(**{**base, **changes})


MONTHLY_SQL = (f"SELECT {period_expression('created_at', 7)} AS period_start, count(*)::DOUBLE AS value "
               "FROM service_requests WHERE created_at >= $start AND created_at < $end GROUP BY 1")


def test_sql_cell_becomes_a_kpi_the_validate_command_accepts(registry_copy, capsys):
    original = registry_copy.read_text()
    draft = draft_sql_metric(details("requests_received"), MONTHLY_SQL, actor="analyst@city")
    assert draft.sql_path == "queries/requests_received.sql"

    preview = preview_promotion(registry_copy, draft)
    assert preview.ok, preview.problems
    assert registry_copy.read_text() == original  # a preview writes nothing
    assert not (registry_copy.parent / draft.sql_path).exists()
    # the previewed trend counts what an independent read of the extract counts
    raw = pl.read_parquet(REQUESTS, columns=["created_at"])
    monthly = raw.group_by(pl.col("created_at").dt.truncate("1mo").dt.date().alias("month")).len()
    october = monthly.filter(pl.col("month") == date(2026, 10, 1))["len"][0]
    assert preview.frame.filter(pl.col("period_start") == date(2026, 10, 1))["value"][0] == october
    assert preview.chart is not None

    written = write_promotion(registry_copy, draft)
    assert set(written) == {registry_copy.resolve(), (registry_copy.parent / draft.sql_path).resolve()}
    assert cli(["validate", str(registry_copy)]) == 0, capsys.readouterr().err
    assert "33 metrics ok, 0 error(s)" in capsys.readouterr().out


def test_writing_keeps_every_existing_line_comment_and_order(registry_copy):
    original = registry_copy.read_text()
    draft = draft_declared_metric(
        details("pothole_share", title="Pothole share", department="pw", unit="percent", grain="week",
                targets=[(date(2025, 7, 1), None)]),
        DeclaredForm(source="service_requests", numerator_filter="request_type = 'Pothole'", dimensions=["district"]))
    write_promotion(registry_copy, draft)
    after = registry_copy.read_text()
    assert after.startswith(original.rstrip("\n"))  # everything before, byte for byte, comments included
    assert "# Analysts add a KPI here" in after
    added = after[len(original.rstrip("\n")):]
    assert added.startswith("\n\n  - id: pothole_share\n")
    assert "    numerator: {agg: count, filter: request_type = 'Pothole'}\n" in added
    assert "    dimensions: [district]\n" in added
    registry = load_registry(registry_copy)
    assert list(registry.metrics)[-1] == "pothole_share"
    assert registry.metrics["pothole_share"].is_rate
    assert not registry.errors


def test_declared_rate_preview_matches_a_hand_count(registry_copy):
    draft = draft_declared_metric(
        details("pothole_share", unit="percent", grain="month"),
        DeclaredForm(source="service_requests", numerator_filter="request_type = 'Pothole'"))
    preview = preview_promotion(registry_copy, draft)
    assert preview.ok, preview.problems
    raw = pl.read_parquet(REQUESTS, columns=["created_at", "request_type"]).filter(
        (pl.col("created_at") >= pl.datetime(2026, 9, 1)) & (pl.col("created_at") < pl.datetime(2026, 10, 1)))
    share = (raw["request_type"] == "Pothole").sum() / raw.height
    row = preview.frame.filter(pl.col("period_start") == date(2026, 9, 1)).row(0, named=True)
    assert row["value"] == pytest.approx(share)
    assert row["denominator"] == raw.height


def test_an_existing_id_is_refused_and_nothing_is_written(registry_copy):
    original = registry_copy.read_text()
    draft = draft_sql_metric(details("pothole_on_time"), MONTHLY_SQL)
    preview = preview_promotion(registry_copy, draft)
    assert not preview.ok and "already in the registry" in preview.errors[0].message
    assert preview.errors[0].line == load_registry(registry_copy).line_of("metric", "pothole_on_time")
    with pytest.raises(PromoteError, match="'pothole_on_time' already exists"):
        write_promotion(registry_copy, draft)
    assert registry_copy.read_text() == original
    assert not (registry_copy.parent / "queries" / "pothole_on_time.sql").exists()


def test_an_existing_sql_file_is_not_overwritten(registry_copy):
    (registry_copy.parent / "queries" / "requests_received.sql").write_text("-- someone else's\n")
    original = registry_copy.read_text()
    with pytest.raises(PromoteError, match="requests_received.sql: already exists"):
        write_promotion(registry_copy, draft_sql_metric(details("requests_received"), MONTHLY_SQL))
    assert registry_copy.read_text() == original
    assert (registry_copy.parent / "queries" / "requests_received.sql").read_text() == "-- someone else's\n"


def test_bad_drafts_name_the_field_or_the_problem(registry_copy):
    with pytest.raises(PromoteError, match=r"metric requests_received: unit: Input should be"):
        draft_sql_metric(details("requests_received", unit="furlongs"), MONTHLY_SQL)
    with pytest.raises(PromoteError, match="id 'Bad Id'"):
        draft_sql_metric(details("Bad Id"), MONTHLY_SQL)
    with pytest.raises(PromoteError, match=r"does not use \$grain"):
        draft_sql_metric(details("requests_received"), "SELECT 1 AS period_start, 2 AS value")
    with pytest.raises(PromoteError, match="neutral metric is watched"):
        draft_sql_metric(details("requests_received", targets=[(date(2025, 7, 1), 5.0)]), MONTHLY_SQL)
    with pytest.raises(PromoteError, match="agg 'avg' needs 'expr'"):
        draft_declared_metric(details("x_avg"), DeclaredForm(source="service_requests", agg="avg"))


def test_a_broken_query_fails_the_preview_with_duckdbs_message(registry_copy):
    draft = draft_sql_metric(details("requests_broken"),
                             MONTHLY_SQL.replace("count(*)", "count(no_such_column)"))
    preview = preview_promotion(registry_copy, draft)
    assert not preview.ok
    assert "no_such_column" in preview.errors[0].message
    assert preview.errors[0].entry == "metric requests_broken"
    assert preview.errors[0].file == str(registry_copy.resolve())


def test_a_declared_metric_on_an_unknown_column_is_an_error(registry_copy):
    draft = draft_declared_metric(details("bad_dim"), DeclaredForm(source="service_requests",
                                                                   dimensions=["not_a_column"]))
    preview = preview_promotion(registry_copy, draft)
    assert not preview.ok and "not_a_column" in preview.errors[0].message

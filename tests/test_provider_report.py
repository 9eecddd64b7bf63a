"""The monthly provider progress report: HTML and PDF contain the provider, every metric, its
target, this month's raw and adjusted result and trend charts; the CLI writes both files."""

from __future__ import annotations

import io
import re
from datetime import date

import duckdb
import pytest
from pypdf import PdfReader

from citystat.cli import main
from citystat.display.report import html_to_pdf
from citystat.results.models import load_contracts
from citystat.results.report import build_provider_report_html, parse_month, report_filename

from .conftest import PROJECT_ROOT

PROVIDER = "Northside Shelter Partners"
MONTH = date(2026, 10, 1)
CONTRACT = load_contracts(PROJECT_ROOT / "contracts.yaml").provider_contract("hs_northside")


@pytest.fixture(scope="module")
def html(sample_city) -> str:
    return build_provider_report_html(sample_city, PROVIDER, MONTH)


@pytest.fixture(scope="module")
def pdf_text(html) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(html_to_pdf(html)))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def october_exit_rate() -> float:
    """Northside's share of October 2026 exits that went to permanent housing, straight from Parquet."""
    ((rate,),) = duckdb.sql(
        "SELECT avg(CASE WHEN exit_destination = 'permanent' THEN 1.0 ELSE 0.0 END) "
        "FROM read_parquet($path) WHERE provider = $provider "
        "AND exited_at >= DATE '2026-10-01' AND exited_at < DATE '2026-11-01'",
        params={"path": str(PROJECT_ROOT / "data" / "homeless_enrollments.parquet"),
                "provider": PROVIDER}).fetchall()
    return float(rate)


def test_html_has_provider_metrics_targets_adjusted_results_and_trend_charts(html: str) -> None:
    assert f"{PROVIDER} — progress report, October 2026" in html
    for metric in CONTRACT.metrics:
        assert metric.title in html
    assert "Target" in html and "40.0%" in html and "20.0%" in html  # declared targets
    assert "Adjusted" in html and "O/E (95 % CI)" in html
    assert f"{october_exit_rate() * 100:.1f}%" in html  # this month's raw value, checked independently
    assert "▼ worse than expected" in html  # Northside is truly worse on exits
    # one value chart per metric, plus O/E band charts: inline SVG, nothing fetched
    assert html.count("<svg") >= 2 * len(CONTRACT.metrics) - 1
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "observed ÷ expected" in html.lower()


def test_pdf_text_and_pages(pdf_text: tuple[str, int]) -> None:
    text, pages = pdf_text
    flat = re.sub(r"\s+", " ", text)
    assert PROVIDER in flat and "October 2026" in flat
    for metric in CONTRACT.metrics:
        assert metric.title in flat
    assert "40.0%" in flat and f"{october_exit_rate() * 100:.1f}%" in flat
    assert "worse than expected" in flat
    assert "Page 1 of" in flat
    assert 4 <= pages <= 12  # a cover/summary, a section per metric, the explanation


def test_unknown_provider_and_month_errors(sample_city) -> None:
    with pytest.raises(KeyError, match="Harbor House"):  # the message lists the real providers
        build_provider_report_html(sample_city, "Nobody", MONTH)
    with pytest.raises(ValueError, match="2023-11 to 2026-11"):
        build_provider_report_html(sample_city, PROVIDER, date(2019, 1, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("2026-13")
    assert parse_month("2026-10") == MONTH


def test_cli_writes_html_and_pdf(tmp_path, capsys) -> None:
    code = main(["provider-report", "--provider", PROVIDER, "--month", "2026-10", "--out", str(tmp_path),
                 "--registry", str(PROJECT_ROOT / "metrics.yaml")])
    assert code == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / report_filename(PROVIDER, MONTH, "html")),
                       str(tmp_path / report_filename(PROVIDER, MONTH, "pdf"))]
    assert (tmp_path / "provider-report-northside-shelter-partners-2026-10.pdf").read_bytes()[:5] == b"%PDF-"
    assert main(["provider-report", "--provider", "Nobody", "--out", str(tmp_path),
                 "--registry", str(PROJECT_ROOT / "metrics.yaml")]) == 2
    assert "no contract for provider 'Nobody'" in capsys.readouterr().err

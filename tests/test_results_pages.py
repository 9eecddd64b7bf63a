"""The results pages (provider scorecards, Pay for Success, experiments) render through
AppTest and show numbers that match independent computations on the sample extracts."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import render, texts
from .conftest import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"


def frame_with(app: AppTest, column: str) -> pl.DataFrame:
    for element in app.dataframe:
        if column in element.value.columns:
            return pl.from_pandas(element.value)
    raise AssertionError(f"no table with a {column!r} column")


def chart_specs(app: AppTest) -> list[dict]:
    charts = app.get("arrow_vega_lite_chart") or app.get("vega_lite_chart")
    return [json.loads(c.proto.spec) for c in charts]


def layer_names(spec: dict) -> set[str]:
    return {layer.get("name") for layer in spec.get("layer", [])}


def independent_exit_rates() -> dict[str, float]:
    """Share of exits (whole contract period) that went to permanent housing, straight from Parquet."""
    rows = duckdb.sql(
        "SELECT provider, avg(CASE WHEN exit_destination = 'permanent' THEN 1.0 ELSE 0.0 END) AS rate "
        "FROM read_parquet($path) WHERE exited_at IS NOT NULL "
        "AND exited_at BETWEEN DATE '2023-07-01' AND DATE '2027-06-30' GROUP BY provider",
        params={"path": str(DATA / "homeless_enrollments.parquet")}).fetchall()
    return dict(rows)


def test_providers_side_by_side_raw_and_adjusted_with_flags():
    app = render("pages/providers.py")
    shown = texts(app)
    assert "below 1 means fewer exits than clients like these usually have" in shown
    assert "flagged only when the 95 % interval excludes 1" in shown
    # the whole contract period: the clearest comparison
    app.selectbox(key="period").set_value("to_date").run()
    assert not app.exception
    table = frame_with(app, "Adjusted rank")
    assert set(table.columns) >= {"Provider", "Raw", "Adjusted", "O/E (95 % CI)", "Flag", "Raw rank",
                                  "Adjusted rank", "Rank change"}
    by_provider = {r["Provider"]: r for r in table.iter_rows(named=True)}
    assert len(by_provider) == 6
    northside, harbor = by_provider["Northside Shelter Partners"], by_provider["Harbor House"]
    assert northside["Flag"].startswith("▼ worse")
    assert harbor["Flag"] == "—"  # harder clients, as good as expected: not flagged
    # raw rates on the page equal an independent SQL computation
    for provider, rate in independent_exit_rates().items():
        assert by_provider[provider]["Raw"] == f"{rate * 100:.1f}%", provider
    # Harbor House looks worst raw (its clients are hardest); adjustment moves it up
    assert harbor["Raw rank"] == 6 and harbor["Adjusted rank"] < 6
    assert harbor["Rank change"] == f"▲ {6 - harbor['Adjusted rank']}"
    # ranks on the page are consistent with the raw rates shown
    rates = independent_exit_rates()
    assert sorted(rates, key=rates.get, reverse=True).index("Harbor House") + 1 == harbor["Raw rank"]
    # the forest plot and the provider's trend with the O/E band
    specs = chart_specs(app)
    assert any({"ci_rules", "oe_points", "expected_rule"} <= layer_names(s) for s in specs)
    assert any({"ci_band", "oe_line", "expected_rule"} <= layer_names(s) for s in specs)
    assert any("target_rule" in layer_names(s) for s in specs)


def test_providers_page_provider_selector_and_month():
    app = render("pages/providers.py", {"provider": "Northside Shelter Partners"})
    assert app.selectbox(key="provider").value == "Northside Shelter Partners"
    assert app.selectbox(key="period").value.isoformat() == "2026-10-01"  # latest complete month
    assert "October 2026" in texts(app)
    app.segmented_control(key="metric").set_value("length_of_stay").run()
    assert not app.exception
    assert "Length of stay (days)" in texts(app)


def test_pay_for_success_page_shows_participants_target_payments_and_cap():
    app = render("pages/pay_for_success.py")
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Treatment participants"] == "929"
    assert metrics["Payment cap"] == "$27,000,000"
    # payments due, recomputed from the extract with the contract's illustrative prices
    frame = pl.read_parquet(DATA / "pfs_participants.parquet").filter(pl.col("follow_up_complete"))
    t, c = frame.filter(pl.col("arm") == "treatment"), frame.filter(pl.col("arm") == "control")
    beds_effect = c["jail_bed_days"].mean() - t["jail_bed_days"].mean()
    beds = 85.0 * beds_effect * t.height if beds_effect / c["jail_bed_days"].mean() >= 0.052 else 0.0
    jobs_effect = t["employed_q4"].cast(pl.Float64).mean() - c["employed_q4"].cast(pl.Float64).mean()
    jobs = 750.0 * jobs_effect * t.height if jobs_effect > 0 else 0.0
    due = min(beds + jobs, 27_000_000)
    assert metrics["Payments due so far"] == f"${due:,.0f}"
    outcomes = frame_with(app, "Payment triggered")
    assert "40% improvement" in outcomes["Target"].to_list()
    payment_tables = [pl.from_pandas(e.value) for e in app.dataframe if "Payment" in e.value.columns]
    assert payment_tables and "40.0%" in payment_tables[0]["Improvement"].to_list()
    specs = chart_specs(app)
    assert any({"payment_line", "cap_rule", "achieved_rule"} <= layer_names(s) for s in specs)


def test_experiments_page_shows_arms_effect_power_verdict_and_log():
    app = render("pages/experiments.py")
    shown = texts(app)
    assert "Verdict: worked" in shown and "Reminder letters raised on-time payment by" in shown
    counts = duckdb.sql(
        "SELECT arm, count(*), sum(paid_on_time::INT) FROM read_parquet($path) "
        "WHERE mailed_at::DATE BETWEEN DATE '2025-10-01' AND DATE '2025-12-31' "
        "AND paid_on_time IS NOT NULL GROUP BY arm",
        params={"path": str(DATA / "reminder_letters.parquet")}).fetchall()
    arms = {r["Arm"]: r for r in frame_with(app, "Participants (n)").iter_rows(named=True)}
    for arm, n, yes in counts:
        assert arms[arm]["Participants (n)"] == n
        assert arms[arm]["Outcome rate"] == f"{yes / n:.1%}"
    assert "Was the sample large enough?" in shown and "Yes. With" in shown
    log = frame_with(app, "Verdict")
    assert log["Experiment"].to_list() == ["Reminder letters before the payment due date"]
    assert log["Result"].to_list() == ["worked"]
    assert any({"ci_rule", "effect_point", "reference_rules"} <= layer_names(s) for s in chart_specs(app))


@pytest.mark.parametrize("page", ["pages/providers.py", "pages/pay_for_success.py", "pages/experiments.py"])
def test_broken_contracts_are_shown_plainly(page, tmp_path, monkeypatch):
    """A contract naming a missing column is listed with file, line and id; the page still renders."""
    import shutil

    for name in ("metrics.yaml", "contracts.yaml", "experiments.yaml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    (tmp_path / "data").symlink_to(DATA)
    (tmp_path / "queries").symlink_to(PROJECT_ROOT / "queries")
    text = (tmp_path / "contracts.yaml").read_text()
    (tmp_path / "contracts.yaml").write_text(text.replace("column: jail_bed_days", "column: jail_nights")
                                             .replace("provider: Bridgeway Housing\n    service: Rapid rehousing\n"
                                                      "    department: hs\n    source: homeless_enrollments",
                                                      "provider: Bridgeway Housing\n    service: Rapid rehousing\n"
                                                      "    department: hs\n    source: homeless_enrolments"))
    (tmp_path / "experiments.yaml").write_text((tmp_path / "experiments.yaml").read_text()
                                               .replace("outcome_column: paid_on_time", "outcome_column: paid"))
    monkeypatch.setenv("CITYSTAT_REGISTRY", str(tmp_path / "metrics.yaml"))
    app = render(page)
    problems = "\n".join(e.value for e in app.error)
    expected = {"pages/providers.py": "contract hs_bridgeway",
                "pages/pay_for_success.py": "'jail_nights' is not in source 'pfs_participants'",
                "pages/experiments.py": "'paid' is not in source 'reminder_letters'"}[page]
    assert expected in problems
    assert "contracts.yaml:" in problems or "experiments.yaml:" in problems

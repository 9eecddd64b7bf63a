"""Risk adjustment on data where the truth is known, and O/E intervals against independent
computations (statsmodels' own Poisson interval, scipy's gamma quantiles, published table
values)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.rates import confint_poisson

from citystat.results.models import ContractMetric, load_contracts
from citystat.results.risk import (RiskModelError, contract_scorecards, exact_poisson_interval,
                                   expected_by_provider, expected_by_provider_month,
                                   expected_mean_by_provider, fit_risk_model, flag_for,
                                   metric_by_provider)

COVARIATES = ["chronic", "age", "household"]


def synthetic_clients(seed: int = 2026) -> pl.DataFrame:
    """Exits to permanent housing drawn from a known logistic model.

    A: a much harder population (chronic, older, few families) and NO provider effect.
    B: a typical population and a real negative effect (-0.9 on the log-odds).
    C, D, E: typical population, no effect. B is kept smaller so the system average (which
    includes B) stays close to the no-effect truth.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for provider, hard, effect, n in [("A", True, 0.0, 1200), ("B", False, -0.9, 400),
                                      ("C", False, 0.0, 1200), ("D", False, 0.0, 1200),
                                      ("E", False, 0.0, 1200)]:
        chronic = rng.random(n) < (0.7 if hard else 0.2)
        age = rng.normal(52 if hard else 38, 10, n)
        household = np.where(rng.random(n) < (0.05 if hard else 0.3), "family", "single")
        logit = 0.4 - 1.2 * chronic - 0.03 * (age - 40) + 0.6 * (household == "family") + effect
        exited = rng.random(n) < 1 / (1 + np.exp(-logit))
        month = rng.integers(1, 13, n)
        parts.append(pl.DataFrame({
            "provider": [provider] * n, "chronic": chronic, "age": age, "household": household,
            "exited_permanent": exited,
            "exited_at": [date(2025, int(m), 15) for m in month],
        }))
    return pl.concat(parts)


@pytest.fixture(scope="module")
def clients() -> pl.DataFrame:
    return synthetic_clients()


@pytest.fixture(scope="module")
def table(clients: pl.DataFrame) -> pl.DataFrame:
    model = fit_risk_model(clients, "exited_permanent", COVARIATES)
    return expected_by_provider(clients, model, "provider", direction="higher")


def row(table: pl.DataFrame, provider: str) -> dict:
    return table.filter(pl.col("provider") == provider).row(0, named=True)


def test_harder_population_with_equal_effectiveness_is_not_flagged(table: pl.DataFrame) -> None:
    a = row(table, "A")
    # Raw, A looks worst of all: its clients are harder.
    assert a["raw_rank"] == 5
    assert a["raw_rate"] < row(table, "B")["raw_rate"]
    # Adjusted, A is as expected and not flagged; it moves above B.
    assert a["flag"] is None
    assert a["ci_low"] < 1 < a["ci_high"]
    assert a["adjusted_rank"] < row(table, "B")["adjusted_rank"]


def test_truly_worse_provider_is_flagged_worse(table: pl.DataFrame) -> None:
    b = row(table, "B")
    assert b["flag"] == "worse"
    assert b["ci_high"] < 1
    assert b["adjusted_rank"] == 5
    # the true odds ratio exp(-0.9) ~ 0.41 means roughly 25-35 % fewer exits than expected
    assert 0.55 < b["oe_ratio"] < 0.8


def test_expected_is_sum_of_statsmodels_logit_probabilities(clients: pl.DataFrame,
                                                            table: pl.DataFrame) -> None:
    """Independent fit: an explicit design matrix and sm.Logit, not the formula interface."""
    x = np.column_stack([
        np.ones(clients.height),
        clients["chronic"].cast(pl.Float64).to_numpy(),
        clients["age"].to_numpy(),
        (clients["household"] == "single").cast(pl.Float64).to_numpy(),  # reference: family
    ])
    y = clients["exited_permanent"].cast(pl.Float64).to_numpy()
    p = sm.Logit(y, x).fit(disp=0).predict(x)
    expected = (clients.with_columns(p=pl.Series(p)).group_by("provider")
                .agg(e=pl.col("p").sum(), o=pl.col("exited_permanent").sum()))
    for provider, e, o in expected.iter_rows():
        got = row(table, provider)
        assert got["expected"] == pytest.approx(e, rel=1e-6)
        assert got["observed"] == o
        assert got["oe_ratio"] == pytest.approx(o / e, rel=1e-6)
    # with an intercept, logistic regression reproduces the total: sum(E) == sum(O)
    assert table["expected"].sum() == pytest.approx(table["observed"].sum(), rel=1e-6)


def test_adjusted_rate_is_oe_times_overall_rate(clients: pl.DataFrame, table: pl.DataFrame) -> None:
    overall = clients["exited_permanent"].mean()
    for r in table.iter_rows(named=True):
        assert r["adjusted_rate"] == pytest.approx(min(1.0, r["oe_ratio"] * overall))
        assert r["raw_rate"] == pytest.approx(r["observed"] / r["n"])


@pytest.mark.parametrize("observed,expected", [(0, 4.0), (1, 2.5), (10, 10.0), (37, 52.3), (640, 842.8)])
def test_exact_interval_matches_statsmodels_and_gamma_quantiles(observed: int, expected: float) -> None:
    low, high = exact_poisson_interval(observed, expected)
    sm_low, sm_high = confint_poisson(observed, expected, method="exact-c")
    assert low == pytest.approx(sm_low, rel=1e-9, abs=1e-12)
    assert high == pytest.approx(sm_high, rel=1e-9)
    # the same limits via the gamma distribution (chi2(2k)/2 is Gamma(k))
    g_low = stats.gamma.ppf(0.025, observed) / expected if observed else 0.0
    assert low == pytest.approx(g_low, rel=1e-9, abs=1e-12)
    assert high == pytest.approx(stats.gamma.ppf(0.975, observed + 1) / expected, rel=1e-9)


def test_exact_interval_hand_worked_table_values() -> None:
    # Classic exact Poisson 95 % limits: 10 events -> 4.795 to 18.390; 0 events -> 0 to 3.689
    low, high = exact_poisson_interval(10, 10.0)
    assert (round(low, 3), round(high, 3)) == (0.480, 1.839)
    low, high = exact_poisson_interval(0, 1.0)
    assert low == 0.0 and high == pytest.approx(-np.log(0.025), rel=1e-9)


def test_flags_follow_direction() -> None:
    assert flag_for(1.1, 1.3, "higher") == "better"
    assert flag_for(1.1, 1.3, "lower") == "worse"
    assert flag_for(0.7, 0.9, "lower") == "better"
    assert flag_for(0.9, 1.1, "higher") is None
    assert flag_for(None, None, "higher") is None


def test_monthly_table_adds_up_to_the_whole(clients: pl.DataFrame, table: pl.DataFrame) -> None:
    model = fit_risk_model(clients, "exited_permanent", COVARIATES)
    monthly = expected_by_provider_month(clients, model, "provider", "exited_at")
    assert monthly.height == 5 * 12
    assert set(monthly["month"].to_list()) == {date(2025, m, 1) for m in range(1, 13)}
    sums = monthly.group_by("provider").agg(pl.col("observed").sum(), pl.col("expected").sum(),
                                            pl.col("n").sum())
    for provider, observed, expected, n in sums.iter_rows():
        whole = row(table, provider)
        assert (observed, n) == (whole["observed"], whole["n"])
        assert expected == pytest.approx(whole["expected"], rel=1e-9)
    # ranks are within each month: each month ranks 1..5
    assert monthly.group_by("month").agg(pl.col("adjusted_rank").max())["adjusted_rank"].to_list() == [5] * 12


def test_length_of_stay_mean_model_separates_harder_clients_from_slower_provider() -> None:
    """Stays: chronic clients stay 1.8x longer (harder population at S), provider T is truly
    1.6x slower (and small, so the system average stays near the truth); lower is better."""
    rng = np.random.default_rng(11)
    parts = []
    for provider, chronic_share, factor, n in [("S", 0.8, 1.0, 600), ("T", 0.2, 1.6, 100),
                                               ("U", 0.2, 1.0, 600), ("V", 0.2, 1.0, 600)]:
        chronic = rng.random(n) < chronic_share
        mean = 40 * np.where(chronic, 1.8, 1.0) * factor
        stay = np.round(rng.gamma(2.0, mean / 2.0))  # includes zero-day stays
        parts.append(pl.DataFrame({"provider": [provider] * n, "chronic": chronic, "days": stay}))
    frame = pl.concat(parts)
    model = fit_risk_model(frame, "days", ["chronic"], family="poisson")
    result = expected_mean_by_provider(frame, model, "provider", direction="lower")
    flags = dict(zip(result["provider"], result["flag"]))
    assert flags["T"] == "worse"
    assert flags["S"] is None
    rank = {r["provider"]: (r["raw_rank"], r["adjusted_rank"]) for r in result.iter_rows(named=True)}
    # raw, S stays longer than the average providers U and V; adjusted, it is not behind both
    assert rank["S"][0] > max(rank["U"][0], rank["V"][0])
    assert rank["S"][1] < max(rank["U"][1], rank["V"][1])
    assert rank["T"] == (4, 4)
    s = result.filter(pl.col("provider") == "S").row(0, named=True)
    assert s["raw_median"] == frame.filter(pl.col("provider") == "S")["days"].median()


def test_declared_metric_excludes_null_outcomes_and_hand_checks_raw_rates() -> None:
    frame = pl.DataFrame({
        "provider": ["P", "P", "P", "P", "Q", "Q", "Q"],
        "exit_destination": ["permanent", "permanent", "permanent", "temporary", "permanent",
                             "permanent", None],
        "returned_within_12m": [True, False, None, None, False, None, None],
        "exited_at": [date(2024, 1, 5)] * 6 + [None],
    })
    metric = ContractMetric(id="returns", title="Returns", filter="exit_destination = 'permanent'",
                            outcome="returned_within_12m", kind="rate", direction="lower")
    table = metric_by_provider(frame, metric, "provider", "exited_at")
    got = {r["provider"]: (r["n"], r["raw_value"], r["raw_rank"]) for r in table.iter_rows(named=True)}
    # P: 3 permanent exits, one with unknown return -> 1 of 2; Q: 1 known -> 0 of 1
    assert got == {"P": (2, 0.5, 2), "Q": (1, 0.0, 1)}
    assert table["flag"].null_count() == 2 and table["oe_ratio"].null_count() == 2


def test_risk_model_errors_name_the_problem() -> None:
    frame = pl.DataFrame({"y": [True, False] * 20, "x": list(range(40))})
    with pytest.raises(RiskModelError, match="'nope'"):
        fit_risk_model(frame, "y", ["nope"])
    with pytest.raises(RiskModelError, match="no variation"):
        fit_risk_model(frame.with_columns(y=pl.lit(True)), "y", ["x"])


def test_sample_city_contracts_recover_the_generator_truth(tmp_path) -> None:
    """The bundled contracts on freshly generated sample data: Harbor House (harder clients,
    no true effect) is not flagged; Northside (truly worse) is flagged on both outcomes."""
    from devtools.sample import PROVIDER_EFFECTS
    from devtools.sample.build import generate

    generate(tmp_path, extracts=["homeless_enrollments"])
    frame = pl.read_parquet(tmp_path / "homeless_enrollments.parquet")
    contracts = load_contracts("contracts.yaml").provider_contracts
    card = contract_scorecards(contracts, {"homeless_enrollments": frame})
    flag = {(r["provider"], r["metric_id"]): r["flag"] for r in card.iter_rows(named=True)}
    harder = next(p for p, e in PROVIDER_EFFECTS.items() if "harder" in e.note)
    worse = next(p for p, e in PROVIDER_EFFECTS.items() if e.exit_permanent_log_odds < 0)
    assert flag[(harder, "exits_to_permanent")] is None
    assert flag[(harder, "returns_within_12m")] is None
    assert flag[(worse, "exits_to_permanent")] == "worse"
    assert flag[(worse, "returns_within_12m")] == "worse"
    raw_rank = {r["provider"]: r["raw_rank"] for r in
                card.filter(pl.col("metric_id") == "exits_to_permanent").iter_rows(named=True)}
    assert raw_rank[harder] == max(raw_rank.values())  # raw, the harder population looks worst


def test_monthly_scorecard_compares_with_the_system_in_the_same_month(clients: pl.DataFrame) -> None:
    """With month as a covariate, a logistic fit's score equations force expected = observed
    in every month summed over providers, whatever the month's overall level."""
    june = pl.col("exited_at") == date(2025, 6, 15)
    # a system-wide collapse in June: every provider's exits drop to 1 in 5 that month
    collapsed = clients.with_row_index("i").with_columns(
        exited_permanent=pl.when(june).then(pl.col("i") % 5 == 0)
        .otherwise(pl.col("exited_permanent"))).drop("i")
    metric = ContractMetric(id="exits", title="Exits", outcome="exited_permanent", kind="rate",
                            direction="higher", risk_adjust=True, covariates=COVARIATES)
    monthly = metric_by_provider(collapsed, metric, "provider", "exited_at", by_month=True)
    totals = monthly.group_by("month").agg(pl.col("expected").sum(),
                                           (pl.col("raw_value") * pl.col("n")).sum().alias("observed"))
    for _, expected, observed in totals.iter_rows():
        assert expected == pytest.approx(observed, rel=1e-6)
    in_june = monthly.filter(pl.col("month") == date(2025, 6, 1))
    assert in_june["raw_value"].max() < 0.35  # everyone's raw rate collapsed that month...
    # ...but no provider is called worse for it (other than B, which truly is)
    assert "worse" not in in_june.filter(pl.col("provider") != "B")["flag"].to_list()


def test_month_without_variation_is_shown_raw_not_flagged(clients: pl.DataFrame) -> None:
    march = pl.col("exited_at") == date(2025, 3, 15)
    quiet = clients.with_columns(exited_permanent=pl.when(march).then(False)
                                 .otherwise(pl.col("exited_permanent")))
    metric = ContractMetric(id="exits", title="Exits", outcome="exited_permanent", kind="rate",
                            direction="higher", risk_adjust=True, covariates=COVARIATES)
    monthly = metric_by_provider(quiet, metric, "provider", "exited_at", by_month=True)
    in_march = monthly.filter(pl.col("month") == date(2025, 3, 1))
    assert in_march.height == 5
    assert in_march["raw_value"].to_list() == [0.0] * 5
    assert in_march["oe_ratio"].null_count() == 5 and in_march["flag"].null_count() == 5
    assert monthly.filter(pl.col("month") != date(2025, 3, 1))["oe_ratio"].null_count() == 0

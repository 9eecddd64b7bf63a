"""A/B effects, intervals and p-values against hand-worked examples, scipy and statsmodels."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from citystat.results.abtest import (ExperimentDataError, analyse_experiment, difference_in_means,
                                     two_proportions, what_works_log)
from citystat.results.models import Experiment, load_experiments


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval, written out from the textbook formula."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_two_proportions_hand_worked() -> None:
    # 60/100 vs 40/100: pooled p = 0.5, SE = sqrt(0.25 * 0.02) = 0.0707107, z = 2.828427
    est = two_proportions(60, 100, 40, 100)
    assert est.difference == pytest.approx(0.2)
    assert est.p_value == pytest.approx(2 * stats.norm.sf(0.2 / math.sqrt(0.25 * 0.02)), rel=1e-9)
    assert est.p_value == pytest.approx(0.004678, abs=1e-6)
    # Newcombe hybrid score interval from two Wilson intervals
    l1, u1 = wilson(60, 100)
    l2, u2 = wilson(40, 100)
    assert est.ci_low == pytest.approx(0.2 - math.sqrt((0.6 - l1) ** 2 + (u2 - 0.4) ** 2), rel=1e-9)
    assert est.ci_high == pytest.approx(0.2 + math.sqrt((u1 - 0.6) ** 2 + (0.4 - l2) ** 2), rel=1e-9)


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
    # method 10 (hybrid score): +0.0524 to +0.3339
    est = two_proportions(56, 70, 48, 80)
    assert (round(est.ci_low, 4), round(est.ci_high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize("x1,n1,x2,n2", [(5237, 7921, 5000, 8079), (12, 40, 20, 44), (3, 50, 0, 48)])
def test_two_proportions_match_statsmodels_and_scipy(x1: int, n1: int, x2: int, n2: int) -> None:
    est = two_proportions(x1, n1, x2, n2)
    _, p = proportions_ztest([x1, x2], [n1, n2])
    low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert est.p_value == pytest.approx(p, rel=1e-9)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), rel=1e-9)
    # the pooled z-test is the uncorrected chi-square test on the 2x2 table
    chi2_p = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False).pvalue
    assert est.p_value == pytest.approx(chi2_p, rel=1e-7)


def test_welch_hand_worked() -> None:
    # means 3 and 6; variances 2.5 and 10; SE = sqrt(0.5 + 2) = 1.5811; t = -1.8974;
    # Welch df = 2.5^2 / (0.5^2/4 + 2^2/4) = 5.882
    t_arm, c_arm = np.array([1, 2, 3, 4, 5.0]), np.array([2, 4, 6, 8, 10.0])
    est = difference_in_means(t_arm, c_arm)
    se, df = math.sqrt(2.5), 6.25 / (0.0625 + 1.0)
    assert est.difference == pytest.approx(-3.0)
    assert est.p_value == pytest.approx(2 * stats.t.sf(3 / se, df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * se
    assert (est.ci_low, est.ci_high) == pytest.approx((-3 - half, -3 + half), rel=1e-9)


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    t_arm, c_arm = rng.normal(10.5, 3, 300), rng.normal(10, 6, 120)
    est = difference_in_means(t_arm, c_arm)
    ref = stats.ttest_ind(t_arm, c_arm, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (est.ci_low, est.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def experiment(**changes) -> Experiment:
    base = dict(id="letters", title="Letters", department="fin", source="letters",
                assignment_column="arm", control_label="control", treatment_label="reminder",
                outcome_column="paid", outcome_kind="proportion", treatment_name="Reminder letters",
                outcome_label="on-time payment", date_column="mailed_at", start=date(2025, 10, 1),
                end=date(2025, 12, 31), hypothesis="Letters help.", minimum_detectable_effect=0.03,
                status="complete")
    return Experiment(**{**base, **changes})


def letters_frame(x_t: int, n_t: int, x_c: int, n_c: int) -> pl.DataFrame:
    rows = ([("reminder", True)] * x_t + [("reminder", False)] * (n_t - x_t)
            + [("control", True)] * x_c + [("control", False)] * (n_c - x_c))
    frame = pl.DataFrame(rows, schema=["arm", "paid"], orient="row")
    return frame.with_columns(mailed_at=pl.lit(date(2025, 11, 3)))


def test_analyse_experiment_proportions_and_verdict() -> None:
    frame = pl.concat([
        letters_frame(5237, 7921, 5000, 8079),
        # outside the window, an unknown arm and a null outcome: all ignored
        letters_frame(10, 10, 0, 10).with_columns(mailed_at=pl.lit(date(2026, 2, 1))),
        pl.DataFrame({"arm": ["holdout", "reminder"], "paid": [True, None],
                      "mailed_at": [date(2025, 11, 3)] * 2}),
    ])
    result = analyse_experiment(experiment(), frame)
    assert (result.treatment.n, result.control.n) == (7921, 8079)
    assert result.treatment.value == pytest.approx(5237 / 7921)
    assert result.effect == pytest.approx(5237 / 7921 - 5000 / 8079)
    assert result.relative_lift == pytest.approx(result.effect / (5000 / 8079))
    assert result.significant and result.result == "worked"
    # power by hand: Cohen's h for 0.6189 -> 0.6489, normal test
    p_c = 5000 / 8079
    h = abs(2 * math.asin(math.sqrt(p_c + 0.03)) - 2 * math.asin(math.sqrt(p_c)))
    z = stats.norm.ppf(0.975)
    se = math.sqrt(1 / 7921 + 1 / 8079)
    assert result.achieved_power == pytest.approx(stats.norm.sf(z - h / se) + stats.norm.cdf(-z - h / se), rel=1e-6)
    # n per arm = 2 ((z_alpha/2 + z_power) / h)^2 (ignoring the far tail, which is ~1e-6 here)
    assert result.required_n_per_arm == math.ceil(2 * ((z + stats.norm.ppf(0.8)) / h) ** 2)
    assert result.large_enough
    assert result.verdict == ("Reminder letters raised on-time payment by 4.2 points (95 % CI 2.7 to 5.7); "
                              "this is very unlikely to be chance (p < 0.001). The test was large enough "
                              "to detect the 3-point effect it was designed for.")


def test_small_null_experiment_is_called_inconclusive() -> None:
    result = analyse_experiment(experiment(status="running"), letters_frame(33, 100, 31, 100))
    assert not result.significant
    assert result.result == "inconclusive (too small)"
    assert not result.large_enough
    assert result.verdict.startswith("Interim result: Reminder letters made no clear difference to on-time payment")
    assert "could well be chance (p = 0.7" in result.verdict
    assert "too small to reliably detect the 3-point effect" in result.verdict


def test_mean_outcome_lower_is_better() -> None:
    rng = np.random.default_rng(9)
    frame = pl.DataFrame({
        "arm": ["reminder"] * 400 + ["control"] * 400,
        "days_late": np.concatenate([rng.normal(8, 4, 400), rng.normal(10, 4, 400)]),
    })
    exp = experiment(outcome_column="days_late", outcome_kind="mean", direction="lower",
                     outcome_label="days late", unit="days", date_column=None,
                     minimum_detectable_effect=1.0)
    result = analyse_experiment(exp, frame)
    ref = stats.ttest_ind(frame.filter(pl.col("arm") == "reminder")["days_late"].to_numpy(),
                          frame.filter(pl.col("arm") == "control")["days_late"].to_numpy(), equal_var=False)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.effect < 0 and result.result == "worked"
    assert result.verdict.startswith(f"Reminder letters lowered days late by {abs(result.effect):.1f} days (95 % CI ")
    assert "1-day effect" in result.verdict


def test_errors_name_the_experiment() -> None:
    frame = letters_frame(5, 10, 5, 10).with_columns(arm=pl.lit("other"))
    with pytest.raises(ExperimentDataError, match="experiment 'letters'.*'control' or 'reminder'"):
        analyse_experiment(experiment(), frame)
    with pytest.raises(ExperimentDataError, match="experiment 'letters'.*'paid'"):
        analyse_experiment(experiment(), frame.drop("paid"))


def test_what_works_log_lists_every_experiment() -> None:
    worked = analyse_experiment(experiment(), letters_frame(700, 1000, 600, 1000))
    planned = analyse_experiment(experiment(id="texts", status="planned"), letters_frame(0, 0, 0, 0))
    log = what_works_log([worked, planned])
    assert log["experiment_id"].to_list() == ["letters", "texts"]
    assert log["result"].to_list() == ["worked", "no data"]
    assert log.row(0, named=True)["n_treatment"] == 1000
    assert log.row(0, named=True)["effect"] == pytest.approx(0.1)
    assert log.row(1, named=True)["effect"] is None


def test_bundled_experiments_file_loads() -> None:
    exps = load_experiments("experiments.yaml").experiments
    assert [e.id for e in exps] == ["reminder_letters"]
    assert exps[0].assignment_column == "arm" and exps[0].treatment_label == "reminder"

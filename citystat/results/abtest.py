"""A/B test analysis: per-arm summaries, the effect with its interval and p-value, a power
check, and a verdict a department head can read aloud.

Methods (all from statsmodels, none hand-fitted):
- two proportions: effect = treatment rate − control rate; 95 % interval by Newcombe's hybrid
  score method (good coverage even for rates near 0 or 1, unlike the Wald interval); p-value
  from the pooled two-proportion z-test (identical to the uncorrected chi-square test). The
  two can disagree exactly at the boundary; "significant" always means p < alpha.
- difference in means: Welch's t-test and its Welch–Satterthwaite interval (no assumption
  that the arms have equal variance).
- power: the chance this test had of detecting the experiment's declared minimum detectable
  effect, at the sample sizes actually reached (Cohen's h with a normal test for
  proportions, Cohen's d with a t-test for means; the control arm supplies the baseline rate or
  the spread). "Large enough" = power ≥ the experiment's declared power (0.8).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import polars as pl
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import (confint_proportions_2indep, proportion_effectsize,
                                          proportions_ztest)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from citystat.results.models import Experiment


class ExperimentDataError(ValueError):
    """The experiment's data cannot be analysed (missing column, empty arm...), named by id."""


@dataclass(frozen=True)
class EffectEstimate:
    """treatment − control, with a (1 − alpha) interval and a two-sided p-value."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str


@dataclass(frozen=True)
class ArmResult:
    label: str
    n: int
    value: float  # rate (share) for proportions, mean otherwise
    successes: int | None = None
    sd: float | None = None


@dataclass(frozen=True)
class ExperimentResult:
    experiment_id: str
    title: str
    department: str
    hypothesis: str
    status: str
    outcome_kind: str
    control: ArmResult | None
    treatment: ArmResult | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    relative_lift: float | None  # effect / control value
    significant: bool | None
    achieved_power: float | None
    required_n_per_arm: int | None
    large_enough: bool | None
    result: str  # worked | backfired | no effect detected | inconclusive (too small) | no data
    verdict: str


def two_proportions(successes_treatment: int, n_treatment: int, successes_control: int,
                    n_control: int, alpha: float = 0.05) -> EffectEstimate:
    """Difference in proportions (treatment − control): Newcombe interval, pooled z p-value."""
    if min(n_treatment, n_control) <= 0:
        raise ExperimentDataError("each arm needs at least one observation")
    low, high = confint_proportions_2indep(successes_treatment, n_treatment, successes_control,
                                           n_control, method="newcomb", compare="diff", alpha=alpha)
    pooled = (successes_treatment + successes_control) / (n_treatment + n_control)
    if pooled in (0.0, 1.0):
        p_value = 1.0  # both arms all-no or all-yes: no evidence of any difference
    else:
        _, p_value = proportions_ztest([successes_treatment, successes_control],
                                       [n_treatment, n_control])
    diff = successes_treatment / n_treatment - successes_control / n_control
    return EffectEstimate(float(diff), float(low), float(high), float(p_value),
                          "two proportions: Newcombe interval, pooled z-test")


def difference_in_means(treatment: np.ndarray, control: np.ndarray,
                        alpha: float = 0.05) -> EffectEstimate:
    """Difference in means (treatment − control) by Welch's unequal-variance t-test."""
    treatment = np.asarray(treatment, dtype=float)
    control = np.asarray(control, dtype=float)
    if min(len(treatment), len(control)) < 2:
        raise ExperimentDataError("each arm needs at least two observations for a t-test")
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p_value, _ = compare.ttest_ind(usevar="unequal")
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    return EffectEstimate(float(treatment.mean() - control.mean()), float(low), float(high),
                          float(p_value), "difference in means: Welch t-test")


def power_for_proportions(control_rate: float, minimum_effect: float, n_treatment: int,
                          n_control: int, alpha: float, direction: str = "higher") -> float:
    """Power to detect ``control_rate ± minimum_effect`` at these sample sizes (Cohen's h)."""
    size = _cohens_h(control_rate, minimum_effect, direction)
    if size == 0 or n_treatment <= 0 or n_control <= 0:
        return 0.0
    return float(NormalIndPower().power(effect_size=size, nobs1=n_treatment, alpha=alpha,
                                        ratio=n_control / n_treatment))


def required_n_for_proportions(control_rate: float, minimum_effect: float, alpha: float,
                               power: float, direction: str = "higher") -> int:
    """Participants needed per arm (equal arms) to reach ``power``."""
    size = _cohens_h(control_rate, minimum_effect, direction)
    n = NormalIndPower().solve_power(effect_size=size, nobs1=None, alpha=alpha, power=power, ratio=1.0)
    return int(math.ceil(float(np.asarray(n).item())))


def power_for_means(sd: float, minimum_effect: float, n_treatment: int, n_control: int,
                    alpha: float) -> float:
    """Power of a two-sample t-test to detect ``minimum_effect`` given the outcome's spread."""
    if sd <= 0:
        return 1.0
    return float(TTestIndPower().power(effect_size=minimum_effect / sd, nobs1=n_treatment,
                                       alpha=alpha, ratio=n_control / n_treatment))


def required_n_for_means(sd: float, minimum_effect: float, alpha: float, power: float) -> int:
    if sd <= 0:
        return 2
    n = TTestIndPower().solve_power(effect_size=minimum_effect / sd, nobs1=None, alpha=alpha,
                                    power=power, ratio=1.0)
    return int(math.ceil(float(np.asarray(n).item())))


def _cohens_h(control_rate: float, minimum_effect: float, direction: str) -> float:
    hoped = control_rate + minimum_effect if direction == "higher" else control_rate - minimum_effect
    hoped = min(max(hoped, 1e-9), 1 - 1e-9)
    return abs(float(proportion_effectsize(hoped, min(max(control_rate, 1e-9), 1 - 1e-9))))


def analyse_experiment(experiment: Experiment, frame: pl.DataFrame) -> ExperimentResult:
    """Analyse one declared experiment on its source extract.

    Rows are limited to ``start..end`` on ``date_column`` when one is declared, and rows with a
    null outcome are dropped. Arms other than the two declared are ignored.
    """
    who = f"experiment '{experiment.id}'"
    needed = [experiment.assignment_column, experiment.outcome_column]
    if experiment.date_column:
        needed.append(experiment.date_column)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ExperimentDataError(f"{who}: column(s) {missing} not in the data "
                                  f"(columns: {sorted(frame.columns)})")
    rows = frame
    if experiment.date_column:
        day = pl.col(experiment.date_column).cast(pl.Date)
        rows = rows.filter(day >= experiment.start)
        if experiment.end is not None:
            rows = rows.filter(day <= experiment.end)
    rows = rows.filter(pl.col(experiment.outcome_column).is_not_null())
    arm = pl.col(experiment.assignment_column).cast(pl.String)
    control = rows.filter(arm == experiment.control_label).get_column(experiment.outcome_column)
    treated = rows.filter(arm == experiment.treatment_label).get_column(experiment.outcome_column)
    if control.len() == 0 or treated.len() == 0:
        if experiment.status == "planned" or rows.height == 0:
            return _no_data(experiment)
        present = sorted(str(v) for v in frame.get_column(experiment.assignment_column).unique().drop_nulls())
        raise ExperimentDataError(
            f"{who}: arm '{experiment.control_label}' or '{experiment.treatment_label}' has no rows "
            f"(values in {experiment.assignment_column!r}: {present})")

    if experiment.outcome_kind == "proportion":
        c_yes, t_yes = _successes(control, who), _successes(treated, who)
        estimate = two_proportions(t_yes, treated.len(), c_yes, control.len(), experiment.alpha)
        control_arm = ArmResult(experiment.control_label, control.len(), c_yes / control.len(), c_yes)
        treated_arm = ArmResult(experiment.treatment_label, treated.len(), t_yes / treated.len(), t_yes)
        power = power_for_proportions(control_arm.value, experiment.minimum_detectable_effect,
                                      treated.len(), control.len(), experiment.alpha, experiment.direction)
        needed_n = required_n_for_proportions(control_arm.value, experiment.minimum_detectable_effect,
                                              experiment.alpha, experiment.power, experiment.direction)
    else:
        if not control.dtype.is_numeric():
            raise ExperimentDataError(f"{who}: outcome {experiment.outcome_column!r} must be numeric "
                                      f"for a difference in means, got {control.dtype}")
        c_values, t_values = control.cast(pl.Float64).to_numpy(), treated.cast(pl.Float64).to_numpy()
        estimate = difference_in_means(t_values, c_values, experiment.alpha)
        control_arm = ArmResult(experiment.control_label, len(c_values), float(c_values.mean()),
                                sd=float(c_values.std(ddof=1)))
        treated_arm = ArmResult(experiment.treatment_label, len(t_values), float(t_values.mean()),
                                sd=float(t_values.std(ddof=1)))
        spread = math.sqrt((control_arm.sd ** 2 + treated_arm.sd ** 2) / 2)
        power = power_for_means(spread, experiment.minimum_detectable_effect, len(t_values),
                                len(c_values), experiment.alpha)
        needed_n = required_n_for_means(spread, experiment.minimum_detectable_effect,
                                        experiment.alpha, experiment.power)

    significant = estimate.p_value < experiment.alpha
    large_enough = power >= experiment.power
    lift = estimate.difference / control_arm.value if control_arm.value != 0 else None
    result = _classify(estimate.difference, significant, large_enough, experiment.direction)
    verdict = plain_language_verdict(experiment, estimate, significant, large_enough, power, needed_n)
    return ExperimentResult(
        experiment_id=experiment.id, title=experiment.title, department=experiment.department,
        hypothesis=experiment.hypothesis, status=experiment.status,
        outcome_kind=experiment.outcome_kind, control=control_arm, treatment=treated_arm,
        effect=estimate.difference, ci_low=estimate.ci_low, ci_high=estimate.ci_high,
        p_value=estimate.p_value, relative_lift=lift, significant=significant,
        achieved_power=power, required_n_per_arm=needed_n, large_enough=large_enough,
        result=result, verdict=verdict)


def _successes(values: pl.Series, who: str) -> int:
    if values.dtype == pl.Boolean:
        return int(values.sum())
    if values.dtype.is_numeric() and values.is_in([0, 1]).all():
        return int(values.sum())
    raise ExperimentDataError(f"{who}: a proportion outcome must be true/false (or 0/1), got {values.dtype}")


def _classify(effect: float, significant: bool, large_enough: bool, direction: str) -> str:
    if significant:
        good = effect > 0 if direction == "higher" else effect < 0
        return "worked" if good else "backfired"
    return "no effect detected" if large_enough else "inconclusive (too small)"


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def plain_language_verdict(experiment: Experiment, estimate: EffectEstimate, significant: bool,
                           large_enough: bool, power: float, required_n_per_arm: int) -> str:
    """E.g. "Reminder letters raised on-time payment by 5.1 points (95 % CI 3.6 to 6.6); this is
    very unlikely to be chance (p < 0.001). The test was large enough to detect the 3-point
    effect it was designed for." Interval bounds are shown as sizes of the change described."""
    level = f"{round((1 - experiment.alpha) * 100):g} %"
    size = _amount(experiment, abs(estimate.difference))
    if estimate.difference >= 0:
        lo, hi, verb = estimate.ci_low, estimate.ci_high, "raised"
    else:
        lo, hi, verb = -estimate.ci_high, -estimate.ci_low, "lowered"
    interval = f"{level} CI {_amount(experiment, lo, bare=True)} to {_amount(experiment, hi, bare=True)}"
    p_text = format_p(estimate.p_value)
    if significant:
        chance = "very unlikely" if estimate.p_value < 0.001 else "unlikely"
        first = (f"{experiment.treatment_name} {verb} {experiment.outcome_label} by {size} "
                 f"({interval}); this is {chance} to be chance ({p_text}).")
    else:
        first = (f"{experiment.treatment_name} made no clear difference to "
                 f"{experiment.outcome_label}: the estimate is {size} {'up' if verb == 'raised' else 'down'} "
                 f"({interval}), which could well be chance ({p_text}).")
    mde = _amount(experiment, experiment.minimum_detectable_effect, adjective=True)
    if large_enough:
        second = f"The test was large enough to detect the {mde} effect it was designed for."
    else:
        second = (f"The test was too small to reliably detect the {mde} effect it was designed for "
                  f"(power {power:.0%}; about {required_n_per_arm:,} per arm needed).")
    prefix = "Interim result: " if experiment.status == "running" else ""
    return f"{prefix}{first} {second}"


def _amount(experiment: Experiment, value: float, bare: bool = False, adjective: bool = False) -> str:
    """0.051 -> "5.1 points" (proportions) or "12.5 days" (means); adjective -> "3-point"."""
    if experiment.outcome_kind == "proportion":
        number = f"{value * 100:.1f}".rstrip("0").rstrip(".") if adjective else f"{value * 100:.1f}"
        unit = "point"
    else:
        number = f"{value:,.2f}".rstrip("0").rstrip(".") if adjective else f"{value:,.1f}"
        unit = experiment.unit or ""
    if bare or not unit:
        return number
    if adjective:
        return f"{number}-{unit.rstrip('s')}"
    return f"{number} {unit}s" if experiment.outcome_kind == "proportion" else f"{number} {unit}"


def _no_data(experiment: Experiment) -> ExperimentResult:
    return ExperimentResult(
        experiment_id=experiment.id, title=experiment.title, department=experiment.department,
        hypothesis=experiment.hypothesis, status=experiment.status,
        outcome_kind=experiment.outcome_kind, control=None, treatment=None, effect=None,
        ci_low=None, ci_high=None, p_value=None, relative_lift=None, significant=None,
        achieved_power=None, required_n_per_arm=None, large_enough=None, result="no data",
        verdict="No results yet: the experiment has no data in its window.")


LOG_SCHEMA = {
    "experiment_id": pl.String, "title": pl.String, "department": pl.String,
    "hypothesis": pl.String, "status": pl.String, "outcome_kind": pl.String,
    "n_control": pl.Int64, "n_treatment": pl.Int64, "control_value": pl.Float64,
    "treatment_value": pl.Float64, "effect": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "p_value": pl.Float64, "relative_lift": pl.Float64,
    "achieved_power": pl.Float64, "large_enough": pl.Boolean, "result": pl.String,
    "verdict": pl.String,
}


def what_works_log(results: Iterable[ExperimentResult]) -> pl.DataFrame:
    """Every experiment and its result, one row each: the city's "what works" log."""
    rows = []
    for r in results:
        d = asdict(r)
        rows.append({
            **{k: d[k] for k in LOG_SCHEMA if k in d},
            "n_control": r.control.n if r.control else None,
            "n_treatment": r.treatment.n if r.treatment else None,
            "control_value": r.control.value if r.control else None,
            "treatment_value": r.treatment.value if r.treatment else None,
        })
    return pl.DataFrame(rows, schema=LOG_SCHEMA)

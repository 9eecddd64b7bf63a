"""Pay for Success: outcomes to date against the control group, and what they trigger.

Investors fund a programme; the government repays only for outcomes independently measured
against a comparison group (Roca in Massachusetts: a randomized control group). For each
declared outcome this module computes the treatment and control rates/means, the effect
*in the good direction* (control − treatment for incarceration, treatment − control for
employment), the relative effect (effect / control value: 0.40 = "a 40 % cut"), the
outcome units the effect represents over the treated participants evaluated so far
(jail bed-days avoided = (control mean − treatment mean) × treated n), and the payment that
level triggers. Payments are then summed and held to the contract's cap.

Payment rules (declared per outcome in contracts.yaml):
- ``price_per_unit``: price × units, paid only once the relative effect reaches
  ``minimum_relative_effect`` (a threshold below which the effect is too small to pay for);
- ``tiers``: the payment of the highest tier whose ``at_least`` the relative effect reaches.
A non-positive effect never pays; an outcome's own ``payment_cap`` applies before the
contract's. "Payments due so far" uses only participants whose outcome has been observed
(``evaluable_column``), so it grows as follow-up completes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

from citystat.results.abtest import EffectEstimate, difference_in_means, two_proportions
from citystat.results.models import PayForSuccessContract, PfsOutcome


class PfsDataError(ValueError):
    """The participants extract does not fit the contract (missing column or arm), named by id."""


@dataclass(frozen=True)
class PfsOutcomeResult:
    outcome_id: str
    title: str
    kind: str
    direction: str
    unit: str
    paid: bool
    treatment_n: int
    control_n: int
    treatment_value: float
    control_value: float
    effect: float  # positive = better for the treatment group, in the outcome's units
    relative_effect: float | None  # effect / control value
    ci_low: float  # interval and p-value for ``effect`` (95 % unless alpha says otherwise)
    ci_high: float
    p_value: float
    units: float  # effect × treated participants evaluated, e.g. bed-days avoided
    target_relative_effect: float | None
    target_met: bool | None
    payment_triggered: float  # after the outcome's own cap, before the contract cap


@dataclass(frozen=True)
class PfsResult:
    contract_id: str
    title: str
    population_size: int
    treatment_enrolled: int
    treatment_evaluated: int
    control_evaluated: int
    outcomes: list[PfsOutcomeResult] = field(default_factory=list)
    payments_triggered: float = 0.0
    payment_cap: float = 0.0
    payments_due: float = 0.0
    cap_applied: bool = False
    headroom: float = 0.0
    investment: float = 0.0

    def outcomes_frame(self) -> pl.DataFrame:
        """One row per outcome, for tables and charts."""
        return pl.DataFrame([asdict(o) for o in self.outcomes])


def payment_for(outcome: PfsOutcome, effect: float, relative_effect: float | None,
                treated_n: int) -> float:
    """The payment an outcome level triggers (after the outcome's own cap).

    >>> from citystat.results.models import PfsOutcome
    >>> beds = PfsOutcome(id="b", title="Jail bed-days", column="d", kind="mean",
    ...                   direction="lower", paid=True, price_per_unit=100.0)
    >>> payment_for(beds, effect=40.0, relative_effect=40 / 120, treated_n=929)
    3716000.0
    """
    if not outcome.paid or effect <= 0 or relative_effect is None:
        return 0.0
    if outcome.price_per_unit is not None:
        if relative_effect < outcome.minimum_relative_effect:
            return 0.0
        amount = outcome.price_per_unit * effect * treated_n
    else:
        reached = [t.payment for t in outcome.tiers if relative_effect >= t.at_least]
        amount = reached[-1] if reached else 0.0
    if outcome.payment_cap is not None:
        amount = min(amount, outcome.payment_cap)
    return float(amount)


def apply_cap(payments: list[float], cap: float) -> tuple[float, bool, float]:
    """(payments due, whether the cap bit, headroom left under the cap)."""
    total = float(sum(payments))
    due = min(total, cap)
    return due, total > cap, cap - due


def pfs_status(contract: PayForSuccessContract, participants: pl.DataFrame,
               alpha: float = 0.05) -> PfsResult:
    """Outcomes to date, target check, payments triggered, payments due (capped), headroom."""
    who = f"Pay for Success contract '{contract.id}'"
    needed = [contract.arm_column, *(o.column for o in contract.outcomes)]
    if contract.evaluable_column:
        needed.append(contract.evaluable_column)
    missing = [c for c in needed if c not in participants.columns]
    if missing:
        raise PfsDataError(f"{who}: column(s) {missing} not in the participants data")
    arm = pl.col(contract.arm_column).cast(pl.String)
    treated_all = participants.filter(arm == contract.treatment_label)
    rows = participants
    if contract.evaluable_column:
        rows = rows.filter(pl.col(contract.evaluable_column).fill_null(False))
    treated = rows.filter(arm == contract.treatment_label)
    control = rows.filter(arm == contract.control_label)
    if treated_all.height == 0 or participants.filter(arm == contract.control_label).height == 0:
        present = sorted(str(v) for v in participants.get_column(contract.arm_column).unique().drop_nulls())
        raise PfsDataError(f"{who}: arm '{contract.treatment_label}' or '{contract.control_label}' "
                           f"has no rows (values in {contract.arm_column!r}: {present})")

    results = [_outcome_result(o, treated, control, alpha, who) for o in contract.outcomes]
    payments = [r.payment_triggered for r in results]
    due, capped, headroom = apply_cap(payments, contract.payment_cap)
    return PfsResult(
        contract_id=contract.id, title=contract.title, population_size=contract.population.size,
        treatment_enrolled=treated_all.height, treatment_evaluated=treated.height,
        control_evaluated=control.height, outcomes=results, payments_triggered=float(sum(payments)),
        payment_cap=contract.payment_cap, payments_due=due, cap_applied=capped, headroom=headroom,
        investment=contract.investment)


def _outcome_result(outcome: PfsOutcome, treated: pl.DataFrame, control: pl.DataFrame,
                    alpha: float, who: str) -> PfsOutcomeResult:
    t = treated.get_column(outcome.column).drop_nulls()
    c = control.get_column(outcome.column).drop_nulls()
    if t.len() < 2 or c.len() < 2:
        raise PfsDataError(f"{who}: outcome '{outcome.id}' has fewer than two evaluated "
                           f"participants in an arm")
    if outcome.kind == "proportion":
        if t.dtype != pl.Boolean and not t.is_in([0, 1]).all():
            raise PfsDataError(f"{who}: outcome '{outcome.id}' column must be true/false")
        estimate: EffectEstimate = two_proportions(int(t.cast(pl.Int64).sum()), t.len(),
                                                   int(c.cast(pl.Int64).sum()), c.len(), alpha)
    else:
        estimate = difference_in_means(t.cast(pl.Float64).to_numpy(), c.cast(pl.Float64).to_numpy(), alpha)
    t_value = float(t.cast(pl.Float64).mean())
    c_value = float(c.cast(pl.Float64).mean())
    # estimate is treatment − control; turn it round when lower is better
    if outcome.direction == "lower":
        effect, low, high = -estimate.difference, -estimate.ci_high, -estimate.ci_low
    else:
        effect, low, high = estimate.difference, estimate.ci_low, estimate.ci_high
    relative = effect / c_value if c_value != 0 else None
    units = effect * t.len()
    target_met = (None if outcome.target_relative_effect is None or relative is None
                  else relative >= outcome.target_relative_effect)
    return PfsOutcomeResult(
        outcome_id=outcome.id, title=outcome.title, kind=outcome.kind,
        direction=outcome.direction, unit=outcome.unit, paid=outcome.paid,
        treatment_n=t.len(), control_n=c.len(), treatment_value=t_value, control_value=c_value,
        effect=effect, relative_effect=relative, ci_low=low, ci_high=high,
        p_value=estimate.p_value, units=units,
        target_relative_effect=outcome.target_relative_effect, target_met=target_met,
        payment_triggered=payment_for(outcome, effect, relative, t.len()))


def payment_schedule(contract: PayForSuccessContract, outcome_id: str, control_value: float,
                     treated_n: int, levels: list[float] | None = None) -> pl.DataFrame:
    """What each level of relative effect would pay: the table a page shows beside the result.

    Levels default to 0 %, 10 %, ... 60 % plus the target and any tier thresholds. Columns:
    relative_effect, treatment_value, effect, units, payment (outcome cap applied),
    payment_within_contract_cap, meets_target.
    """
    outcome = next((o for o in contract.outcomes if o.id == outcome_id), None)
    if outcome is None:
        raise KeyError(f"contract '{contract.id}' has no outcome '{outcome_id}'")
    if levels is None:
        levels = [i / 10 for i in range(7)]
        levels += [t.at_least for t in outcome.tiers]
        levels += [outcome.minimum_relative_effect] if outcome.minimum_relative_effect else []
        if outcome.target_relative_effect is not None:
            levels.append(outcome.target_relative_effect)
        levels = sorted(set(round(v, 6) for v in levels))
    rows = []
    for level in levels:
        effect = level * control_value
        treatment_value = control_value - effect if outcome.direction == "lower" else control_value + effect
        payment = payment_for(outcome, effect, level, treated_n)
        rows.append({
            "relative_effect": float(level), "treatment_value": float(treatment_value),
            "effect": float(effect), "units": float(effect * treated_n), "payment": payment,
            "payment_within_contract_cap": min(payment, contract.payment_cap),
            "meets_target": (None if outcome.target_relative_effect is None
                             else level >= outcome.target_relative_effect),
        })
    return pl.DataFrame(rows, schema={"relative_effect": pl.Float64, "treatment_value": pl.Float64,
                                      "effect": pl.Float64, "units": pl.Float64,
                                      "payment": pl.Float64,
                                      "payment_within_contract_cap": pl.Float64,
                                      "meets_target": pl.Boolean})

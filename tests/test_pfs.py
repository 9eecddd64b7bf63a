"""Pay for Success payment arithmetic on hand-worked cases, including the caps."""

from __future__ import annotations

import polars as pl
import pytest

from citystat.results.models import PayForSuccessContract, PfsOutcome, load_contracts
from citystat.results.pfs import (PfsDataError, apply_cap, payment_for, payment_schedule,
                                  pfs_status)


def contract(*outcomes: dict, cap: float = 27_000_000) -> PayForSuccessContract:
    return PayForSuccessContract(
        id="youth_pfs", title="Youth PFS", population={"description": "Young men 17-24", "size": 929},
        source="pfs_participants", evaluable_column="follow_up_complete",
        evaluation_design="Randomized control trial", investment=21_760_000, payment_cap=cap,
        outcomes=list(outcomes))


BED_DAYS = dict(id="jail_bed_days", title="Jail bed-days avoided", column="jail_bed_days",
                kind="mean", direction="lower", unit="bed-day", paid=True, price_per_unit=100.0,
                target_relative_effect=0.40)
INCARCERATION = dict(id="incarceration", title="Incarcerated", column="incarcerated",
                     kind="proportion", direction="lower", target_relative_effect=0.40)
EMPLOYMENT = dict(id="employment", title="Employed", column="employed", kind="proportion",
                  direction="higher", paid=True, price_per_unit=750.0)


def participants(n_treated: int = 929, n_control: int = 900, extra_incomplete: int = 0) -> pl.DataFrame:
    """Treated: bed-days alternate 60/100 (mean exactly 80), 270 incarcerated, 400 employed.
    Control: bed-days alternate 100/140 (mean 120), 450 incarcerated, 300 employed."""
    def arm(label: str, n: int, low: int, high: int, jailed: int, employed: int) -> pl.DataFrame:
        return pl.DataFrame({
            "arm": [label] * n,
            # alternate low/high; an odd last row gets the midpoint so the mean is exact
            "jail_bed_days": [(low + high) // 2 if i == n - 1 and n % 2 else (low if i % 2 == 0 else high)
                              for i in range(n)],
            "incarcerated": [i < jailed for i in range(n)],
            "employed": [i < employed for i in range(n)],
            "follow_up_complete": [True] * n,
        })
    frames = [arm("treatment", n_treated, 60, 100, 270, 400), arm("control", n_control, 100, 140, 450, 300)]
    if extra_incomplete:
        frames.append(pl.DataFrame({
            "arm": ["treatment"] * extra_incomplete, "jail_bed_days": [None] * extra_incomplete,
            "incarcerated": [None] * extra_incomplete, "employed": [None] * extra_incomplete,
            "follow_up_complete": [False] * extra_incomplete,
        }, schema_overrides={"jail_bed_days": pl.Int64, "incarcerated": pl.Boolean, "employed": pl.Boolean}))
    return pl.concat(frames)


def test_bed_days_avoided_times_price() -> None:
    # (120 - 80) bed-days x 929 treated = 37,160 bed-days avoided; x $100 = $3,716,000
    result = pfs_status(contract(BED_DAYS), participants())
    beds = result.outcomes[0]
    assert (beds.control_value, beds.treatment_value) == (120.0, 80.0)
    assert beds.effect == 40.0
    assert beds.units == 37_160.0
    assert beds.relative_effect == pytest.approx(40 / 120)
    assert beds.target_met is False  # a 33 % cut is short of the 40 % target
    assert beds.payment_triggered == 3_716_000.0
    assert result.payments_due == 3_716_000.0
    assert not result.cap_applied
    assert result.headroom == 27_000_000 - 3_716_000


def test_contract_cap_applies_to_the_total() -> None:
    # bed-days at $700: 37,160 x 700 = $26,012,000; employment: 100 more employed
    # (400/929 - 300/900) x 929 = 90.3333... participants x $750 = $67,750 (hand: 0.097243 x 929 x 750)
    beds = {**BED_DAYS, "price_per_unit": 700.0}
    result = pfs_status(contract(beds, EMPLOYMENT, cap=26_000_000), participants())
    employment = result.outcomes[1]
    assert employment.units == pytest.approx((400 / 929 - 300 / 900) * 929)
    assert employment.payment_triggered == pytest.approx((400 - 300 * 929 / 900) * 750)
    assert result.payments_triggered == pytest.approx(26_012_000 + (400 - 309.6666667) * 750, rel=1e-9)
    assert result.payments_due == 26_000_000
    assert result.cap_applied and result.headroom == 0


def test_outcome_cap_and_threshold() -> None:
    capped = {**BED_DAYS, "payment_cap": 2_000_000.0}
    assert pfs_status(contract(capped), participants()).payments_due == 2_000_000
    # nothing is paid below the threshold: a 33.3 % cut against a 35 % minimum
    strict = {**BED_DAYS, "minimum_relative_effect": 0.35}
    assert pfs_status(contract(strict), participants()).payments_due == 0.0


def test_tiers_pay_the_highest_tier_reached() -> None:
    tiered = {**BED_DAYS, "price_per_unit": None,
              "tiers": [{"at_least": 0.10, "payment": 1_000_000}, {"at_least": 0.30, "payment": 5_000_000},
                        {"at_least": 0.40, "payment": 9_000_000}]}
    result = pfs_status(contract(tiered), participants())
    assert result.outcomes[0].payment_triggered == 5_000_000  # 33.3 % reaches the 30 % tier


def test_incarceration_target_and_interval_direction() -> None:
    result = pfs_status(contract(INCARCERATION), participants())
    jail = result.outcomes[0]
    # control 450/900 = 50 %, treatment 270/929 = 29.06 %: a 41.9 % cut, target (40 %) met
    assert jail.control_value == 0.5 and jail.treatment_value == pytest.approx(270 / 929)
    assert jail.relative_effect == pytest.approx(1 - (270 / 929) / 0.5)
    assert jail.target_met is True
    assert jail.effect > 0 and 0 < jail.ci_low < jail.effect < jail.ci_high  # sign turned round
    assert jail.payment_triggered == 0.0  # not a paid outcome


def test_a_harmful_effect_never_pays() -> None:
    swapped = participants().with_columns(
        arm=pl.when(pl.col("arm") == "treatment").then(pl.lit("control")).otherwise(pl.lit("treatment")))
    result = pfs_status(contract(BED_DAYS), swapped)
    assert result.outcomes[0].effect == -40.0
    assert result.payments_due == 0.0


def test_only_evaluated_participants_count_to_date() -> None:
    result = pfs_status(contract(BED_DAYS), participants(n_treated=500, extra_incomplete=429))
    assert result.treatment_enrolled == 929
    assert result.treatment_evaluated == 500
    assert result.outcomes[0].units == 40 * 500
    assert result.payments_due == 40 * 500 * 100.0


def test_payment_schedule_table() -> None:
    table = payment_schedule(contract(BED_DAYS, cap=4_000_000), "jail_bed_days", control_value=120.0,
                             treated_n=929, levels=[0.0, 0.2, 0.4])
    assert table["treatment_value"].to_list() == pytest.approx([120.0, 96.0, 72.0])
    assert table["units"].to_list() == pytest.approx([0.0, 0.2 * 120 * 929, 0.4 * 120 * 929])
    # 0.4 x 120 x 929 = 44,592 bed-days x $100 = $4,459,200, above a $4 M contract cap
    assert table["payment"].to_list() == pytest.approx([0.0, 2_229_600.0, 4_459_200.0])
    assert table["payment_within_contract_cap"].to_list() == pytest.approx([0.0, 2_229_600.0, 4_000_000.0])
    assert table["meets_target"].to_list() == [False, False, True]


def test_payment_for_and_apply_cap_directly() -> None:
    outcome = PfsOutcome(**BED_DAYS)
    assert payment_for(outcome, effect=40.0, relative_effect=1 / 3, treated_n=929) == 3_716_000.0
    assert payment_for(outcome, effect=0.0, relative_effect=0.0, treated_n=929) == 0.0
    assert apply_cap([3_000_000, 1_500_000], 4_000_000) == (4_000_000, True, 0)
    assert apply_cap([3_000_000, 500_000], 4_000_000) == (3_500_000, False, 500_000)


def test_missing_column_names_the_contract() -> None:
    with pytest.raises(PfsDataError, match="contract 'youth_pfs'.*jail_bed_days"):
        pfs_status(contract(BED_DAYS), participants().drop("jail_bed_days"))


def test_bundled_roca_contract_on_generated_participants(tmp_path) -> None:
    from devtools.sample.build import generate

    generate(tmp_path, extracts=["pfs_participants"])
    frame = pl.read_parquet(tmp_path / "pfs_participants.parquet")
    roca = load_contracts("contracts.yaml").pfs_contract("roca_pfs")
    assert (roca.population.size, roca.payment_cap, roca.investment) == (929, 27_000_000, 21_760_000)
    result = pfs_status(roca, frame)
    assert result.treatment_enrolled == 929
    beds = next(o for o in result.outcomes if o.outcome_id == "jail_bed_days")
    # recompute the payment by hand from the frame
    done = frame.filter(pl.col("follow_up_complete"))
    t = done.filter(pl.col("arm") == "treatment")["jail_bed_days"]
    c = done.filter(pl.col("arm") == "control")["jail_bed_days"]
    assert beds.units == pytest.approx((c.mean() - t.mean()) * t.len())
    assert beds.payment_triggered == pytest.approx(beds.units * 85.0)
    assert result.payments_due == pytest.approx(min(27_000_000, result.payments_triggered))

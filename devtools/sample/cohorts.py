"""Static tables and whole-cohort studies, drawn once from `[seed, extract_number]`.

These do not grow day by day: the city's addresses and restaurants, the Pay for Success
cohort (enrolled on fixed dates) and the reminder-letter trial (mailed on fixed dates). Only
outcomes that would fall after the end of the data are nulled.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from devtools.sample.daily import (
    DAY, DISTRICT_WEIGHTS, EXTRACT_NUMBER, NULL_INT, epoch_day, roll_to_weekday, weekday_of,
)

PFS_TREATMENT = 929
PFS_CONTROL = 905
PFS_ENROLMENT = (date(2023, 11, 13), date(2024, 11, 15))
PFS_INCARCERATION = {"control": 0.50, "treatment": 0.33}
PFS_EMPLOYED = {"control": 0.32, "treatment": 0.41}
LETTERS_MAILED = (date(2025, 10, 1), date(2025, 12, 31))
LETTER_ACCOUNTS = 16_000
LETTER_PAID_ON_TIME = {"control": 0.62, "reminder": 0.67}
# Older districts hold more pre-1978 housing (lead paint).
_OLD_HOUSING_SHARE = np.array([0.75, 0.65, 0.60, 0.50, 0.40, 0.30, 0.25, 0.20])


def _rng(seed: int, extract: str) -> np.random.Generator:
    return np.random.default_rng([seed, EXTRACT_NUMBER[extract]])


def addresses(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, "addresses")
    district = rng.choice(8, size=n, p=DISTRICT_WEIGHTS)
    old = rng.random(n) < _OLD_HOUSING_SHARE[district]
    year_built = np.where(
        old,
        np.round(1977 - rng.gamma(2.0, 15.0, size=n)).clip(1880, 1977),
        rng.integers(1978, 2025, size=n),
    ).astype(np.int64)
    kind = rng.random(n)
    units = np.where(kind < 0.70, 1, np.where(kind < 0.90, rng.integers(2, 5, size=n),
                                               rng.integers(5, 51, size=n)))
    return {
        "address_id": np.arange(1, n + 1, dtype=np.int64),
        "district": district,
        "year_built": year_built,
        "units": units.astype(np.int64),
    }


def establishment_districts(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng([seed, EXTRACT_NUMBER["restaurant_inspections"]])
    return rng.choice(8, size=n, p=DISTRICT_WEIGHTS)


def _weekdays(start: date, end: date) -> np.ndarray:
    days = np.arange(epoch_day(start), epoch_day(end) + 1)
    return days[weekday_of(days) < 5]


def pfs_participants(seed: int, end_day: int) -> dict[str, np.ndarray]:
    """A Roca-like randomized trial: 929 young men 17-24 treated, a control arm of 905."""
    rng = _rng(seed, "pfs_participants")
    n = PFS_TREATMENT + PFS_CONTROL
    arm = rng.permutation(np.concatenate([np.zeros(PFS_TREATMENT, np.int64), np.ones(PFS_CONTROL, np.int64)]))
    enrolled = np.sort(rng.choice(_weekdays(*PFS_ENROLMENT), size=n))
    age = rng.integers(17, 25, size=n)
    treated = arm == 0
    # Younger men are at higher risk; the arm sets the average.
    p_jail = np.where(treated, PFS_INCARCERATION["treatment"], PFS_INCARCERATION["control"])
    p_jail = np.clip(p_jail + 0.02 * (20.5 - age), 0, 1)
    jailed = rng.random(n) < p_jail
    bed_days = np.where(jailed, np.minimum(730, np.round(np.where(treated, 110, 150)
                                                         * np.exp(0.8 * rng.standard_normal(n)))), 0)
    employed = rng.random(n) < np.where(treated, PFS_EMPLOYED["treatment"], PFS_EMPLOYED["control"])
    complete = (enrolled + 730 <= end_day) & (rng.random(n) >= 0.03)
    return {
        "participant_id": 1001 + np.arange(n, dtype=np.int64),
        "arm": arm,
        "enrolled_at": enrolled.astype(np.int64),
        "age": age,
        "incarcerated_within_24m": np.where(complete, jailed.astype(np.int64), -1),
        "jail_bed_days": np.where(complete, bed_days.astype(np.int64), NULL_INT),
        "employed_q4": np.where(complete, employed.astype(np.int64), -1),
        "follow_up_complete": complete.astype(np.int64),
    }


def reminder_letters(seed: int, end_day: int) -> dict[str, np.ndarray]:
    """Finance's A/B trial: accounts randomized to a reminder letter or none (control)."""
    rng = _rng(seed, "reminder_letters")
    n = LETTER_ACCOUNTS
    account = 100_000 + np.sort(rng.choice(900_000, size=n, replace=False)).astype(np.int64)
    arm = (rng.random(n) < 0.5).astype(np.int64)  # 1 = reminder
    mailed = rng.choice(_weekdays(*LETTERS_MAILED), size=n)
    due = roll_to_weekday(mailed + 21)
    amount = np.round(180.0 * np.exp(0.7 * rng.standard_normal(n)), 2)
    p = np.where(arm == 1, LETTER_PAID_ON_TIME["reminder"], LETTER_PAID_ON_TIME["control"])
    p = np.clip(p - 0.04 * np.log(amount / 180.0), 0, 1)  # bigger bills are paid late more often
    paid = rng.random(n) < p
    return {
        "account_id": account,
        "arm": arm,
        "mailed_at": mailed.astype(np.int64),
        "due_date": due.astype(np.int64),
        "paid_on_time": np.where(due <= end_day, paid.astype(np.int64), -1),
        "amount_due": amount,
        "district": rng.choice(8, size=n, p=DISTRICT_WEIGHTS),
    }


__all__ = ["addresses", "establishment_districts", "pfs_participants", "reminder_letters", "DAY"]

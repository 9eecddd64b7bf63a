"""Per-day generators: each draws one day's rows of one extract from its own seeded RNG.

Every function takes the `City` (seed, size, end of data, static tables) and an epoch day, seeds
`numpy.random.default_rng([seed, extract_number, epoch_day])` and returns numpy columns in the
conventions of `devtools.sample.schemas`. Because nothing carries over from one day to the next,
a day's rows are the same whatever date range is generated; only timestamps after the end of
the data are nulled (or, for rows that would not exist yet, dropped).

Ids encode the day the row was drawn: `epoch_day * ID_DAY_STRIDE + n`, so they are unique,
stable and tell which day a row came from (rows spawned later, such as lead referrals and
retests, use n >= SPAWNED_ID_OFFSET).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np

from devtools.sample.schemas import NULL_INT, PROVIDERS, REQUEST_TYPE_NAMES, DEPARTMENTS
from devtools.sample.shifts import PROVIDER_EFFECTS, shift

EPOCH = date(1970, 1, 1)
DAY = 86_400
ID_DAY_STRIDE = 10_000_000
SPAWNED_ID_OFFSET = 5_000_000
REFERENCE_DAYS = 1099  # 2023-11-13..2026-11-15, the standard sample: --requests counts over this span
REFERENCE_REQUESTS = 330_000

EXTRACT_NUMBER = {
    "service_requests": 1, "fire_ems_responses": 2, "permits": 3, "addresses": 4,
    "housing_inspections": 5, "restaurant_inspections": 6, "blood_lead_tests": 7,
    "homeless_enrollments": 8, "pfs_participants": 9, "reminder_letters": 10,
    "staff_hours": 11, "sensor_readings": 12,
}
DISTRICT_WEIGHTS = np.array([0.13, 0.12, 0.14, 0.13, 0.12, 0.12, 0.12, 0.12])
DISTRICT_WEIGHTS = DISTRICT_WEIGHTS / DISTRICT_WEIGHTS.sum()


def epoch_day(d: date) -> int:
    return (d - EPOCH).days


def day_date(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


def weekday_of(days: np.ndarray | int) -> np.ndarray | int:
    """Monday = 0 .. Sunday = 6 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def day_rng(seed: int, extract: str, day: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, EXTRACT_NUMBER[extract], int(day), stream])


def seasonal(day: int, peak_doy: float, amplitude: float) -> float:
    """1 + amplitude at `peak_doy` (day of year), 1 - amplitude half a year away."""
    doy = day_date(day).timetuple().tm_yday
    return 1.0 + amplitude * math.cos(2 * math.pi * (doy - peak_doy) / 365.25)


def roll_to_weekday(days: np.ndarray) -> np.ndarray:
    """Move Saturdays and Sundays to the next Monday (offices are shut at weekends)."""
    wd = weekday_of(days)
    return days + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))


def office_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds after midnight in office hours, 08:00-17:00."""
    return rng.integers(8 * 3600, 17 * 3600, size=n)


def seconds_by_hour(rng: np.random.Generator, n: int, hour_weights: np.ndarray) -> np.ndarray:
    """Sorted seconds after midnight, with hours drawn from `hour_weights`."""
    p = hour_weights / hour_weights.sum()
    hours = rng.choice(24, size=n, p=p)
    return np.sort(hours * 3600 + rng.integers(0, 3600, size=n))


def censor(times: np.ndarray, end_exclusive: int) -> np.ndarray:
    """Null every time at or after the end of the data (not happened yet at extract time)."""
    return np.where(times >= end_exclusive, NULL_INT, times)


def row_ids(day: int, n: int, offset: int = 0) -> np.ndarray:
    return day * ID_DAY_STRIDE + offset + 1 + np.arange(n, dtype=np.int64)


def lognormal_for_share(rng: np.random.Generator, n: int, within_share: float,
                        sigma: float) -> np.ndarray:
    """Multiples of a limit whose share at or below 1.0 is `within_share` (lognormal)."""
    mu = -sigma * NormalDist().inv_cdf(within_share)
    return np.exp(mu + sigma * rng.standard_normal(n))


@dataclass(frozen=True)
class City:
    """What every per-day generator needs: seed, size and the static tables."""

    seed: int
    requests: int
    end_exclusive: int  # seconds: midnight after the last day of data
    end_day: int  # epoch day of the last day of data
    address_district: np.ndarray  # district code by address_id - 1
    address_year_built: np.ndarray
    establishment_district: np.ndarray  # district code by establishment_id - 1

    @property
    def scale(self) -> float:
        return self.requests / REFERENCE_REQUESTS

    def per_day(self, three_year_total: float) -> float:
        """Mean rows per day for an extract with `three_year_total` rows in the sample city."""
        return three_year_total * self.scale / REFERENCE_DAYS


# --------------------------------------------------------------------------- 311 requests
@dataclass(frozen=True)
class RequestType:
    name: str
    department: str
    sla_hours: int
    share: float
    peak_doy: int
    season_amplitude: float
    on_time: float  # share closed within the SLA
    sigma: float


REQUEST_TYPES: tuple[RequestType, ...] = (
    RequestType("Pothole", "pw", 72, 0.12, 60, 0.6, 0.72, 0.75),
    RequestType("Streetlight Outage", "pw", 120, 0.08, 355, 0.25, 0.80, 0.7),
    RequestType("Graffiti Removal", "pw", 168, 0.07, 200, 0.3, 0.95, 0.5),
    RequestType("Missed Trash Pickup", "pw", 48, 0.15, 190, 0.1, 0.85, 0.6),
    RequestType("Illegal Dumping", "pw", 120, 0.08, 170, 0.25, 0.75, 0.8),
    RequestType("Abandoned Vehicle", "pw", 240, 0.06, 180, 0.0, 0.70, 0.8),
    RequestType("Noise Complaint", "csc", 24, 0.12, 200, 0.5, 0.90, 0.9),
    RequestType("Housing Complaint", "housing", 336, 0.07, 20, 0.3, 0.70, 0.8),
    RequestType("Restaurant Complaint", "health", 120, 0.04, 180, 0.1, 0.78, 0.7),
    RequestType("Tree Maintenance", "pw", 720, 0.08, 200, 0.4, 0.65, 0.8),
    RequestType("Sidewalk Repair", "pw", 1440, 0.05, 150, 0.2, 0.60, 0.9),
    RequestType("Rodent Activity", "health", 168, 0.08, 210, 0.5, 0.75, 0.7),
)
assert tuple(t.name for t in REQUEST_TYPES) == REQUEST_TYPE_NAMES
_SLA = np.array([t.sla_hours for t in REQUEST_TYPES])
_TYPE_DEPARTMENT = np.array([DEPARTMENTS.index(t.department) for t in REQUEST_TYPES])
_311_WEEKDAY = np.array([1.15, 1.12, 1.10, 1.08, 1.05, 0.80, 0.70])
_311_WEEKDAY = _311_WEEKDAY / _311_WEEKDAY.mean()
_311_HOURS = np.array([1, 1, 0.5, 0.5, 0.5, 1, 3, 6, 9, 10, 10, 9, 8, 9, 9, 8, 7, 6, 5, 4, 3, 3, 2, 1.5])
_CHANNELS_BEFORE_APP = np.array([0.62, 0.10, 0.22, 0.06])  # phone, app, web, walk_in
_CHANNELS_AFTER_APP = np.array([0.44, 0.30, 0.22, 0.04])
POTHOLE_D4_SLOWER = 1.15
NEVER_CLOSED = 0.003

APP_LAUNCH = epoch_day(shift("app_launch").start)
POTHOLE_CREW = epoch_day(shift("new_pothole_crew").start)
GRAFFITI_REASSIGNED = epoch_day(shift("graffiti_crew_reassigned").start)
POTHOLE_ON_TIME_BEFORE = 0.735  # calibrated so the overall share (D4 slower) is ~72 %
POTHOLE_ON_TIME_AFTER = 0.89


def service_requests_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "service_requests", day)
    weekday = _311_WEEKDAY[weekday_of(day)]
    lam = city.per_day(REFERENCE_REQUESTS) * weekday * seasonal(day, 165, 0.15)
    n = int(rng.poisson(lam))
    created = day * DAY + seconds_by_hour(rng, n, _311_HOURS)
    shares = np.array([t.share * seasonal(day, t.peak_doy, t.season_amplitude) for t in REQUEST_TYPES])
    kind = rng.choice(len(REQUEST_TYPES), size=n, p=shares / shares.sum())
    district = rng.choice(8, size=n, p=DISTRICT_WEIGHTS)
    channel_p = _CHANNELS_AFTER_APP if day >= APP_LAUNCH else _CHANNELS_BEFORE_APP
    channel = rng.choice(4, size=n, p=channel_p)
    z = rng.standard_normal(n)
    sla = _SLA[kind]
    hours = np.empty(n)
    for k, rtype in enumerate(REQUEST_TYPES):
        idx = kind == k
        on_time = rtype.on_time
        if rtype.name == "Pothole":
            on_time = POTHOLE_ON_TIME_AFTER if day >= POTHOLE_CREW else POTHOLE_ON_TIME_BEFORE
        mu = -rtype.sigma * NormalDist().inv_cdf(on_time)
        hours[idx] = rtype.sla_hours * np.exp(mu + rtype.sigma * z[idx])
    graffiti = kind == REQUEST_TYPE_NAMES.index("Graffiti Removal")
    hours[graffiti] = 72.0 * np.exp(0.5 * z[graffiti])
    if day >= GRAFFITI_REASSIGNED:  # the general crew batches graffiti: at least 3 days' wait
        hours[graffiti] += 72.0
    pothole_d4 = (kind == 0) & (district == 3)
    hours[pothole_d4] *= POTHOLE_D4_SLOWER
    closed = created + np.round(hours * 3600).astype(np.int64)
    closed[rng.random(n) < NEVER_CLOSED] = NULL_INT
    closed = censor(closed, city.end_exclusive)
    return {
        "request_id": row_ids(day, n),
        "created_at": created,
        "closed_at": closed,
        "request_type": kind,
        "department": _TYPE_DEPARTMENT[kind],
        "district": district,
        "channel": channel,
        "sla_hours": sla,
        "status": np.where(closed == NULL_INT, 0, 1),
    }


# --------------------------------------------------------------------------- fire and EMS
_FIRE_HOURS = np.array([4, 3.5, 3, 2.5, 2.5, 3, 4, 5, 6, 6.5, 7, 7, 7, 7, 7, 7, 7.5, 7.5, 7, 6.5, 6, 5.5, 5, 4.5])
_PRIORITY_P = np.array([[0.6, 0.3, 0.1], [0.45, 0.35, 0.20], [0.1, 0.4, 0.5]])  # fire, ems, other
_DISPATCH_MEDIAN_S = np.array([55.0, 75.0, 110.0])
_TRAVEL_MEDIAN_MIN = np.array([5.3, 6.0, 7.0])
_DISTRICT_TRAVEL = np.array([0.95, 0.95, 1.0, 1.0, 1.05, 1.0, 1.0, 1.15])
STATION_D7 = epoch_day(shift("station_d7_opens").start)
AMBULANCES_OUT = epoch_day(shift("ambulances_out_of_service").start)
CANCELLED_EN_ROUTE = 0.04


def fire_ems_responses_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "fire_ems_responses", day)
    base = city.per_day(110_000)
    lams = np.array([
        0.15 * seasonal(day, 15, 0.15),  # fire: heating fires in winter
        0.70 * seasonal(day, 200, 0.12),  # EMS: up in summer
        0.15,
    ]) * base
    counts = rng.poisson(lams)
    n = int(counts.sum())
    kind = np.repeat(np.arange(3), counts)
    kind = kind[rng.permutation(n)]
    received = day * DAY + seconds_by_hour(rng, n, _FIRE_HOURS)
    priority = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for k in range(3):
        idx = kind == k
        priority[idx] = 1 + np.searchsorted(np.cumsum(_PRIORITY_P[k])[:-1], u[idx], side="right")
    district = rng.choice(8, size=n, p=DISTRICT_WEIGHTS)
    station = district.copy()
    if day < STATION_D7:
        station[district == 6] = 5  # Station 6 covered D7 before Station 7 opened
    dispatch_s = _DISPATCH_MEDIAN_S[priority - 1] * np.exp(0.45 * rng.standard_normal(n))
    travel_median = _TRAVEL_MEDIAN_MIN[priority - 1] * _DISTRICT_TRAVEL[district]
    travel_median = np.where(station != district, travel_median * 1.6, travel_median)
    sigma = np.full(n, 0.35)
    if day >= AMBULANCES_OUT:
        ems = kind == 1
        travel_median = np.where(ems, travel_median * 1.1, travel_median)
        sigma[ems] = 0.45
    travel_min = travel_median * np.exp(sigma * rng.standard_normal(n))
    dispatched = received + np.round(dispatch_s).astype(np.int64)
    on_scene = dispatched + np.round(travel_min * 60).astype(np.int64)
    on_scene[rng.random(n) < CANCELLED_EN_ROUTE] = NULL_INT
    return {
        "incident_id": row_ids(day, n),
        "call_received_at": received,
        "dispatched_at": censor(dispatched, city.end_exclusive),
        "on_scene_at": censor(on_scene, city.end_exclusive),
        "incident_type": kind,
        "priority": priority,
        "district": district,
        "station": station,
    }


# --------------------------------------------------------------------------- permits
_PERMIT_SHARE = np.array([0.35, 0.20, 0.18, 0.15, 0.04, 0.08])
_PERMIT_TARGET_DAYS = np.array([30, 10, 10, 10, 20, 15])
_PERMIT_DURATION_FACTOR = np.array([1.35, 0.72, 0.72, 0.78, 1.1, 0.9])
_PERMIT_VALUATION_MEDIAN = np.array([85_000, 4_000, 5_000, 8_000, 25_000, 3_000])
E_PERMITTING = epoch_day(shift("e_permitting").start)
PERMIT_MEDIAN_DAYS_BEFORE = 21.0  # + weekend rolling and the one-day floor -> ~21 overall
PERMIT_MEDIAN_DAYS_AFTER = 11.9  # -> ~12 overall


def permits_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "permits", day)
    if weekday_of(day) >= 5:
        n = 0
    else:
        n = int(rng.poisson(city.per_day(40_000) * 7 / 5 * seasonal(day, 140, 0.25)))
    applied = day * DAY + np.sort(office_seconds(rng, n))
    kind = rng.choice(6, size=n, p=_PERMIT_SHARE)
    median = PERMIT_MEDIAN_DAYS_AFTER if day >= E_PERMITTING else PERMIT_MEDIAN_DAYS_BEFORE
    days = 1 + median * _PERMIT_DURATION_FACTOR[kind] * np.exp(0.55 * rng.standard_normal(n))
    issued_day = roll_to_weekday(day + np.floor(days).astype(np.int64))
    issued = issued_day * DAY + office_seconds(rng, n)
    issued = np.maximum(issued, applied + 3600)
    valuation = np.round(_PERMIT_VALUATION_MEDIAN[kind] * np.exp(1.0 * rng.standard_normal(n)))
    return {
        "permit_id": row_ids(day, n),
        "permit_type": kind,
        "applied_at": applied,
        "issued_at": censor(issued, city.end_exclusive),
        "review_target_days": _PERMIT_TARGET_DAYS[kind],
        "district": rng.choice(8, size=n, p=DISTRICT_WEIGHTS),
        "valuation": valuation.astype(np.float64),
    }


# --------------------------------------------------------------------------- housing inspections
def _inspection_outcome(rng: np.random.Generator, n: int, violation_p: np.ndarray,
                        inspected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    violation = rng.random(n) < violation_p
    count = np.where(violation, 1 + rng.poisson(2.0, size=n), 0)
    done = inspected != NULL_INT
    return np.where(done, violation.astype(np.int64), -1), np.where(done, count, NULL_INT)


def housing_inspections_day(city: City, day: int) -> dict[str, np.ndarray]:
    """Complaint and routine inspections requested on `day` (lead referrals come from tests)."""
    rng = day_rng(city.seed, "housing_inspections", day)
    weekend = weekday_of(day) >= 5
    n_complaint = int(rng.poisson(city.per_day(21_000) * (0.45 if weekend else 1.22)))
    n_routine = 0 if weekend else int(rng.poisson(city.per_day(8_000) * 7 / 5))
    n = n_complaint + n_routine
    reason = np.concatenate([np.zeros(n_complaint, np.int64), np.full(n_routine, 2, np.int64)])
    requested = day * DAY + np.concatenate([
        np.sort(rng.integers(7 * 3600, 21 * 3600, size=n_complaint)),
        np.sort(office_seconds(rng, n_routine)),
    ])
    address = rng.integers(1, len(city.address_district) + 1, size=n)
    old = city.address_year_built[address - 1] < 1978
    median_days = np.where(reason == 0, 6.0, 12.0)
    wait = median_days * np.exp(0.6 * rng.standard_normal(n))
    inspected = roll_to_weekday(day + 1 + np.floor(wait).astype(np.int64)) * DAY + office_seconds(rng, n)
    inspected[rng.random(n) < 0.02] = NULL_INT  # withdrawn, never inspected
    inspected = censor(inspected, city.end_exclusive)
    violation_p = np.where(reason == 0, 0.55, 0.30) + np.where(old, 0.12, 0.0)
    result, violations = _inspection_outcome(rng, n, violation_p, inspected)
    return {
        "inspection_id": row_ids(day, n),
        "address_id": address,
        "requested_at": requested,
        "inspected_at": inspected,
        "reason": reason,
        "result": result,
        "violations": violations,
        "district": city.address_district[address - 1],
    }


# --------------------------------------------------------------------------- blood lead tests
LEAD_REFERENCE = 3.5
LEAD_SHARING = epoch_day(shift("lead_data_sharing").start)
_LEAD_WEEKDAY = np.array([1.3, 1.3, 1.3, 1.3, 1.3, 0.35, 0.0])
_LEAD_WEEKDAY = _LEAD_WEEKDAY / _LEAD_WEEKDAY.mean()


def blood_lead_tests_day(city: City, day: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The day's tests (with later retests of elevated children) and the lead referral
    inspections they lead to; rows that would happen after the end of the data are dropped."""
    rng = day_rng(city.seed, "blood_lead_tests", day)
    n = int(rng.poisson(city.per_day(24_000) * _LEAD_WEEKDAY[weekday_of(day)] * seasonal(day, 200, 0.2)))
    tested = day * DAY + np.sort(office_seconds(rng, n))
    address = rng.integers(1, len(city.address_district) + 1, size=n)
    old = city.address_year_built[address - 1] < 1978
    result = np.round(np.where(old, 1.5, 1.0) * np.exp(0.65 * rng.standard_normal(n)), 1)
    result = np.maximum(result, 0.5)  # laboratory reporting floor
    which = rng.random(n)
    age = np.where(
        which < 0.45, np.round(rng.normal(12, 1.5, n)),
        np.where(which < 0.80, np.round(rng.normal(24, 2.0, n)), rng.integers(9, 73, size=n)),
    ).clip(6, 72).astype(np.int64)
    test_id = row_ids(day, n)
    child_id = test_id + 1_000_000_000_000_000
    elevated = np.flatnonzero(result >= LEAD_REFERENCE)

    # Retests: about 60 % of elevated children are tested again 1-3 months later.
    rt = elevated[rng.random(len(elevated)) < 0.6]
    rt_tested = tested[rt] + rng.integers(30, 91, size=len(rt)) * DAY
    rt_tested = roll_to_weekday(rt_tested // DAY) * DAY + rt_tested % DAY
    rt_result = np.maximum(np.round(result[rt] * np.exp(-0.2 + 0.3 * rng.standard_normal(len(rt))), 1), 0.5)
    rt_keep = rt_tested < city.end_exclusive
    rt = rt[rt_keep]
    tests = {
        "test_id": np.concatenate([test_id, row_ids(day, len(rt_keep), SPAWNED_ID_OFFSET)[rt_keep]]),
        "child_id": np.concatenate([child_id, child_id[rt]]),
        "address_id": np.concatenate([address, address[rt]]),
        "tested_at": np.concatenate([tested, rt_tested[rt_keep]]),
        "age_months": np.concatenate([age, age[rt] + 2]),
        "result_ug_dl": np.concatenate([result, rt_result[rt_keep]]),
        "district": city.address_district[np.concatenate([address, address[rt]]) - 1],
    }

    # Referral: Health tells Housing, Housing inspects the child's home.
    m = len(elevated)
    if day >= LEAD_SHARING:
        referred, d1 = rng.random(m) < 0.86, 4.0 * np.exp(0.7 * rng.standard_normal(m))
    else:
        referred, d1 = rng.random(m) < 0.72, 14.0 * np.exp(0.7 * rng.standard_normal(m))
    d2 = 7.0 * np.exp(0.5 * rng.standard_normal(m))
    ref_day = roll_to_weekday(day + np.ceil(d1).astype(np.int64))
    requested = ref_day * DAY + office_seconds(rng, m)
    inspected = roll_to_weekday(ref_day + np.ceil(d2).astype(np.int64)) * DAY + office_seconds(rng, m)
    inspected = censor(inspected, city.end_exclusive)
    result_code, violations = _inspection_outcome(rng, m, np.full(m, 0.7), inspected)
    keep = referred & (requested < city.end_exclusive)
    ref_address = address[elevated]
    referrals = {
        "inspection_id": row_ids(day, m, SPAWNED_ID_OFFSET)[keep],
        "address_id": ref_address[keep],
        "requested_at": requested[keep],
        "inspected_at": inspected[keep],
        "reason": np.full(int(keep.sum()), 1, np.int64),
        "result": result_code[keep],
        "violations": violations[keep],
        "district": city.address_district[ref_address[keep] - 1],
    }
    return tests, referrals


# --------------------------------------------------------------------------- restaurant inspections
def restaurant_inspections_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "restaurant_inspections", day)
    n = 0 if weekday_of(day) >= 5 else int(rng.poisson(city.per_day(20_000) * 7 / 5))
    establishment = rng.integers(1, len(city.establishment_district) + 1, size=n)
    penalty = np.round(rng.gamma(2.0, 5.0, size=n))
    score = np.clip(100 - penalty, 40, 100).astype(np.int64)
    critical = rng.poisson((100 - score) / 12.0)
    result = np.where((score >= 85) & (critical == 0), 0, np.where(score >= 70, 1, 2))
    return {
        "inspection_id": row_ids(day, n),
        "establishment_id": establishment,
        "inspected_at": day * DAY + np.sort(rng.integers(9 * 3600, 16 * 3600, size=n)),
        "score": score,
        "result": result,
        "critical_violations": critical,
        "district": city.establishment_district[establishment - 1],
    }


# --------------------------------------------------------------------------- homeless enrollments
_PROVIDER_SHARE = np.array([0.20, 0.20, 0.18, 0.12, 0.15, 0.15])
_PROGRAMS = ("emergency_shelter", "rapid_rehousing", "transitional")
_PROVIDER_PROGRAM = np.array([_PROGRAMS.index(PROVIDER_EFFECTS[p].program_type) for p in PROVIDERS])
_EXIT_EFFECT = np.array([PROVIDER_EFFECTS[p].exit_permanent_log_odds for p in PROVIDERS])
_RETURN_EFFECT = np.array([PROVIDER_EFFECTS[p].return_within_12m_log_odds for p in PROVIDERS])
# Client mix by provider: chronic, disability, prior-episode mean, income, age mean, age sd,
# family, veteran.  Harbor House serves a much harder population.
_TYPICAL = (0.20, 0.32, 0.9, 0.42, 40.0, 12.0, 0.20, 0.08)
_CLIENT_MIX = np.array([
    (0.60, 0.65, 2.0, 0.20, 51.0, 10.0, 0.02, 0.14),  # Harbor House
    _TYPICAL,  # Northside Shelter Partners (same clients as the others, worse results)
    _TYPICAL,  # Second Street Mission
    (0.08, 0.20, 0.5, 0.50, 33.0, 8.0, 0.90, 0.03),  # Riverton Family Promise
    _TYPICAL,  # Bridgeway Housing
    _TYPICAL,  # New Leaf Rapid Rehousing
])
_STAY_MEDIAN_DAYS = np.array([35.0, 140.0, 220.0])
_STAY_SIGMA = np.array([0.9, 0.5, 0.45])
HOMELESS_PER_DAY = 10.95


def exit_permanent_logit(chronic, disability, prior, income, veteran, family, age, provider):
    """True log-odds of exiting to permanent housing (the model risk adjustment should find)."""
    return (0.3 - 0.7 * chronic - 0.4 * disability - 0.25 * np.minimum(prior, 5) + 0.6 * income
            + 0.4 * veteran + 0.5 * family - 0.015 * (age - 40) + _EXIT_EFFECT[provider])


def return_logit(chronic, disability, prior, income, family, provider):
    """True log-odds of returning to homelessness within 12 months of exit."""
    return (-1.4 + 0.6 * chronic + 0.3 * disability + 0.2 * np.minimum(prior, 5) - 0.4 * income
            - 0.2 * family + _RETURN_EFFECT[provider])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def homeless_enrollments_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "homeless_enrollments", day)
    n = int(rng.poisson(HOMELESS_PER_DAY))
    provider = rng.choice(len(PROVIDERS), size=n, p=_PROVIDER_SHARE)
    mix = _CLIENT_MIX[provider]
    u = rng.random((n, 5))
    chronic = (u[:, 0] < mix[:, 0]).astype(np.int64)
    disability = (u[:, 1] < mix[:, 1]).astype(np.int64)
    prior = rng.poisson(mix[:, 2])
    income = (u[:, 2] < mix[:, 3]).astype(np.int64)
    age = np.clip(np.round(rng.normal(mix[:, 4], mix[:, 5])), 18, 85).astype(np.int64)
    family = (u[:, 3] < mix[:, 6]).astype(np.int64)
    veteran = (u[:, 4] < mix[:, 7]).astype(np.int64)
    program = _PROVIDER_PROGRAM[provider]
    stay_z = rng.standard_normal(n)
    stay = np.maximum(1, np.round(_STAY_MEDIAN_DAYS[program] * np.exp(_STAY_SIGMA[program] * stay_z)))
    exited = day + stay.astype(np.int64)
    p_perm = _sigmoid(
        exit_permanent_logit(chronic, disability, prior, income, veteran, family, age, provider))
    permanent = rng.random(n) < p_perm
    other = rng.choice(3, size=n, p=[0.45, 0.12, 0.43]) + 1  # temporary, institution, unknown
    destination = np.where(permanent, 0, other)
    returned = rng.random(n) < _sigmoid(return_logit(chronic, disability, prior, income, family, provider))
    has_exited = exited <= city.end_day
    followed_up = has_exited & (exited <= city.end_day - 365)
    return {
        "enrollment_id": row_ids(day, n),
        "client_id": day * 1_000 + 1 + np.arange(n, dtype=np.int64),
        "provider": provider,
        "program_type": program,
        "entered_at": np.full(n, day, np.int64),
        "exited_at": np.where(has_exited, exited, NULL_INT),
        "exit_destination": np.where(has_exited, destination, -1),
        "returned_within_12m": np.where(followed_up, returned.astype(np.int64), -1),
        "age": age,
        "household_type": family,
        "chronic_homeless": chronic,
        "disability": disability,
        "prior_episodes": prior,
        "income_at_entry": income,
        "veteran": veteran,
    }


# --------------------------------------------------------------------------- staff hours
_HEADCOUNT = np.array([420, 45, 610, 60, 55, 120, 35, 80, 30, 25])
_WEEKEND_WORK = np.array([0.15, 0.35, 1.0, 0.0, 0.02, 0.05, 0.30, 0.0, 0.05, 0.0])
_OVERTIME_RATE = np.array([0.06, 0.04, 0.08, 0.03, 0.03, 0.03, 0.05, 0.02, 0.03, 0.01])
_INJURY_RATE = np.array([6e-4, 5e-5, 8e-4, 5e-5, 2e-4, 1e-4, 1e-4, 3e-5, 2e-4, 3e-5])
FIRE = DEPARTMENTS.index("fire")
PW = DEPARTMENTS.index("pw")
STAFF_REFERENCE_DAY = epoch_day(date(2023, 11, 13))


def staff_hours_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "staff_hours", day)
    k = len(DEPARTMENTS)
    growth = 1 + 0.01 * (day - STAFF_REFERENCE_DAY) / 365.25
    headcount = np.round(_HEADCOUNT * growth + rng.normal(0, 0.5, k)).astype(np.int64)
    weekend = weekday_of(day) >= 5
    attendance = np.where(weekend, _WEEKEND_WORK, 1.0)
    attendance[FIRE] = 1.0  # 24/7: on duty around the clock, every day
    per_head = np.full(k, 8.0 * 0.88)
    per_head[FIRE] = 8.0 * 5 / 7 * 0.9
    regular = headcount * attendance * per_head * np.exp(rng.normal(0, 0.03, k))
    ot_rate = _OVERTIME_RATE.copy()
    ot_rate[FIRE] *= seasonal(day, 200, 0.45)  # summer overtime bump in fire
    ot_rate[PW] *= seasonal(day, 20, 0.3)  # snow and potholes in winter
    overtime = regular * ot_rate * rng.gamma(8.0, 1 / 8.0, k)
    unscheduled = overtime * rng.beta(4, 6, k)
    sick = headcount * attendance * 8.0 * 0.03 * seasonal(day, 25, 0.3) * rng.gamma(10.0, 0.1, k)
    injuries = rng.poisson(headcount * attendance * _INJURY_RATE)
    return {
        "work_date": np.full(k, day, np.int64),
        "department": np.arange(k),
        "headcount": headcount,
        "regular_hours": np.round(regular, 1),
        "overtime_hours": np.round(overtime, 1),
        "unscheduled_overtime_hours": np.round(unscheduled, 1),
        "sick_hours": np.round(sick, 1),
        "injuries": injuries,
    }


# --------------------------------------------------------------------------- sensor readings
SENSOR_DISTRICTS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 1, 4])  # AQ-09 in D2, AQ-10 in D5
_SENSOR_PM_OFFSET = np.array([1.0, 1.3, 0.9, 1.1, 1.2, 0.95, 0.85, 0.9, 1.25, 1.15])
_SENSOR_NOISE_OFFSET = np.array([2, 6, 0, 3, 5, -1, -3, -4, 7, 4])
SMOKE = shift("wildfire_smoke")
SMOKE_START, SMOKE_END = epoch_day(SMOKE.start), epoch_day(SMOKE.end)


def smoke_pm25(day: int) -> float:
    """Extra PM2.5 from the wildfire smoke on `day`: a two-week bump peaking mid-episode."""
    if not SMOKE_START <= day <= SMOKE_END:
        return 0.0
    position = (day - SMOKE_START + 0.5) / (SMOKE_END - SMOKE_START + 1)
    return 20.0 + 55.0 * math.sin(math.pi * position)


def sensor_readings_day(city: City, day: int) -> dict[str, np.ndarray]:
    rng = day_rng(city.seed, "sensor_readings", day)
    s, h = len(SENSOR_DISTRICTS), 24
    hour = np.tile(np.arange(h), s)
    sensor = np.repeat(np.arange(s), h)
    doy_angle = 2 * math.pi * (day_date(day).timetuple().tm_yday - 20) / 365.25
    weekend = weekday_of(day) >= 5
    traffic = np.exp(-((hour - 8) ** 2) / 4.0) + np.exp(-((hour - 17.5) ** 2) / 5.0)
    activity = np.clip(np.sin(math.pi * (hour - 5) / 19.0), 0, None)
    temperature = (10.0 - 14.0 * math.cos(doy_angle) + 4.5 * np.sin(2 * math.pi * (hour - 9) / 24)
                   + rng.normal(0, 1.5) + rng.normal(0, 0.6, s * h))
    weather = rng.gamma(6.0, 1 / 6.0)  # the day's stagnation: shared by all sensors
    pm25 = (7.0 * (1 + 0.2 * math.cos(doy_angle)) * weather * _SENSOR_PM_OFFSET[sensor]
            * (1 + 0.25 * traffic) * np.exp(rng.normal(0, 0.2, s * h)) + smoke_pm25(day)
            * np.exp(rng.normal(0, 0.15, s * h)))
    no2 = ((10.0 + (6.0 if weekend else 14.0) * traffic) * _SENSOR_PM_OFFSET[sensor]
           * np.exp(rng.normal(0, 0.15, s * h)))
    noise = 44.0 + 20.0 * activity + _SENSOR_NOISE_OFFSET[sensor] + rng.normal(0, 2.0, s * h)
    return {
        "sensor_id": sensor,
        "district": SENSOR_DISTRICTS[sensor],
        "read_at": day * DAY + hour * 3600,
        "pm25_ug_m3": np.round(pm25, 1),
        "no2_ppb": np.round(no2, 1),
        "temperature_c": np.round(temperature, 1),
        "noise_db": np.round(noise, 1),
    }

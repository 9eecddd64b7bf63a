"""The genuine changes built into the sample city, and the true provider effects.

The generator reads these constants when it draws the data, and tests and docs read them to
know what the data must show, so the ground truth lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Shift:
    """One real change in how the city performs, starting on `start` (and ending on `end`).

    `before` and `after` are the approximate values of `measure` on either side of the change;
    `extract` is the data it shows in.
    """

    key: str
    department: str
    start: date
    description: str
    extract: str
    measure: str
    before: float
    after: float
    end: date | None = None

    @property
    def date(self) -> date:
        """The day the change starts (alias kept for readers who expect `date`)."""
        return self.start


SHIFTS: tuple[Shift, ...] = (
    Shift(
        key="app_launch",
        department="csc",
        start=date(2024, 4, 1),
        description="The 311 mobile app launches; residents move from phone to app.",
        extract="service_requests",
        measure="share of 311 requests with channel = 'app'",
        before=0.10,
        after=0.30,
    ),
    Shift(
        key="station_d7_opens",
        department="fire",
        start=date(2024, 6, 3),
        description="Fire station 7 opens in district D7; D7 was served from station 6 before.",
        extract="fire_ems_responses",
        measure="median minutes call_received_at -> on_scene_at in district D7",
        before=10.5,
        after=7.3,
    ),
    Shift(
        key="lead_data_sharing",
        department="health",
        start=date(2025, 1, 6),
        description=(
            "Public Health shares elevated blood-lead results with Housing the same week; "
            "referral inspections follow much faster."
        ),
        extract="blood_lead_tests",
        measure=(
            "share of children with a test >= 3.5 ug/dL whose address has a lead_referral "
            "inspection done within 30 days of the test"
        ),
        before=0.45,
        after=0.80,
    ),
    Shift(
        key="e_permitting",
        department="dbs",
        start=date(2025, 3, 3),
        description="Electronic permitting replaces paper plan review.",
        extract="permits",
        measure="median days applied_at -> issued_at",
        before=21.0,
        after=12.0,
    ),
    Shift(
        key="wildfire_smoke",
        department="env",
        start=date(2025, 7, 14),
        end=date(2025, 7, 27),
        description="Smoke from distant wildfires; PM2.5 spikes for two weeks.",
        extract="sensor_readings",
        measure="daily mean pm25_ug_m3 across sensors",
        before=8.0,
        after=45.0,
    ),
    Shift(
        key="new_pothole_crew",
        department="pw",
        start=date(2025, 9, 8),
        description="A second pothole crew starts; more potholes are fixed within the SLA.",
        extract="service_requests",
        measure="share of Pothole requests closed within sla_hours",
        before=0.72,
        after=0.88,
    ),
    Shift(
        key="graffiti_crew_reassigned",
        department="pw",
        start=date(2026, 9, 14),
        description=(
            "The graffiti crew is reassigned to leaf collection; graffiti waits for a general "
            "crew (a recent signal: the last 9 weeks run above the centre line)."
        ),
        extract="service_requests",
        measure="median days created_at -> closed_at for Graffiti Removal",
        before=3.0,
        after=6.0,
    ),
    Shift(
        key="ambulances_out_of_service",
        department="fire",
        start=date(2026, 10, 5),
        description="Two ambulances are out of service for repairs (a recent signal).",
        extract="fire_ems_responses",
        measure="90th percentile minutes call_received_at -> on_scene_at, EMS priority 1",
        before=9.5,
        after=11.5,
    ),
)


def shift(key: str) -> Shift:
    """The shift named `key`; a KeyError names the known keys when it is not one."""
    for candidate in SHIFTS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no sample-city shift {key!r}; known: {', '.join(s.key for s in SHIFTS)}")


@dataclass(frozen=True)
class ProviderEffect:
    """A provider's true effect on the log-odds of each outcome, beyond its clients' risk.

    Outcomes are drawn from a logistic model of client characteristics plus these effects, so a
    correct risk adjustment should recover them.
    """

    provider: str
    program_type: str
    exit_permanent_log_odds: float
    return_within_12m_log_odds: float
    note: str


PROVIDER_EFFECTS: dict[str, ProviderEffect] = {
    effect.provider: effect
    for effect in (
        ProviderEffect(
            "Harbor House", "emergency_shelter", 0.0, 0.0,
            "serves a much harder population (chronic, disabled, older, no income) but is "
            "no worse than others once that is accounted for",
        ),
        ProviderEffect(
            "Northside Shelter Partners", "emergency_shelter", -0.8, 0.7,
            "truly worse: fewer exits to permanent housing, more returns",
        ),
        ProviderEffect(
            "Second Street Mission", "emergency_shelter", 0.0, 0.0, "average",
        ),
        ProviderEffect(
            "Riverton Family Promise", "transitional", 0.0, 0.0,
            "average; serves mostly families",
        ),
        ProviderEffect(
            "Bridgeway Housing", "rapid_rehousing", 0.0, 0.0, "average",
        ),
        ProviderEffect(
            "New Leaf Rapid Rehousing", "rapid_rehousing", 0.3, -0.2, "somewhat better",
        ),
    )
}

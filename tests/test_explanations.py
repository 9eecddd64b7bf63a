"""What drove a change, in one sentence shared by the Metric page, the Stat session and the packet.

A hand-made city ("Handville") with two weeks of requests, built so that the three cases of the
sample city can be worked by hand (the maths itself is pinned in tests/test_attribution.py; these
tests pin the wiring from rollup to sentence, and the wording):

* street lights by district (a rate that improved while one district's own rate fell);
* potholes by channel (a rate that fell; the channel whose count rose most is not what matters);
* graffiti days by district (a median, lower is better, that worsened while another district
  improved by more).
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from citystat.api import CityStat
from citystat.kpis.frames import change_explanations, explain_change

PRIOR, NOW = date(2026, 11, 2), date(2026, 11, 9)   # two complete weeks, Mon..Sun

REGISTRY = """\
city: {name: Handville, timezone: UTC, fiscal_year_start_month: 7}
departments:
  - {id: pw, name: Public Works}
sources:
  - id: requests
    title: Requests
    path: data/requests.parquet
    description: Hand-made requests.
    time_column: created_at
    refresh: P1D
    columns: {kind: Kind, district: District, channel: Channel, on_time: On time, days: Days}
metrics:
  - id: lights_on_time
    title: Streetlights repaired on time
    department: pw
    owner: Lights
    description: Share on time.
    unit: percent
    direction: higher
    grain: week
    dimensions: [district]
    source: requests
    filter: "kind = 'light'"
    numerator: {agg: count, filter: on_time}
    denominator: {agg: count}
  - id: potholes_on_time
    title: Potholes repaired on time
    department: pw
    owner: Streets
    description: Share on time.
    unit: percent
    direction: higher
    grain: week
    dimensions: [channel]
    source: requests
    filter: "kind = 'pothole'"
    numerator: {agg: count, filter: on_time}
    denominator: {agg: count}
  - id: graffiti_days
    title: Graffiti removal time
    department: pw
    owner: Graffiti
    description: Median days to remove.
    unit: days
    direction: lower
    grain: week
    dimensions: [district]
    source: requests
    filter: "kind = 'graffiti'"
    measure: {agg: median, expr: days}
"""

# (kind, district, channel, on time, of how many) per week; graffiti rows carry days to close.
LIGHTS = {PRIOR: {"D1": (40, 50), "D2": (30, 50)}, NOW: {"D1": (20, 30), "D2": (56, 70)}}
POTHOLES = {PRIOR: {"phone": (60, 80), "web": (18, 20)}, NOW: {"phone": (70, 100), "web": (27, 40)}}
GRAFFITI = {PRIOR: {"D1": [2, 2, 2], "D2": [4, 4, 4], "D3": [10, 10, 10]},
            NOW: {"D1": [2, 2, 2], "D2": [6, 6, 6], "D3": [5]}}


def _rows() -> pl.DataFrame:
    rows = []
    for week, day in ((PRIOR, datetime(2026, 11, 2, 10)), (NOW, datetime(2026, 11, 15, 10))):
        for district, (ok, total) in LIGHTS[week].items():
            rows += [("light", district, "phone", i < ok, None, day) for i in range(total)]
        for channel, (ok, total) in POTHOLES[week].items():
            rows += [("pothole", "D1", channel, i < ok, None, day) for i in range(total)]
        for district, days in GRAFFITI[week].items():
            rows += [("graffiti", district, "web", True, float(d), day) for d in days]
    return pl.DataFrame(rows, orient="row", schema={"kind": pl.String, "district": pl.String, "channel": pl.String,
                                                    "on_time": pl.Boolean, "days": pl.Float64,
                                                    "created_at": pl.Datetime("us")})


@pytest.fixture(scope="module")
def handville(tmp_path_factory) -> CityStat:
    folder = tmp_path_factory.mktemp("handville")
    (folder / "data").mkdir()
    _rows().write_parquet(folder / "data" / "requests.parquet")
    (folder / "metrics.yaml").write_text(REGISTRY, encoding="utf-8")
    return CityStat.open(folder / "metrics.yaml", use_disk_cache=False).sync()


def _sentence(stat: CityStat, metric_id: str, dimension: str) -> str:
    metric = stat.metric(metric_id)
    return explain_change(stat.registry, stat.rollup, metric, "week", NOW, dimension).sentence


def test_rate_that_improved_names_the_value_that_pulled_it_up_and_the_one_against(handville):
    # 70/100 = 70.0% -> 76/100 = 76.0%: +6.0 points.
    # D2: 56/100 - 30/100 = +26 points (own rate 60% -> 80% on 70 requests; rate effect 0.2 x 0.7 = 14,
    #     mix 0.6 x 0.2 = 12: mostly its own rate); D1: 20/100 - 40/100 = -20 points (own rate 80% ->
    #     66.7% on 30; rate effect -0.133 x 0.3 = -4, mix 0.8 x -0.2 = -16: mostly its share).
    assert _sentence(handville, "lights_on_time", "district") == (
        "Since the prior period: +6.0 pts (better), from 70.0% to 76.0%. "
        "District D2 pulled the rate up 26.0 points: its own rate rose from 60.0% to 80.0% on 70 requests. "
        "Pulling the other way: District D1 pulled the rate down 20.0 points: its own rate fell from 80.0% to "
        "66.7% on 30 requests; mostly because its share of requests shrank from 50% to 30%.")


def test_rate_that_fell_is_explained_by_contributions_not_by_counts(handville):
    # 78/100 = 78.0% -> 97/140 = 69.3%: -8.7 points. Phone's count rose most (+10 on time), yet it
    # pulled the rate down: 70/140 - 60/100 = -10.0 points; web, whose own rate fell 22.5 points,
    # pulled it up 27/140 - 18/100 = +1.3 points because its share grew from 20% to 29%.
    assert _sentence(handville, "potholes_on_time", "channel") == (
        "Since the prior period: −8.7 pts (worse), from 78.0% to 69.3%. "
        "Phone channel pulled the rate down 10.0 points: its own rate fell from 75.0% to 70.0% on 100 requests; "
        "mostly because its share of requests shrank from 80% to 71%. "
        "Pulling the other way: Web channel pulled the rate up 1.3 points only because its share of requests "
        "grew from 20% to 29%; its own rate fell from 90.0% to 67.5% on 40 requests.")


def test_median_that_worsened_names_a_worsening_value_never_the_bigger_improvement(handville):
    # lower is better. Overall median 4 -> 5 days (worse). D3's own median fell 10 -> 5 (the largest
    # move, an improvement); D2's rose 4 -> 6: the only value that moved the way the KPI did.
    sentence = _sentence(handville, "graffiti_days", "district")
    assert sentence == (
        "Since the prior period: +1.0 days (worse), from 4.0 days to 5.0 days. "
        "District D2: its own median rose from 4.0 days to 6.0 days (medians do not add up across groups, "
        "so this is its own change, not a share of the total).")
    assert "D3" not in sentence


def test_every_dimension_is_explained_against_the_prior_period_and_last_year(handville):
    found = change_explanations(handville.registry, handville.rollup, handville.metric("lights_on_time"), "week", NOW)
    # no data a year before: only the prior-period explanation exists
    assert [(e.dimension, e.comparison) for e in found] == [("district", "prior")]
    (explained,) = found
    assert explained.heading == "By district, since the prior period"
    contributions = explained.table["contribution"].to_list()
    assert sum(contributions) == pytest.approx(0.06)   # the parts add up to the total change


def test_the_metric_page_shows_the_same_sentence(handville, monkeypatch):
    from tests.support.apptest import render, texts

    monkeypatch.setenv("CITYSTAT_REGISTRY", str(handville.registry_path))
    shown = texts(render("pages/metric.py", {"metric": "potholes_on_time"}))
    assert _sentence(handville, "potholes_on_time", "channel") in shown


def test_the_agenda_and_packet_carry_the_same_sentence(handville, tmp_path):
    from citystat.session.agenda import build_agenda
    from citystat.session.packet import breakdown_text, kpi_item_html
    from citystat.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    agenda = build_agenda(handville, store, department="pw", session_date=date(2026, 11, 16))
    item = next(i for i in agenda.items if i.metric_id == "lights_on_time")
    sentence = _sentence(handville, "lights_on_time", "district")
    assert breakdown_text(item) == sentence
    html = kpi_item_html(item, agenda.session_date, {}, svg="<svg></svg>")
    assert "District D2 pulled the rate up 26.0 points" in html

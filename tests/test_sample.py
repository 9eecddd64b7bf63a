"""The sample-city generator: contract (columns and types from docs/SAMPLE_CITY.md),
determinism, day-by-day independence, realism, and that each documented shift is really in
the data (measured with DuckDB, not with the generator's own code)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import statsmodels.api as sm

from devtools.sample import EXTRACTS, PROVIDER_EFFECTS, SHIFTS, generate, shift
from devtools.sample.__main__ import main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "SAMPLE_CITY.md"
SQL_TYPES = "BIGINT|TIMESTAMP|VARCHAR|INTEGER|DOUBLE|DATE|BOOLEAN"
ID_DAY_STRIDE = 10_000_000  # documented id scheme: epoch_day * 10,000,000 + n
FULL_REQUESTS = 60_000


def documented_columns() -> dict[str, list[tuple[str, str]]]:
    """Extract name -> [(column, SQL type)] parsed from the table in docs/SAMPLE_CITY.md."""
    found: dict[str, list[tuple[str, str]]] = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"\|\s*`(\w+)`[^|]*\|[^|]*\|(.*)\|\s*$", line)
        if match:
            found[match.group(1)] = re.findall(rf"(\w+) ({SQL_TYPES})\b", match.group(2))
    return found


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    """The full three-year sample at a smaller size (fast, still enough rows for statistics)."""
    out = tmp_path_factory.mktemp("city")
    generate(out, requests=FULL_REQUESTS)
    return out


@pytest.fixture(scope="module")
def con(city) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for extract in EXTRACTS:
        connection.execute(
            f"CREATE VIEW {extract} AS SELECT * FROM read_parquet('{city / extract}.parquet')"
        )
    return connection


def one(con, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchone()


# ----------------------------------------------------------------------------- contract
def test_docs_list_every_extract_the_generator_writes():
    assert set(documented_columns()) == set(EXTRACTS)


def test_every_extract_has_exactly_the_documented_columns_and_types(city):
    con = duckdb.connect()
    for extract, columns in documented_columns().items():
        described = con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
            [str(city / f"{extract}.parquet")],
        ).fetchall()
        assert described == columns, extract


def test_files_are_zstd_compressed(city):
    meta = pq.ParquetFile(city / "service_requests.parquet").metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_ids_are_unique(con):
    for extract, key in [("service_requests", "request_id"), ("fire_ems_responses", "incident_id"),
                         ("permits", "permit_id"), ("housing_inspections", "inspection_id"),
                         ("blood_lead_tests", "test_id"), ("homeless_enrollments", "enrollment_id"),
                         ("pfs_participants", "participant_id"), ("reminder_letters", "account_id"),
                         ("addresses", "address_id"), ("restaurant_inspections", "inspection_id")]:
        rows, distinct = one(con, f"SELECT count(*), count(DISTINCT {key}) FROM {extract}")
        assert rows == distinct > 0, extract


def test_row_counts_scale_with_requests(con):
    scale = FULL_REQUESTS / 330_000
    expected = {"service_requests": 330_000 * scale, "fire_ems_responses": 110_000 * scale,
                "permits": 40_000 * scale, "housing_inspections": 30_000 * scale,
                "restaurant_inspections": 20_000 * scale, "blood_lead_tests": 25_000 * scale,
                "addresses": 60_000 * scale, "homeless_enrollments": 12_000,
                "staff_hours": 10_960, "sensor_readings": 263_040}
    for extract, rows in expected.items():
        actual = one(con, f"SELECT count(*) FROM {extract}")[0]
        assert abs(actual - rows) / rows < 0.06, (extract, actual, rows)


# ----------------------------------------------------------------------------- determinism
def _tables(folder: Path) -> dict[str, object]:
    return {p.name: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


def test_same_arguments_give_identical_data(tmp_path):
    kwargs = dict(requests=30_000, start=date(2025, 2, 24), end=date(2025, 3, 9))
    generate(tmp_path / "a", **kwargs)
    generate(tmp_path / "b", **kwargs)
    first, second = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    assert list(first) == [f"{e}.parquet" for e in sorted(EXTRACTS)]
    for name, table in first.items():
        assert table.equals(second[name]), name
    generate(tmp_path / "c", seed=7, **kwargs)
    assert not first["service_requests.parquet"].equals(pq.read_table(tmp_path / "c" / "service_requests.parquet"))


ORIGIN = {  # how to tell the day a row was drawn
    "service_requests": "request_id // 10000000",
    "fire_ems_responses": "incident_id // 10000000",
    "permits": "permit_id // 10000000",
    "housing_inspections": "inspection_id // 10000000",
    "restaurant_inspections": "inspection_id // 10000000",
    "blood_lead_tests": "test_id // 10000000",
    "homeless_enrollments": "enrollment_id // 10000000",
    "staff_hours": "date_diff('day', DATE '1970-01-01', work_date)",
    "sensor_readings": "date_diff('day', DATE '1970-01-01', read_at::DATE)",
}


def test_appended_range_is_identical_to_generating_it_in_one_go(tmp_path):
    start, split, end = date(2024, 3, 25), date(2024, 4, 4), date(2024, 4, 14)
    kwargs = dict(requests=40_000)
    generate(tmp_path / "whole", start=start, end=end, **kwargs)
    generate(tmp_path / "head", start=start, end=date(2024, 4, 3), **kwargs)
    generate(tmp_path / "tail", start=split, end=end, **kwargs)
    split_day = (split - date(1970, 1, 1)).days
    con = duckdb.connect()
    for extract, origin in ORIGIN.items():
        whole = f"read_parquet('{tmp_path}/whole/{extract}.parquet')"
        tail = f"read_parquet('{tmp_path}/tail/{extract}.parquet')"
        tail_rows = one(con, f"SELECT count(*) FROM {tail}")[0]
        assert tail_rows > 0, extract
        for a, b in [(f"(SELECT * FROM {whole} WHERE {origin} >= {split_day})", tail),
                     (tail, f"(SELECT * FROM {whole} WHERE {origin} >= {split_day})")]:
            extra = one(con, f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})")[0]
            assert extra == 0, extract
    # The earlier file holds the same requests; closures after its end are still open there.
    head = f"read_parquet('{tmp_path}/head/service_requests.parquet')"
    whole = f"read_parquet('{tmp_path}/whole/service_requests.parquet')"
    cut = "TIMESTAMP '2024-04-04 00:00:00'"
    mismatched = one(con, f"""
        SELECT count(*) FROM {head} h FULL JOIN
          (SELECT * FROM {whole} WHERE request_id // 10000000 < {split_day}) w USING (request_id)
        WHERE h.created_at IS DISTINCT FROM w.created_at
           OR h.request_type IS DISTINCT FROM w.request_type
           OR h.closed_at IS DISTINCT FROM (CASE WHEN w.closed_at < {cut} THEN w.closed_at END)
           OR h.status IS DISTINCT FROM (CASE WHEN w.closed_at < {cut} THEN 'closed' ELSE 'open' END)
    """)[0]
    assert mismatched == 0
    open_in_head = one(con, f"SELECT count(*) FROM {head} WHERE status = 'open'")[0]
    assert open_in_head > 0


def test_partitioned_output_matches_single_file(tmp_path):
    kwargs = dict(requests=20_000, start=date(2024, 1, 20), end=date(2024, 3, 5),
                  extracts=["service_requests"])
    generate(tmp_path / "single", **kwargs)
    counts = generate(tmp_path / "parts", partitioned=True, **kwargs)
    names = sorted(p.name for p in (tmp_path / "parts" / "service_requests").glob("*.parquet"))
    assert names == ["2024-01.parquet", "2024-02.parquet", "2024-03.parquet"]
    con = duckdb.connect()
    glob = f"read_parquet('{tmp_path}/parts/service_requests/*.parquet')"
    single = f"read_parquet('{tmp_path}/single/service_requests.parquet')"
    assert one(con, f"SELECT count(*) FROM (SELECT * FROM {glob} EXCEPT ALL SELECT * FROM {single})")[0] == 0
    assert one(con, f"SELECT count(*) FROM {glob}")[0] == counts["service_requests"]
    january = one(con, f"""SELECT min(created_at), max(created_at)
                           FROM read_parquet('{tmp_path}/parts/service_requests/2024-01.parquet')""")
    assert january[0].date() >= date(2024, 1, 20) and january[1].date() <= date(2024, 1, 31)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="potholes"):
        generate(tmp_path, extracts=["potholes"])
    with pytest.raises(ValueError, match="before --start"):
        generate(tmp_path, start=date(2025, 1, 2), end=date(2025, 1, 1))
    with pytest.raises(ValueError, match="--requests"):
        generate(tmp_path, requests=0)


def test_command_line_writes_chosen_extracts(tmp_path, capsys):
    code = main(["--out", str(tmp_path), "--requests", "5000", "--start", "2025-06-02",
                 "--end", "2025-06-08", "--only", "permits", "staff_hours"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["permits.parquet", "staff_hours.parquet"]
    assert "staff_hours" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "staff_hours.parquet").num_rows == 70  # 10 departments x 7 days


# ----------------------------------------------------------------------------- shifts
def test_shifts_are_listed_with_dates():
    keys = [s.key for s in SHIFTS]
    assert keys == sorted(keys, key=lambda k: shift(k).start) and len(set(keys)) == 8
    assert {s.department for s in SHIFTS} == {"pw", "dbs", "health", "csc", "fire", "env"}
    assert shift("wildfire_smoke").end == date(2025, 7, 27)
    with pytest.raises(KeyError, match="new_pothole_crew"):
        shift("no_such_shift")


def test_pothole_crew_lifts_on_time_share(con):
    before, after = con.execute("""
        SELECT avg((closed_at <= created_at + to_hours(sla_hours))::INT)
               FILTER (created_at BETWEEN TIMESTAMP '2025-03-01' AND TIMESTAMP '2025-09-07 23:59:59'),
               avg((closed_at <= created_at + to_hours(sla_hours))::INT)
               FILTER (created_at BETWEEN TIMESTAMP '2025-09-08' AND TIMESTAMP '2026-09-30')
        FROM service_requests WHERE request_type = 'Pothole'""").fetchone()
    assert 0.67 < before < 0.77 and 0.84 < after < 0.92


def test_e_permitting_cuts_days_to_issue(con):
    before, after = con.execute("""
        SELECT median(date_diff('second', applied_at, issued_at) / 86400.0)
                 FILTER (applied_at < DATE '2025-03-03'),
               median(date_diff('second', applied_at, issued_at) / 86400.0)
                 FILTER (applied_at >= DATE '2025-03-03' AND applied_at < DATE '2026-06-01')
        FROM permits""").fetchone()
    assert 19 < before < 23 and 10.5 < after < 13.5


def test_lead_data_sharing_speeds_referral_inspections(con):
    rows = con.execute("""
        WITH kids AS (
          SELECT child_id, arg_min(address_id, tested_at) AS address_id, min(tested_at) AS first_at
          FROM blood_lead_tests WHERE result_ug_dl >= 3.5 GROUP BY child_id)
        SELECT k.first_at >= TIMESTAMP '2025-01-06' AS after,
               avg((EXISTS (SELECT 1 FROM housing_inspections h
                             WHERE h.address_id = k.address_id AND h.reason = 'lead_referral'
                               AND h.inspected_at BETWEEN k.first_at AND k.first_at + INTERVAL 30 DAY))::INT),
               count(*)
        FROM kids k WHERE k.first_at < TIMESTAMP '2026-10-01' GROUP BY 1 ORDER BY 1""").fetchall()
    (_, before, n_before), (_, after, n_after) = rows
    assert n_before > 60 and n_after > 60
    assert 0.33 < before < 0.57 and 0.72 < after < 0.92


def test_app_launch_moves_requests_from_phone_to_app(con):
    rows = con.execute("""
        SELECT created_at >= TIMESTAMP '2024-04-01', avg((channel = 'app')::INT), avg((channel = 'phone')::INT)
        FROM service_requests GROUP BY 1 ORDER BY 1""").fetchall()
    (_, app_before, phone_before), (_, app_after, phone_after) = rows
    assert 0.08 < app_before < 0.12 and 0.27 < app_after < 0.33
    assert phone_after < phone_before - 0.1


def test_graffiti_slowdown_is_a_recent_run_above_the_centre_line(con):
    weekly = con.execute("""
        SELECT date_trunc('week', created_at) AS week,
               median(date_diff('second', created_at, closed_at) / 86400.0)
        FROM service_requests WHERE request_type = 'Graffiti Removal'
          AND created_at >= TIMESTAMP '2026-03-16'
        GROUP BY 1 ORDER BY 1""").fetchall()
    baseline = [v for w, v in weekly if w.date() < date(2026, 9, 14)]
    recent = [v for w, v in weekly if w.date() >= date(2026, 9, 14)]
    assert len(baseline) == 26 and len(recent) == 9
    centre = float(np.mean(baseline))
    assert 2.6 < centre < 3.4
    assert all(v > centre for v in recent)
    assert 5 < float(np.median(recent)) < 7


def test_ambulances_out_of_service_worsen_ems_90th_percentile(con):
    before, after, median_before = con.execute("""
        SELECT quantile_cont(m, 0.9) FILTER (t < TIMESTAMP '2026-10-05'),
               quantile_cont(m, 0.9) FILTER (t >= TIMESTAMP '2026-10-05'),
               median(m) FILTER (t < TIMESTAMP '2026-10-05')
        FROM (SELECT call_received_at AS t, date_diff('second', call_received_at, on_scene_at) / 60.0 AS m
              FROM fire_ems_responses WHERE incident_type = 'ems' AND priority = 1
                AND call_received_at >= TIMESTAMP '2025-10-01')""").fetchone()
    assert 6 <= median_before <= 9
    assert 1.0 < after - before < 3.5


def test_station_d7_improves_district_d7_response(con):
    rows = con.execute("""
        SELECT call_received_at >= TIMESTAMP '2024-06-03' AS after,
               median(date_diff('second', call_received_at, on_scene_at) / 60.0),
               list_distinct(list(station))
        FROM fire_ems_responses WHERE district = 'D7' GROUP BY 1 ORDER BY 1""").fetchall()
    (_, before, stations_before), (_, after, stations_after) = rows
    assert before - after > 2
    assert stations_before == ["Station 6"] and stations_after == ["Station 7"]


def test_wildfire_smoke_spikes_pm25(con):
    smoke, usual = con.execute("""
        SELECT avg(pm25_ug_m3) FILTER (read_at::DATE BETWEEN DATE '2025-07-14' AND DATE '2025-07-27'),
               avg(pm25_ug_m3) FILTER (read_at::DATE BETWEEN DATE '2025-06-16' AND DATE '2025-07-13')
        FROM sensor_readings""").fetchone()
    assert smoke > 3 * usual and 5 < usual < 12


# ----------------------------------------------------------------------------- realism
def test_seasonality_and_weekday_cycles(con):
    pothole_peak = one(con, """SELECT month(created_at) FROM service_requests WHERE request_type = 'Pothole'
                               GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")[0]
    assert pothole_peak in (2, 3)
    summer, winter = one(con, """SELECT count(*) FILTER (month(created_at) IN (5, 6, 7)),
                                        count(*) FILTER (month(created_at) IN (12, 1, 2))
                                 FROM service_requests""")
    assert summer > 1.1 * winter
    weekend, weekday = one(con, """SELECT count(*) FILTER (isodow(created_at) >= 6) / 2,
                                          count(*) FILTER (isodow(created_at) <= 5) / 5
                                   FROM service_requests""")
    assert weekend < 0.85 * weekday
    ems_summer, ems_winter = one(con, """
        SELECT count(*) FILTER (month(call_received_at) IN (6, 7, 8)),
               count(*) FILTER (month(call_received_at) IN (12, 1, 2))
        FROM fire_ems_responses WHERE incident_type = 'ems'""")
    assert ems_summer > 1.1 * ems_winter
    ot_summer, ot_winter = one(con, """
        SELECT avg(overtime_hours) FILTER (month(work_date) IN (6, 7, 8)),
               avg(overtime_hours) FILTER (month(work_date) IN (12, 1, 2))
        FROM staff_hours WHERE department = 'fire'""")
    assert ot_summer > 1.5 * ot_winter


def test_permits_and_inspections_happen_on_weekdays_only(con):
    checks = [("permits", "applied_at"), ("permits", "issued_at"),
              ("housing_inspections", "inspected_at"), ("restaurant_inspections", "inspected_at")]
    for extract, column in checks:
        weekend = one(con, f"SELECT count(*) FILTER (isodow({column}) >= 6), count({column}) FROM {extract}")
        assert weekend[0] == 0 and weekend[1] > 0, (extract, column)


def test_timestamps_are_consistent(con):
    assert one(con, "SELECT count(*) FROM service_requests WHERE closed_at < created_at")[0] == 0
    assert one(con, """SELECT count(*) FROM service_requests
                       WHERE (status = 'open') <> (closed_at IS NULL)""")[0] == 0
    assert one(con, """SELECT count(*) FROM fire_ems_responses
                       WHERE dispatched_at < call_received_at OR on_scene_at < dispatched_at""")[0] == 0
    latest = one(con, """SELECT max(greatest(created_at, closed_at)) FROM service_requests""")[0]
    assert latest.date() == date(2026, 11, 15)
    still_open = one(con, """SELECT count(*) FROM service_requests
                             WHERE closed_at IS NULL AND created_at >= TIMESTAMP '2026-11-14'""")[0]
    assert still_open > 0
    assert one(con, "SELECT count(*) FROM housing_inspections WHERE inspected_at < requested_at")[0] == 0


def test_request_types_have_departments_and_slas(con):
    rows = dict(con.execute("""SELECT request_type, list_distinct(list(department || ':' || sla_hours))
                               FROM service_requests GROUP BY 1""").fetchall())
    assert len(rows) == 12
    assert rows["Pothole"][0].startswith("pw:") and rows["Noise Complaint"][0].startswith("csc:")
    assert rows["Housing Complaint"][0].startswith("housing:")
    assert rows["Rodent Activity"][0].startswith("health:")
    assert all(len(v) == 1 for v in rows.values())


def test_lead_tests_link_to_addresses_and_older_housing_has_more_elevated_tests(con):
    orphans = one(con, """SELECT count(*) FROM (SELECT address_id FROM blood_lead_tests
                          UNION ALL SELECT address_id FROM housing_inspections)
                          WHERE address_id NOT IN (SELECT address_id FROM addresses)""")[0]
    assert orphans == 0
    old, new = one(con, """SELECT avg((t.result_ug_dl >= 3.5)::INT) FILTER (a.year_built < 1978),
                                  avg((t.result_ug_dl >= 3.5)::INT) FILTER (a.year_built >= 1978)
                           FROM blood_lead_tests t JOIN addresses a USING (address_id)""")
    assert old > 2 * new
    unmatched = one(con, """SELECT count(*) FROM housing_inspections h WHERE reason = 'lead_referral'
                            AND NOT EXISTS (SELECT 1 FROM blood_lead_tests t WHERE t.address_id = h.address_id
                                            AND t.result_ug_dl >= 3.5 AND t.tested_at < h.requested_at)""")[0]
    assert unmatched == 0
    assert one(con, "SELECT count(*) FROM housing_inspections WHERE reason = 'lead_referral'")[0] > 100


def test_pay_for_success_cohort(con):
    rows = {r[0]: r[1:] for r in con.execute("""
        SELECT arm, count(*), min(age), max(age), avg(incarcerated_within_24m::INT),
               avg(jail_bed_days), avg(employed_q4::INT)
        FROM pfs_participants GROUP BY arm""").fetchall()}
    assert rows["treatment"][:3] == (929, 17, 24)
    assert 850 <= rows["control"][0] <= 950
    assert 0.45 < rows["control"][3] < 0.55 and 0.28 < rows["treatment"][3] < 0.38
    assert rows["treatment"][4] < rows["control"][4]
    assert rows["treatment"][5] > rows["control"][5]


def test_reminder_letter_trial(con):
    rows = {r[0]: r[1:] for r in con.execute("""
        SELECT arm, count(*), avg(paid_on_time::INT), min(mailed_at), max(mailed_at)
        FROM reminder_letters GROUP BY arm""").fetchall()}
    for arm in ("control", "reminder"):
        assert 7_500 < rows[arm][0] < 8_500
        assert rows[arm][2] >= date(2025, 10, 1) and rows[arm][3] <= date(2025, 12, 31)
    assert 0.59 < rows["control"][1] < 0.65 and 0.64 < rows["reminder"][1] < 0.70


def test_sensor_and_staff_grids_are_complete(con):
    assert one(con, "SELECT count(DISTINCT sensor_id), count(*) FROM sensor_readings") == (10, 10 * 24 * 1099)
    per_day = one(con, """SELECT min(n), max(n), count(*) FROM
                          (SELECT work_date, count(DISTINCT department) n FROM staff_hours GROUP BY 1)""")
    assert per_day == (10, 10, 1099)


def test_risk_adjustment_recovers_true_provider_effects(con):
    """Fit the outcome on client characteristics + provider (statsmodels, independent of the
    generator): Northside is truly worse; Harbor House looks worse raw but is not."""
    frame = con.execute("""
        SELECT provider, (exit_destination = 'permanent')::INT AS permanent,
               chronic_homeless::INT AS chronic, disability::INT AS disability,
               least(prior_episodes, 5) AS prior, income_at_entry::INT AS income,
               veteran::INT AS veteran, (household_type = 'family')::INT AS family, age - 40 AS age
        FROM homeless_enrollments WHERE exited_at IS NOT NULL""").df()
    raw = frame.groupby("provider")["permanent"].mean()
    assert raw["Harbor House"] < raw.drop("Harbor House").mean() - 0.1
    providers = [p for p in PROVIDER_EFFECTS if p != "Second Street Mission"]  # the reference
    design = frame[["chronic", "disability", "prior", "income", "veteran", "family", "age"]].astype(float)
    for p in providers:
        design[p] = (frame["provider"] == p).astype(float)
    fit = sm.Logit(frame["permanent"].astype(float), sm.add_constant(design)).fit(disp=False)
    low, high = fit.conf_int().loc["Northside Shelter Partners"]
    assert high < -0.4 and abs(fit.params["Northside Shelter Partners"] - (-0.8)) < 0.25
    low, high = fit.conf_int().loc["Harbor House"]
    assert low < 0 < high or abs(fit.params["Harbor House"]) < 0.2
    assert abs(fit.params["chronic"] - (-0.7)) < 0.25
    assert PROVIDER_EFFECTS["Harbor House"].exit_permanent_log_odds == 0.0
    assert len(PROVIDER_EFFECTS) == 6


def test_committed_sample_is_what_the_generator_makes(tmp_path):
    """data/ must be regenerated when the generator changes: its last week (and the static
    tables) must equal a fresh default-size run of that week."""
    data = DOCS.parents[1] / "data"
    generate(tmp_path, start=date(2026, 11, 9), end=date(2026, 11, 15))
    first_day = (date(2026, 11, 9) - date(1970, 1, 1)).days
    con = duckdb.connect()
    for extract in EXTRACTS:
        fresh = f"read_parquet('{tmp_path}/{extract}.parquet')"
        origin = ORIGIN.get(extract, "0")
        committed = f"(SELECT * FROM read_parquet('{data}/{extract}.parquet') WHERE {origin} >= {first_day})"
        if extract not in ORIGIN:  # static tables and studies: the whole table
            committed = f"read_parquet('{data}/{extract}.parquet')"
        for a, b in [(fresh, committed), (committed, fresh)]:
            extra = one(con, f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})")[0]
            assert extra == 0, f"data/{extract}.parquet is stale: run python -m devtools.sample"

"""Extracts and published rollups on a real S3-compatible server (moto, on loopback).

The KPI values are worked out by hand from the rows written below; the same file read
locally and from s3:// must give the same KPI frame.
"""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from citystat import CityStat
from citystat.files.s3 import ObjectStoreError, S3Settings, folder_at, list_objects, publish, read_pointer
from citystat.kpis.refresh import refresh
from citystat.kpis.replica import PublishedRollups, notice
from tests.support.cities import jobs_metric, jobs_registry
from tests.support.s3_server import s3, s3_server  # noqa: F401  (pytest fixtures)

WEEK1 = [("2025-01-06 09:00", True), ("2025-01-07 09:00", True), ("2025-01-08 09:00", True),
         ("2025-01-09 09:00", False)]                     # 4 jobs, 3 on time -> 0.75
WEEK2 = [("2025-01-13 09:00", True), ("2025-01-14 09:00", False), ("2025-01-15 09:00", False),
         ("2025-01-16 09:00", True), ("2025-01-17 09:00", True), ("2025-01-19 23:00", False)]  # 6, 3 -> 0.5

REGISTRY = jobs_registry(
    jobs_metric("jobs_done", "Jobs done", targets="[{from: 2025-01-01, value: 5}]"),
    jobs_metric("on_time", "On time", unit="percent", targets="[{from: 2025-01-01, value: 0.8}]",
                form="numerator: {agg: count, filter: on_time}\ndenominator: {agg: count}"),
    path="PATH")


def parquet_bytes(rows: list[tuple[str, bool]]) -> bytes:
    table = pa.table({"done_at": pa.array([datetime.fromisoformat(t) for t, _ in rows], pa.timestamp("us")),
                      "on_time": pa.array([ok for _, ok in rows], pa.bool_())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def registry_at(folder: Path, path: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "metrics.yaml"
    registry.write_text(textwrap.dedent(REGISTRY).replace("PATH", path))
    return registry


def weekly(city: CityStat, metric_id: str) -> dict[date, float]:
    frame = city.kpi(metric_id, "week")
    return dict(zip(frame["period_start"].to_list(), frame["value"].to_list()))


def test_settings_from_env_use_path_style_for_an_endpoint_and_hide_the_secret():
    settings = S3Settings.from_env({"CITYSTAT_S3_ENDPOINT": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "k",
                                    "AWS_SECRET_ACCESS_KEY": "very-secret", "AWS_DEFAULT_REGION": "eu-west-3"})
    assert (settings.url_style, settings.region, settings.use_ssl) == ("path", "eu-west-3", False)
    assert "very-secret" not in repr(settings)
    assert S3Settings.from_env({}).url_style == "virtual"
    with pytest.raises(ObjectStoreError, match="CITYSTAT_S3_URL_STYLE"):
        S3Settings.from_env({"CITYSTAT_S3_URL_STYLE": "sideways"})


def test_a_source_on_s3_gives_the_same_kpis_as_the_same_file_locally(s3, tmp_path):
    data = parquet_bytes(WEEK1 + WEEK2)
    s3.client.put_object(Bucket=s3.bucket, Key="extracts/jobs.parquet", Body=data)
    (tmp_path / "local" / "data").mkdir(parents=True)
    (tmp_path / "local" / "data" / "jobs.parquet").write_bytes(data)
    local = CityStat.open(registry_at(tmp_path / "local", "data/jobs.parquet"), use_disk_cache=False)
    remote = CityStat.open(registry_at(tmp_path / "remote", s3.url("extracts/jobs.parquet")), use_disk_cache=False)

    assert remote.problems() == []
    assert weekly(remote, "jobs_done") == {date(2025, 1, 6): 4, date(2025, 1, 13): 6}   # by hand
    assert weekly(remote, "on_time") == {date(2025, 1, 6): 0.75, date(2025, 1, 13): 0.5}
    for metric_id in ("jobs_done", "on_time"):
        assert remote.kpi(metric_id, "week").equals(local.kpi(metric_id, "week"))
    assert remote.sql("SELECT count(*) AS n FROM jobs")["n"][0] == 10


def test_a_glob_of_objects_and_changes_to_them_are_picked_up_without_a_restart(s3, tmp_path):
    s3.client.put_object(Bucket=s3.bucket, Key="jobs/part-1.parquet", Body=parquet_bytes(WEEK1))
    s3.client.put_object(Bucket=s3.bucket, Key="jobs/part-2.parquet", Body=parquet_bytes(WEEK2))
    s3.client.put_object(Bucket=s3.bucket, Key="jobs/readme.txt", Body=b"not parquet")
    city = CityStat.open(registry_at(tmp_path, s3.url("jobs/part-*.parquet")), use_disk_cache=False)
    assert weekly(city, "jobs_done") == {date(2025, 1, 6): 4, date(2025, 1, 13): 6}
    before = city.engine.fingerprint()

    # a third partition adds two jobs to week 2 (ETag and size change -> new fingerprint)
    s3.client.put_object(Bucket=s3.bucket, Key="jobs/part-3.parquet",
                         Body=parquet_bytes([("2025-01-15 10:00", True), ("2025-01-16 10:00", True)]))
    assert city.engine.fingerprint() != before
    assert weekly(city, "jobs_done") == {date(2025, 1, 6): 4, date(2025, 1, 13): 8}
    assert weekly(city, "on_time")[date(2025, 1, 13)] == pytest.approx(5 / 8)

    # a deleted partition disappears from the local copy too
    s3.client.delete_object(Bucket=s3.bucket, Key="jobs/part-3.parquet")
    assert weekly(city, "jobs_done") == {date(2025, 1, 6): 4, date(2025, 1, 13): 6}


def test_s3_sources_keep_the_sql_sandbox(s3, tmp_path):
    s3.client.put_object(Bucket=s3.bucket, Key="jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2))
    secret = tmp_path / "secret.parquet"
    secret.write_bytes(parquet_bytes(WEEK1))
    city = CityStat.open(registry_at(tmp_path / "reg", s3.url("jobs.parquet")), use_disk_cache=False)
    assert city.sql("SELECT count(*) AS n FROM jobs")["n"][0] == 10
    from citystat.kpis.engine import QueryError

    for query in (f"SELECT * FROM read_parquet('{secret}')",
                  f"SELECT * FROM read_parquet('{s3.url('jobs.parquet')}')",
                  f"SELECT * FROM read_parquet('{s3.server.endpoint}/{s3.bucket}/jobs.parquet')"):
        with pytest.raises(QueryError):
            city.sql(query)


def test_a_missing_object_or_bucket_is_a_named_problem(s3, tmp_path):
    city = CityStat.open(registry_at(tmp_path / "a", s3.url("nothing/here.parquet")), use_disk_cache=False)
    problems = [str(p) for p in city.problems()]
    assert any("source jobs" in p and "no object matches " + s3.url("nothing/here.parquet") in p
               for p in problems), problems

    url = f"s3://{s3.bucket}-absent/jobs.parquet"
    city = CityStat.open(registry_at(tmp_path / "b", url), use_disk_cache=False)
    problems = [str(p) for p in city.problems()]
    assert any("source jobs" in p and f"cannot list {url}" in p and "NoSuchBucket" in p for p in problems), problems
    with pytest.raises(ObjectStoreError, match="cannot list"):
        list_objects(url)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_publish_writes_the_pointer_last_and_prunes_old_sets(s3, tmp_path, where):
    folder = folder_at(s3.url("rollups") if where == "s3" else tmp_path / "rollups")
    assert read_pointer(folder) is None
    for n in range(4):
        publish(folder, {f"rollup-f{n}.parquet": b"x" * n, f"problems-f{n}.json": b"[]"},
                {"fingerprint": f"f{n}"}, keep=2)
    pointer = read_pointer(folder)
    assert pointer["fingerprint"] == "f3"
    assert [h["fingerprint"] for h in pointer["history"]] == ["f3", "f2"]
    assert folder.read_bytes("rollup-f3.parquet") == b"xxx"
    assert folder.read_bytes("rollup-f2.parquet") == b"xx"
    assert folder.read_bytes("rollup-f1.parquet") is None and folder.read_bytes("rollup-f0.parquet") is None


def test_refresh_publishes_to_s3_and_a_replica_serves_it_without_computing(s3, tmp_path, monkeypatch):
    s3.client.put_object(Bucket=s3.bucket, Key="extracts/jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2))
    registry = registry_at(tmp_path, s3.url("extracts/jobs.parquet"))
    target = s3.url("published")
    monkeypatch.setenv("CITYSTAT_ROLLUPS", target)

    replica = CityStat.open(registry, replica=True)
    assert "No KPI rollup has been published" in notice(replica.rollup)
    assert replica.overview() == []

    pointer = refresh(registry, target)
    assert pointer["registry_fingerprint"] == replica.registry.fingerprint()
    assert read_pointer(folder_at(target))["fingerprint"] == pointer["fingerprint"]

    # the extract disappears: a replica that computed would have no data; this one serves the published rollup
    s3.client.delete_object(Bucket=s3.bucket, Key="extracts/jobs.parquet")
    fresh = CityStat.open(registry, replica=True)
    fresh._published.check_every = 0
    assert notice(fresh.rollup) is None
    assert weekly(fresh, "jobs_done") == {date(2025, 1, 6): 4, date(2025, 1, 13): 6}
    assert weekly(fresh, "on_time") == {date(2025, 1, 6): 0.75, date(2025, 1, 13): 0.5}


def test_the_pointer_is_checked_at_most_every_interval(s3, tmp_path):
    s3.client.put_object(Bucket=s3.bucket, Key="jobs.parquet", Body=parquet_bytes(WEEK1))
    registry = registry_at(tmp_path, s3.url("jobs.parquet"))
    target = s3.url("pub")
    first = refresh(registry, target)
    now = [1000.0]
    reader = PublishedRollups(target, check_every=10, cache=tmp_path / "cache", clock=lambda: now[0])
    assert reader.latest().fingerprint == first["fingerprint"]

    s3.client.put_object(Bucket=s3.bucket, Key="jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2))
    second = refresh(registry, target)
    assert second["fingerprint"] != first["fingerprint"]
    now[0] += 9.9
    assert reader.latest().fingerprint == first["fingerprint"]      # not checked yet
    now[0] += 0.2
    rollup = reader.latest()
    assert rollup.fingerprint == second["fingerprint"]
    totals = rollup.series("jobs_done", "week")
    assert dict(zip(totals["period_start"], totals["value"])) == {date(2025, 1, 6): 4, date(2025, 1, 13): 6}

"""Refreshes that cannot lie: fault injection with real files, a real S3 server and real processes.

- An extract replaced during a compute (by rename, and by a slow in-place write), locally and on
  S3: the change is made from `scan.SCAN_HOOKS` at a known point of the compute, so the test is
  deterministic. The rollup must never carry data read before the change under the new
  fingerprint, in memory, in the cache folder or published.
- A refresh whose extracts folder, or one extract, is missing fails with exit code 3 naming the
  source and leaves the last publication in place.
- A refresh killed (SIGKILL) in the middle of publishing leaves the previous publication
  readable, and a later run removes its leftovers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from citystat.api import CityStat
from citystat.kpis import scan
from citystat.kpis.replica import PublishedRollups
from citystat.kpis.rollup_files import load_rollup
from tests.support.cities import make_city, requests_frame
from tests.support.s3_server import s3, s3_server  # noqa: F401  (pytest fixtures)
from tests.test_s3 import WEEK1, WEEK2, parquet_bytes, registry_at

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEEK = date(2026, 2, 2)          # Testville: 20 requests a day, 140 a week
EXTRA_WEEK2 = [("2025-01-15 10:00", True), ("2025-01-16 10:00", True)]   # S3 jobs: week 2 6 -> 8


def doubled_week() -> pl.DataFrame:
    """Testville's requests with the week of 2 Feb 2026 twice over: that week reads 280, not 140."""
    frame = requests_frame()
    week = frame.filter(pl.col("created_at").dt.truncate("1w").dt.date() == WEEK)
    return pl.concat([frame, week.with_columns(pl.col("request_id") + 100_000)])


def week_value(rollup, metric_id: str = "requests_count", week: date = WEEK) -> float | None:
    series = rollup.series(metric_id, "week").filter(pl.col("period_start") == week)
    return series["value"][0] if series.height else None


class Hook:
    """Runs `actions[source]` (each once) when the compute has scanned that source."""

    def __init__(self, **actions):
        self.actions = actions
        self.done: list[str] = []

    def __call__(self, source_id: str) -> None:
        action = self.actions.pop(source_id, None)
        if action is not None:
            action()
            self.done.append(source_id)

    def __enter__(self):
        scan.SCAN_HOOKS.append(self)
        return self

    def __exit__(self, *exc):
        scan.SCAN_HOOKS.remove(self)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(folder))
    monkeypatch.delenv("CITYSTAT_ROLLUPS", raising=False)
    return folder


def current_fingerprint(registry: Path) -> str:
    from citystat.kpis.engine import Engine
    from citystat.registry.loader import load_registry

    return Engine(load_registry(registry)).fingerprint()


def assert_honest(rollup, registry: Path, cache: Path, expected: float) -> None:
    """The rollup the compute returned, and every rollup in the cache, carry the data their
    fingerprint names (here: the extracts as they are now)."""
    assert rollup.fingerprint == current_fingerprint(registry)
    assert week_value(rollup) == expected
    assert not rollup.failed_metrics()
    for file in cache.glob("rollup-*.parquet"):
        fingerprint = file.name.removeprefix("rollup-").removesuffix(".parquet")
        if fingerprint == rollup.fingerprint:
            assert week_value(load_rollup(cache, fingerprint)) == expected
    assert load_rollup(cache, rollup.fingerprint) is not None


@pytest.mark.parametrize("after", ["requests", "cases"], ids=["after-its-scan", "before-its-scan"])
def test_an_extract_replaced_by_rename_during_a_compute(tmp_path, cache, after):
    registry = make_city(tmp_path / "city")
    extract = tmp_path / "city" / "data" / "requests.parquet"

    def replace_by_rename():
        fresh = extract.with_name("incoming.parquet")
        doubled_week().write_parquet(fresh)
        os.replace(fresh, extract)

    with Hook(**{after: replace_by_rename}) as hook:
        city = CityStat.open(registry, replica=False)
        rollup = city.rollup
    assert hook.done == [after]
    assert rollup.how == "full"
    assert_honest(rollup, registry, cache, 280.0)
    # a new process trusts the cache: it must find the new numbers under the new fingerprint
    assert week_value(CityStat.open(registry, replica=False).rollup) == 280.0


def test_an_extract_rewritten_slowly_in_place_during_a_compute(tmp_path, cache):
    registry = make_city(tmp_path / "city")
    extract = tmp_path / "city" / "data" / "requests.parquet"
    new = tmp_path / "new.parquet"
    doubled_week().write_parquet(new)
    data = new.read_bytes()
    half = len(data) // 2

    def first_half():   # the copy has started: the file is truncated and half written
        with extract.open("r+b") as handle:
            handle.truncate(0)
            handle.write(data[:half])

    def second_half():  # ... and finishes after the requests were scanned
        with extract.open("ab") as handle:
            handle.write(data[half:])

    with Hook(cases=first_half, requests=second_half) as hook:
        rollup = CityStat.open(registry, replica=False).rollup
    assert hook.done == ["cases", "requests"]
    assert_honest(rollup, registry, cache, 280.0)


def test_an_s3_object_replaced_during_a_compute(s3, tmp_path, cache, monkeypatch):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    s3.client.put_object(Bucket=s3.bucket, Key="jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2))
    registry = registry_at(tmp_path / "city", s3.url("jobs.parquet"))

    def replace_object():
        s3.client.put_object(Bucket=s3.bucket, Key="jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2 + EXTRA_WEEK2))

    with Hook(jobs=replace_object) as hook:
        city = CityStat.open(registry, replica=False)
        rollup = city.rollup
    assert hook.done == ["jobs"]
    assert rollup.fingerprint == current_fingerprint(registry)
    assert week_value(rollup, "jobs_done", date(2025, 1, 13)) == 8.0
    cached = load_rollup(cache, rollup.fingerprint)
    assert week_value(cached, "jobs_done", date(2025, 1, 13)) == 8.0


def test_extracts_that_keep_changing_are_not_labelled(tmp_path, cache):
    registry = make_city(tmp_path / "city")
    extract = tmp_path / "city" / "data" / "requests.parquet"
    frames = [doubled_week(), requests_frame(), doubled_week()]

    def rewrite(source_id):
        if source_id == "requests" and frames:
            frames.pop().write_parquet(extract)

    scan.SCAN_HOOKS.append(rewrite)
    try:
        from citystat.kpis.rollup import SourcesChanged

        with pytest.raises(SourcesChanged, match="requests"):
            CityStat.open(registry, replica=False).rollup
    finally:
        scan.SCAN_HOOKS.remove(rewrite)
    assert not list(cache.glob("rollup-*.parquet"))   # nothing stored under any fingerprint


# ---- the refresh job, as cron runs it ---------------------------------------------------------------

def run_refresh(registry: Path, target: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "citystat", "refresh", "--registry", str(registry),
                           "--to", str(target)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def job_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSTAT_")}
    return {**env, "CITYSTAT_CACHE_DIR": str(tmp_path / "job-cache")}


def published_week(target: Path) -> float | None:
    return week_value(PublishedRollups(str(target), check_every=0, cache=target.parent / "replica").latest())


@pytest.mark.parametrize("missing", ["folder", "one extract"])
def test_a_refresh_that_cannot_read_its_extracts_fails_and_keeps_the_last_publication(tmp_path, job_env, missing):
    registry = make_city(tmp_path / "city")
    target = tmp_path / "published"
    first = run_refresh(registry, target, job_env)
    assert first.returncode == 0, first.stderr
    pointer = (target / "latest.json").read_bytes()
    assert json.loads(pointer)["sources"] == ["cases", "old_feed", "requests"]
    files = sorted(p.name for p in target.iterdir())

    data = tmp_path / "city" / "data"
    if missing == "folder":
        data.rename(tmp_path / "city" / "data-moved")
        lost = ["cases", "old_feed", "requests"]
    else:
        (data / "cases.parquet").unlink()
        lost = ["cases"]
    failed = run_refresh(registry, target, job_env)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "refresh failed: cannot read " + ", ".join(lost) in failed.stderr
    for source in lost:
        assert f"source {source}: no file matches" in failed.stderr
    if missing == "one extract":
        assert "source requests" not in failed.stderr
    assert "keeps its last publication" in failed.stderr
    assert (target / "latest.json").read_bytes() == pointer
    assert sorted(p.name for p in target.iterdir()) == files
    assert published_week(target) == 140.0


KILLER = """
import os, sys, time
from pathlib import Path
marker, target, registry = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
real_replace, seen = os.replace, []

def replace(src, dst, *args, **kwargs):  # pause for good before the 2nd file lands in the target
    if str(dst).startswith(target):
        seen.append(dst)
        if len(seen) == 2:
            marker.write_text(str(src))
            time.sleep(600)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from citystat.cli import main
sys.exit(main(["refresh", "--registry", registry, "--to", target]))
"""


def test_a_refresh_killed_mid_publish_leaves_the_last_publication_and_is_cleaned_up_later(tmp_path, job_env):
    registry = make_city(tmp_path / "city")
    target = tmp_path / "published"
    assert run_refresh(registry, target, job_env).returncode == 0
    pointer = (target / "latest.json").read_bytes()
    good = set(json.loads(pointer)["files"])

    doubled_week().write_parquet(tmp_path / "city" / "data" / "requests.parquet")   # new data to publish
    marker = tmp_path / "paused"
    process = subprocess.Popen([sys.executable, "-c", KILLER, str(marker), str(target), str(registry)],
                               cwd=PROJECT_ROOT, env=job_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the refresh never reached its second file"
            time.sleep(0.1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    leftovers = {p.name for p in target.iterdir()} - good - {"latest.json"}
    assert any(name.startswith(".tmp-") for name in leftovers)            # the file being written
    assert any(name.startswith("problems-") for name in leftovers)        # the one already written
    assert (target / "latest.json").read_bytes() == pointer
    assert published_week(target) == 140.0                                 # replicas keep the last rollup

    # the data changes again, so the killed run's files are orphans no pointer will ever name
    requests_frame().filter(pl.col("created_at").dt.date() < date(2026, 3, 2)).head(1000).write_parquet(
        tmp_path / "city" / "data" / "requests.parquet")
    young = target / "rollup-refresh-still-running.parquet"
    young.write_bytes(b"being written by another refresh")
    two_hours_ago = time.time() - 7200
    for name in leftovers:
        os.utime(target / name, (two_hours_ago, two_hours_ago))
    again = run_refresh(registry, target, job_env)
    assert again.returncode == 0, again.stderr
    assert "removed" in again.stdout
    names = {p.name for p in target.iterdir()}
    assert not names & leftovers                       # the killed run's leftovers are gone
    assert young.name in names                         # a young file may belong to a running refresh
    published = json.loads((target / "latest.json").read_text())
    assert set(published["files"]) <= names and published["fingerprint"] != json.loads(pointer)["fingerprint"]
    assert published_week(target) is not None


def test_a_source_retired_from_the_registry_does_not_stop_the_refresh(tmp_path, job_env):
    registry = make_city(tmp_path / "city")
    target = tmp_path / "published"
    assert run_refresh(registry, target, job_env).returncode == 0
    text = registry.read_text()
    start = text.index("  - id: old_feed\n")
    end = text.index("metrics:\n")
    metric = text.index("  - id: old_readings\n")
    registry.write_text(text[:start] + text[end:metric])   # the source and its one metric removed
    (tmp_path / "city" / "data" / "old_feed.parquet").unlink()
    again = run_refresh(registry, target, job_env)
    assert again.returncode == 0, again.stderr
    assert json.loads((target / "latest.json").read_text())["sources"] == ["cases", "requests"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_publish_removes_leftovers_no_pointer_names_on_a_folder_and_on_s3(s3, tmp_path, where):
    from citystat.files.s3 import folder_at, publish

    location = str(tmp_path / "published") if where == "local" else s3.url("rollups")
    folder = folder_at(location)
    publish(folder, {"rollup-a.parquet": b"a", "meta-a.json": b"{}"}, {"fingerprint": "a"})
    for name in ("rollup-killed.parquet", "problems-killed.json", ".tmp-abc123.parquet", "notes.txt"):
        folder.write_bytes(name, b"left over")
    kept_young = publish(folder, {"rollup-b.parquet": b"b"}, {"fingerprint": "b"})
    assert kept_young["removed"] == []                                 # younger than an hour: may be running
    pointer = publish(folder, {"rollup-c.parquet": b"c"}, {"fingerprint": "c"}, stale_after=0)
    assert sorted(pointer["removed"]) == [".tmp-abc123.parquet", "problems-killed.json", "rollup-killed.parquet"]
    assert sorted(folder.ages()) == ["latest.json", "meta-a.json", "notes.txt", "rollup-a.parquet",
                                     "rollup-b.parquet", "rollup-c.parquet"]

"""Two real app replicas sharing PostgreSQL and an S3 object store.

Set-up as in production (docs/DEPLOYMENT.md): the extracts are on S3 (a moto server on
loopback), `python -m citystat refresh` publishes the rollup to S3, and two
`streamlit run app.py` processes on different ports read that rollup (CITYSTAT_ROLLUPS) and
keep their state in one PostgreSQL database (CITYSTAT_STATE_URL). Headless Chromium looks
at both, as a person would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from devtools.appserver import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, exception_texts, start_app, wait_for_app
from citystat.kpis.refresh import refresh
from citystat.store import open_store
from tests.test_s3 import WEEK1, WEEK2, parquet_bytes, registry_at

from tests.support.pg_server import pg_server, pg_url  # noqa: F401  (pytest fixtures)
from tests.support.s3_server import s3, s3_server  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")

EXTRA_WEEK2 = [("2025-01-15 10:00", True), ("2025-01-16 10:00", True)]   # week 2: 6 -> 8 jobs


def run_refresh(registry: Path, target: str, env: dict[str, str]) -> str:
    """The cron job, as a separate process; returns what it printed."""
    result = subprocess.run([sys.executable, "-m", "citystat", "refresh", "--registry", str(registry), "--to", target],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def metric_cards(pages: dict, metric_id: str) -> dict[str, str]:
    """The 'Value' card of the Metric detail page on every replica (loaded side by side)."""
    for url, page in pages.items():
        page.goto(f"{url}/metric?metric={metric_id}", wait_until="commit")
    values = {}
    for url, page in pages.items():
        wait_for_app(page)
        assert not exception_texts(page), exception_texts(page)
        values[url] = page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()
    return values


def commitments_text(page, app, owner: str) -> str:
    """What the Commitments page says after filtering by owner."""
    page.goto(f"{app.url}/commitments")
    wait_for_app(page)
    page.get_by_label("Owner contains").fill(owner)
    page.get_by_label("Owner contains").press("Enter")
    wait_for_app(page)
    assert not exception_texts(page), exception_texts(page)
    return page.locator('[data-testid="stMain"]').inner_text()


def start_replicas(tmp_path: Path, env: dict[str, str]) -> list:
    """Two `streamlit run app.py` processes on free ports, started side by side."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_app, tmp_path / name, extra_env=env) for name in ("a", "b")]
        apps = []
        for future in futures:
            try:
                apps.append(future.result())
            except RuntimeError:
                for app in apps:
                    app.stop()
                raise
    return apps


def test_two_replicas_share_state_and_pick_up_a_new_refresh(s3, pg_url, tmp_path):
    from playwright.sync_api import sync_playwright

    s3.client.put_object(Bucket=s3.bucket, Key="extracts/jobs.parquet", Body=parquet_bytes(WEEK1 + WEEK2))
    registry = registry_at(tmp_path / "city", s3.url("extracts/jobs.parquet"))
    rollups = s3.url("rollups")
    job_env = {**os.environ, **s3.env(), "CITYSTAT_CACHE_DIR": str(tmp_path / "job-cache"),
               "CITYSTAT_STATE_URL": pg_url}
    job_env.pop("CITYSTAT_ROLLUPS", None)
    assert "published rollup" in run_refresh(registry, rollups, job_env)

    replicas = start_replicas(tmp_path, {**s3.env(), "CITYSTAT_REGISTRY": str(registry), "CITYSTAT_STATE_URL": pg_url,
                                         "CITYSTAT_ROLLUPS": rollups, "CITYSTAT_ROLLUPS_CHECK_SECONDS": "1"})
    a, b = replicas
    try:
        assert a.url != b.url and a.process.pid != b.process.pid
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            pages = {}
            for app in replicas:
                pages[app.url] = browser.new_page(viewport={"width": 1400, "height": 1000})
                pages[app.url].set_default_timeout(60_000)

            # both serve the published rollup: 6 jobs in the week of 13 Jan (worked by hand)
            assert metric_cards(pages, "jobs_done") == {a.url: "6", b.url: "6"}

            # a commitment made through replica A's state store is listed by replica B
            owner = f"Owner {os.getpid()} Ünïcödé"
            assert "No commitment" in commitments_text(pages[b.url], b, owner)   # "yet" or "matches"
            store_a = open_store(a.env["CITYSTAT_STATE_URL"])
            session = store_a.create_session("pw", date(2025, 1, 20), title="Public Works stat", actor="replica-a")
            store_a.create_commitment(session.id, "Clear the pothole backlog", owner, date(2025, 2, 28),
                                      metric_id="jobs_done", actor="replica-a")
            text = commitments_text(pages[b.url], b, owner)
            assert "1 commitment;" in text, text

            # new data and a new refresh job: both replicas show it without a restart
            s3.client.put_object(Bucket=s3.bucket, Key="extracts/jobs.parquet",
                                 Body=parquet_bytes(WEEK1 + WEEK2 + EXTRA_WEEK2))
            refresh(registry, rollups)   # in this process: the command itself ran above
            time.sleep(1.1)   # the replicas' pointer check interval
            assert metric_cards(pages, "jobs_done") == {a.url: "8", b.url: "8"}
            browser.close()
        for app in replicas:
            assert app.process.poll() is None, "a replica stopped"
            # replicas never computed a rollup: their caches hold only the two downloaded published ones
            cache = Path(app.env["CITYSTAT_CACHE_DIR"])
            assert list(cache.glob("rollup-*.parquet")) == []
            assert len(list((cache / "published").glob("rollup-*.parquet"))) == 2
    finally:
        for app in replicas:
            app.stop()
